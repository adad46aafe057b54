package openapi

import (
	"errors"
	"testing"
	"time"
)

// FuzzImport: Import never panics, returns within a bound, refuses with a
// *DocumentError, and what it accepts the data plane accepts too.
func FuzzImport(f *testing.F) {
	for _, name := range []string{"petstore-3.0.yaml", "security-schemes-3.1.yaml", "webhook-3.1.yaml", "petstore-2.0.yaml"} {
		f.Add(readTestdata(f, name))
	}
	f.Add(doc31("security: [{oauth: [a, b]}, {key: [], cert: []}, {}]", "  /items/{id}: {get: {x-tollgate-scopes: [a]}, post: {security: []}}\n  /x/{a}.json: {put: {}}\n"))
	f.Add([]byte(`{"swagger": "2.0", "info": {"title": "t", "version": "1"}, "securityDefinitions": {"k": {"type": "apiKey", "in": "query", "name": "k"}}, "paths": {"/a": {"get": {"security": [{"k": []}]}}}}`))
	f.Add([]byte("openapi: 3.1.0\ninfo: {title: t, version: '1'}\nx-a: &a {security: [{k: []}]}\npaths: {/a: {get: {<<: *a}}, /b: {$ref: '#/paths/~1a'}}\ncomponents: {securitySchemes: {k: {$ref: '#/components/securitySchemes/k'}}}\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		var res *Result
		var err error
		done := make(chan struct{})
		go func() {
			defer close(done)
			res, err = Import(doc, Options{MaxBytes: 1 << 16})
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("Import did not return within 10s")
		}
		if err != nil {
			var de *DocumentError
			if !errors.As(err, &de) || len(de.Problems) == 0 {
				t.Fatalf("error %T %v, want a *DocumentError with problems", err, err)
			}
			return
		}
		checkValid(t, res.API)
		if c := Changes(res.API, res.API); len(c) != 0 {
			t.Fatalf("Changes of an API with itself: %q", c)
		}
	})
}

// FuzzImportSecurity fuzzes the parts of a document Tollgate maps: the
// top-level security and the paths, inside a valid frame, where whole
// documents mutated byte by byte seldom stay readable.
func FuzzImportSecurity(f *testing.F) {
	f.Add("security: [{oauth: [a]}, {key: []}]", "  /items: {get: {}, post: {security: [{cert: [], key: []}]}}\n")
	f.Add("x-tollgate-public: true", "  /a/{b}/{c...}: {get: {x-tollgate-scopes: ['a b', c]}, delete: {security: [{basic: []}, {oidc: [x, y]}]}}\n")
	f.Add("security: []", "  /a: {get: {security: [{}]}, put: {x-tollgate-rate-limit: r}}\n  /a/: {head: {}}\n")
	f.Add("x-tollgate-base-path: /v1/{x}", "  /{x}: {get: {security: [{queryKey: [], bearer: []}]}}\n")
	f.Fuzz(func(t *testing.T, security, paths string) {
		res, err := Import(doc31(security, paths), Options{})
		if err != nil {
			var de *DocumentError
			if !errors.As(err, &de) || len(de.Problems) == 0 {
				t.Fatalf("error %T %v, want a *DocumentError with problems", err, err)
			}
			return
		}
		checkValid(t, res.API)
	})
}
