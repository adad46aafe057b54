package catalog

import (
	"strings"
	"testing"
)

func TestParseTemplate(t *testing.T) {
	valid := []struct{ in, raw, canonical string }{
		{"/", "/", "/"},
		{"/pets", "/pets", "/pets"},
		{"/pets/", "/pets", "/pets"},
		{"/pets/{id}", "/pets/{id}", "/pets/{}"},
		{"/pets/*", "/pets/*", "/pets/{}"},
		{"/files/{path...}", "/files/{path...}", "/files/**"},
		{"/files/**", "/files/**", "/files/**"},
		{"/a/{x}/b/{y_2}", "/a/{x}/b/{y_2}", "/a/{}/b/{}"},
		{"/v1.0/odd-chars_~:@!$&'()+,;=", "/v1.0/odd-chars_~:@!$&'()+,;=", "/v1.0/odd-chars_~:@!$&'()+,;="},
	}
	for _, tc := range valid {
		tpl, err := ParseTemplate(tc.in)
		if err != nil {
			t.Errorf("ParseTemplate(%q): %v", tc.in, err)
			continue
		}
		if tpl.String() != tc.raw || tpl.Canonical() != tc.canonical {
			t.Errorf("ParseTemplate(%q) = %q canonical %q, want %q canonical %q", tc.in, tpl, tpl.Canonical(), tc.raw, tc.canonical)
		}
	}

	invalid := []struct{ in, msg string }{
		{"", "must start with /"},
		{"pets", "must start with /"},
		{"/pets?x=1", "query"},
		{"/pets//x", "empty segment"},
		{"/pets/{id", "unbalanced"},
		{"/pets/id}", "not allowed"},
		{"/pets/{}", "parameter names"},
		{"/pets/{1id}", "parameter names"},
		{"/pets/{id-x}", "parameter names"},
		{"/files/**/x", "must be last"},
		{"/files/{p...}/x", "must be last"},
		{"/a/{id}/b/{id}", "appears twice"},
		{"/file.{ext}", "not allowed"},
		{"/a/../b", "dot segment"},
		{"/a b", "not allowed"},
	}
	for _, tc := range invalid {
		_, err := ParseTemplate(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseTemplate(%q) error = %v, want one containing %q", tc.in, err, tc.msg)
		}
	}
}

func TestJoinRejectsRepeatedParamsAcrossBaseAndOperation(t *testing.T) {
	base, _ := ParseTemplate("/t/{id}")
	op, _ := ParseTemplate("/x/{id}")
	if _, err := base.Join(op); err == nil {
		t.Fatal("Join accepted {id} in both base path and operation path")
	}
	rest, _ := ParseTemplate("/t/**")
	if _, err := rest.Join(op); err == nil {
		t.Fatal("Join accepted segments after a rest segment")
	}
}

func TestNormalizePath(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", "/"},
		{"/", "/"},
		{"/pets", "/pets"},
		{"/pets/", "/pets/"},
		{"/pets?apikey=x", "/pets"},
		{"/pets#frag", "/pets"},
		{"/a//b", "/a/b"},
		{"/a/./b", "/a/b"},
		{"/a/b/..", "/a"},
		{"/a/../../b", "/b"},
		{"/%70ets", "/pets"},
		{"/a/%2e%2e/b", "/b"},
		{"/a/%2E%2E/b", "/b"},
		{"/a%2Fb", "/a%2Fb"}, // an encoded slash stays part of the segment
		{"/a%zz", "/a%25zz"},
		{"/a%", "/a%25"},
		{"/%%370", "/%2570"}, // never a new escape out of decoding
		{"/%2541", "/%2541"},
		{"pets", "/pets"},
	}
	for _, tc := range cases {
		if got := NormalizePath(tc.in); got != tc.want {
			t.Errorf("NormalizePath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestNormalizePathDoesNotAllocateForCleanPaths(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() { NormalizePath("/petstore/v1/pets/42?apikey=x") })
	if allocs != 0 {
		t.Fatalf("NormalizePath allocated %v times for a clean path", allocs)
	}
}

// testCatalog builds a catalog from a compact description:
// api id, base path, hosts, then "METHODS /template" operations.
func testCatalog(t *testing.T, apis ...[]string) *Catalog {
	t.Helper()
	var out []*API
	for _, spec := range apis {
		a := &API{ID: spec[0], BasePath: spec[1], Hosts: strings.Split(spec[2], ","), APIKeyHeader: "apikey",
			Security: Security{{Schemes: []Scheme{SchemeAPIKey}, Name: "apiKey"}}}
		base, err := ParseTemplate(spec[1])
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range spec[3:] {
			methods, path, _ := strings.Cut(o, " ")
			tpl, err := ParseTemplate(path)
			if err != nil {
				t.Fatal(err)
			}
			full, err := base.Join(tpl)
			if err != nil {
				t.Fatal(err)
			}
			op := &Operation{API: a, Path: tpl.String(), Template: full, Security: a.Security}
			if methods != "*" {
				op.Methods = strings.Split(methods, ",")
			}
			a.Operations = append(a.Operations, op)
		}
		out = append(out, a)
	}
	return New(out)
}

func TestMatch(t *testing.T) {
	c := testCatalog(t,
		[]string{"pets", "/petstore/v1", "*",
			"GET /pets", "POST /pets", "GET /pets/{id}", "DELETE /pets/{id}", "GET /pets/mine",
			"GET /pets/{id}/photos/{photo}", "* /files/**", "GET /files/special", "GET /"},
		[]string{"pets-eu", "/petstore/v1", "eu.example.com", "GET /pets"},
		[]string{"wild", "/petstore/v1", "*.example.com", "GET /pets", "GET /wild"},
		[]string{"root", "/", "*", "GET /status", "GET /deep/{a}/{b}"},
	)
	cases := []struct {
		host, method, path string
		api, op            string // "" op: no match
		miss               Miss
	}{
		{"api.test", "GET", "/petstore/v1/pets", "pets", "/pets", MissNone},
		{"api.test", "POST", "/petstore/v1/pets", "pets", "/pets", MissNone},
		{"api.test", "GET", "/petstore/v1/pets/", "pets", "/pets", MissNone},
		{"api.test", "GET", "/petstore/v1/pets/42", "pets", "/pets/{id}", MissNone},
		{"api.test", "DELETE", "/petstore/v1/pets/42", "pets", "/pets/{id}", MissNone},
		// the literal beats the parameter
		{"api.test", "GET", "/petstore/v1/pets/mine", "pets", "/pets/mine", MissNone},
		// ...but a literal without the method falls back to the parameter
		{"api.test", "DELETE", "/petstore/v1/pets/mine", "pets", "/pets/{id}", MissNone},
		{"api.test", "GET", "/petstore/v1/pets/1/photos/2", "pets", "/pets/{id}/photos/{photo}", MissNone},
		// rest matches zero or more segments, and loses to anything more specific
		{"api.test", "PUT", "/petstore/v1/files", "pets", "/files/**", MissNone},
		{"api.test", "PUT", "/petstore/v1/files/a/b/c", "pets", "/files/**", MissNone},
		{"api.test", "GET", "/petstore/v1/files/special", "pets", "/files/special", MissNone},
		{"api.test", "GET", "/petstore/v1", "pets", "/", MissNone},
		// hosts: exact beats wildcard beats any, for the same template
		{"eu.example.com", "GET", "/petstore/v1/pets", "pets-eu", "/pets", MissNone},
		{"EU.Example.com:8443", "GET", "/petstore/v1/pets", "pets-eu", "/pets", MissNone},
		{"us.example.com", "GET", "/petstore/v1/pets", "wild", "/pets", MissNone},
		{"example.com", "GET", "/petstore/v1/pets", "pets", "/pets", MissNone},
		{"us.example.com", "GET", "/petstore/v1/wild", "wild", "/wild", MissNone},
		{"other.test", "GET", "/petstore/v1/wild", "", "", MissPath},
		// path specificity first: a longer literal path under / wins over the rest match
		{"api.test", "GET", "/status", "root", "/status", MissNone},
		{"api.test", "GET", "/deep/1/2", "root", "/deep/{a}/{b}", MissNone},
		{"api.test", "GET", "/deep/1", "", "", MissPath},
		{"api.test", "PATCH", "/petstore/v1/pets/1", "", "", MissMethod},
		{"api.test", "GET", "/petstore/v2/pets", "", "", MissPath},
		{"api.test", "GET", "/petstore/v1/pets/1/2", "", "", MissPath},
		{"api.test", "GET", "/petstorev1/pets", "", "", MissPath},
	}
	for _, tc := range cases {
		op, miss := c.Match(tc.host, tc.method, NormalizePath(tc.path))
		switch {
		case tc.op == "" && op != nil:
			t.Errorf("%s %s %s matched %s %s, want no match", tc.host, tc.method, tc.path, op.API.ID, op.Path)
		case tc.op == "" && miss != tc.miss:
			t.Errorf("%s %s %s: miss %d, want %d", tc.host, tc.method, tc.path, miss, tc.miss)
		case tc.op != "" && op == nil:
			t.Errorf("%s %s %s matched nothing, want %s %s", tc.host, tc.method, tc.path, tc.api, tc.op)
		case tc.op != "" && (op.API.ID != tc.api || op.Path != tc.op):
			t.Errorf("%s %s %s matched %s %s, want %s %s", tc.host, tc.method, tc.path, op.API.ID, op.Path, tc.api, tc.op)
		}
	}
}

func TestMatchInAPIAndOperationLookup(t *testing.T) {
	c := testCatalog(t,
		[]string{"pets", "/petstore/v1", "only.example.com", "GET /pets", "GET,DELETE /pets/{id}"},
		[]string{"other", "/petstore/v1", "*", "GET /pets"},
	)
	pets := c.API("pets")
	// context_extensions named the API: its hosts do not matter.
	op, miss := c.MatchInAPI(pets, "GET", "/petstore/v1/pets")
	if op == nil || op.API != pets || miss != MissNone {
		t.Fatalf("MatchInAPI = %v, %v; want pets /pets", op, miss)
	}
	if op, _ := c.MatchInAPI(pets, "POST", "/petstore/v1/pets"); op != nil {
		t.Fatalf("MatchInAPI matched POST /pets")
	}
	if op, miss := pets.Operation("/pets/{id}", "DELETE"); op == nil || miss != MissNone {
		t.Fatalf("Operation(/pets/{id}, DELETE) = %v, %v", op, miss)
	}
	if _, miss := pets.Operation("/pets/{id}", "PUT"); miss != MissMethod {
		t.Fatalf("Operation(/pets/{id}, PUT) miss = %v, want MissMethod", miss)
	}
	if _, miss := pets.Operation("/nope", "GET"); miss != MissPath {
		t.Fatalf("Operation(/nope) miss = %v, want MissPath", miss)
	}
	if c.API("missing") != nil {
		t.Fatal("API(missing) != nil")
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	c := testCatalog(t, []string{"pets", "/petstore/v1", "*", "GET /pets", "GET /pets/{id}", "* /files/**"})
	allocs := testing.AllocsPerRun(100, func() {
		if op, _ := c.Match("api.example.com", "GET", "/petstore/v1/pets/42"); op == nil {
			t.Fatal("no match")
		}
	})
	if allocs != 0 {
		t.Fatalf("Match allocated %v times", allocs)
	}
}

func TestParseSecurity(t *testing.T) {
	sec, err := ParseSecurity([]string{"jwt", "mtls+apiKey", "none"})
	if err != nil {
		t.Fatal(err)
	}
	if len(sec) != 3 || sec[1].Name != "mtls+apiKey" || len(sec[1].Schemes) != 2 || sec[1].Schemes[1] != SchemeAPIKey {
		t.Fatalf("ParseSecurity = %+v", sec)
	}
	if !sec.Uses(SchemeMTLS) || !sec.Uses(SchemeNone) {
		t.Fatal("Uses misses schemes")
	}
	for _, bad := range [][]string{nil, {"basic"}, {"none+apiKey"}, {"apiKey+apiKey"}, {""}} {
		if _, err := ParseSecurity(bad); err == nil {
			t.Errorf("ParseSecurity(%q) accepted", bad)
		}
	}
}
