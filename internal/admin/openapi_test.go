package admin

// The document is held to real answers of the API with
// libopenapi-validator: it reads OpenAPI 3.1 as such (its schemas are
// JSON Schema 2020-12: type lists, const, null), checks a response's
// status, headers and body and a request's parameters, security and
// body, and validates the document itself against the 3.1 schema.

import (
	"bytes"
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	liberrors "github.com/pb33f/libopenapi-validator/errors"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
	"github.com/pb33f/libopenapi/orderedmap"

	"github.com/tollgate/tollgate/internal/store"
)

// controlPlaneTag marks the operations that the control plane serves
// beside this API (replicas, status); its own tests check them.
const controlPlaneTag = "Control plane"

type apiDocument struct {
	model *v3.Document
	v     validator.Validator
}

func loadDocument(t *testing.T) *apiDocument {
	t.Helper()
	doc, err := libopenapi.NewDocument(OpenAPIDocument())
	if err != nil {
		t.Fatal(err)
	}
	m, err := doc.BuildV3Model()
	if err != nil {
		t.Fatalf("the document does not build: %v", err)
	}
	v, errs := validator.NewValidator(doc, config.WithFormatAssertions())
	if len(errs) > 0 {
		t.Fatalf("no validator: %v", errs)
	}
	return &apiDocument{model: &m.Model, v: v}
}

func describe(errs []*liberrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "\n  %s: %s", e.Message, e.Reason)
		for _, s := range e.SchemaValidationErrors {
			fmt.Fprintf(&b, "\n    at %s (%s): %s", s.FieldPath, s.KeywordLocation, s.Reason)
		}
	}
	return b.String()
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	d := loadDocument(t)
	if !strings.HasPrefix(d.model.Version, "3.1.") {
		t.Fatalf("openapi %q, want 3.1.x", d.model.Version)
	}
	if ok, errs := d.v.ValidateDocument(); !ok {
		t.Fatalf("not a valid OpenAPI 3.1 document:%s", describe(errs))
	}
	ids := map[string]string{}
	for path, item := range d.model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			where := strings.ToUpper(method) + " " + path
			if op.OperationId == "" {
				t.Errorf("%s: no operationId", where)
			} else if other, dup := ids[op.OperationId]; dup {
				t.Errorf("%s: operationId %s is %s's too", where, op.OperationId, other)
			}
			ids[op.OperationId] = where
		}
	}
}

// sourcePatterns reads the route patterns this package registers from
// its source: the first argument of every handle, handleLimited, Handle
// and HandleFunc call. A parameter of the enclosing function stands for
// each string its callers pass; anything else that is not a string
// literal fails the test, so that no route goes unseen.
func sourcePatterns(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	funcs := map[string]*ast.FuncDecl{}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, e.Name(), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			if fn, ok := decl.(*ast.FuncDecl); ok && fn.Body != nil {
				funcs[fn.Name.Name] = fn
			}
		}
	}
	paramIndex := func(fn *ast.FuncDecl, name string) int {
		i := 0
		for _, field := range fn.Type.Params.List {
			for _, n := range field.Names {
				if n.Name == name {
					return i
				}
				i++
			}
			if len(field.Names) == 0 {
				i++
			}
		}
		return -1
	}
	// calls visits every method or function call by selector in the
	// package, with the function it is in.
	calls := func(visit func(in *ast.FuncDecl, call *ast.CallExpr, name string)) {
		for _, fn := range funcs {
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				if call, ok := n.(*ast.CallExpr); ok {
					if sel, ok := call.Fun.(*ast.SelectorExpr); ok {
						visit(fn, call, sel.Sel.Name)
					}
				}
				return true
			})
		}
	}
	var eval func(in *ast.FuncDecl, e ast.Expr, depth int) []string
	eval = func(in *ast.FuncDecl, e ast.Expr, depth int) []string {
		switch x := e.(type) {
		case *ast.BasicLit:
			if s, err := strconv.Unquote(x.Value); err == nil && x.Kind == token.STRING {
				return []string{s}
			}
		case *ast.ParenExpr:
			return eval(in, x.X, depth)
		case *ast.BinaryExpr:
			if x.Op == token.ADD {
				var out []string
				for _, l := range eval(in, x.X, depth) {
					for _, r := range eval(in, x.Y, depth) {
						out = append(out, l+r)
					}
				}
				return out
			}
		case *ast.Ident:
			if i := paramIndex(in, x.Name); i >= 0 && depth < 8 {
				var out []string
				calls(func(caller *ast.FuncDecl, call *ast.CallExpr, name string) {
					if name == in.Name.Name && i < len(call.Args) {
						out = append(out, eval(caller, call.Args[i], depth+1)...)
					}
				})
				if len(out) > 0 {
					return out
				}
			}
		}
		t.Fatalf("%s: cannot read this route pattern from the source", fset.Position(e.Pos()))
		return nil
	}
	var patterns []string
	calls(func(in *ast.FuncDecl, call *ast.CallExpr, name string) {
		switch name {
		case "handle", "handleLimited", "Handle", "HandleFunc":
			if len(call.Args) > 0 {
				patterns = append(patterns, eval(in, call.Args[0], 0)...)
			}
		}
	})
	// The catch-all for unknown routes names no method and is no route.
	patterns = slices.DeleteFunc(patterns, func(p string) bool { return !strings.Contains(p, " ") })
	slices.Sort(patterns)
	return slices.Compact(patterns)
}

var wildcard = regexp.MustCompile(`\{([A-Za-z0-9_]+)(\.\.\.)?\}`)

// probe asks the API's router which pattern serves a request for
// pattern, its wildcards filled in; "" if none does.
func probe(mux *http.ServeMux, pattern string) string {
	method, path, _ := strings.Cut(pattern, " ")
	r := httptest.NewRequest(method, wildcard.ReplaceAllString(path, "x$1"), nil)
	_, served := mux.Handler(r)
	return served
}

func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	d := loadDocument(t)
	mux := New(Options{}).mux
	documented := map[string]bool{}
	for path, item := range d.model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			pattern := strings.ToUpper(method) + " " + path
			if slices.Contains(op.Tags, controlPlaneTag) {
				continue
			}
			documented[pattern] = true
			if served := probe(mux, pattern); served != pattern {
				t.Errorf("documented %s, but the API serves it with %q", pattern, served)
			}
		}
	}
	registered := 0
	for _, pattern := range sourcePatterns(t) {
		// A pattern in the source may be registered under a condition
		// (PUT for replaceable kinds only): the router says which are.
		if probe(mux, pattern) != pattern {
			t.Logf("not registered: %s", pattern)
			continue
		}
		registered++
		if !documented[pattern] {
			t.Errorf("route %s is not in the document", pattern)
		}
	}
	if registered != len(documented) {
		t.Errorf("%d routes registered, %d documented", registered, len(documented))
	}
}

// exchange is one request to the API and its answer.
type exchange struct {
	method, url string
	reqHeader   http.Header
	reqBody     []byte
	status      int
	header      http.Header
	body        []byte
}

// recorder keeps every exchange with one test API: it wraps
// http.DefaultClient's transport, which a.do uses, for one test (so
// that test must not run in parallel with others).
type recorder struct {
	next http.RoundTripper
	host string

	mu   sync.Mutex
	seen []exchange
}

func record(t *testing.T, a *testAPI) *recorder {
	t.Helper()
	u, err := url.Parse(a.url)
	if err != nil {
		t.Fatal(err)
	}
	prev := http.DefaultClient.Transport
	next := prev
	if next == nil {
		next = http.DefaultTransport
	}
	rec := &recorder{next: next, host: u.Host}
	http.DefaultClient.Transport = rec
	t.Cleanup(func() { http.DefaultClient.Transport = prev })
	return rec
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != r.host {
		return r.next.RoundTrip(req)
	}
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		_ = req.Body.Close()
	}
	out := req.Clone(req.Context())
	out.Body = io.NopCloser(bytes.NewReader(body))
	// The server reads every body as JSON whatever it is labelled; a
	// client sends the type the document gives.
	if len(body) > 0 && out.Header.Get("Content-Type") == "" {
		out.Header.Set("Content-Type", "application/json")
	}
	res, err := r.next.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	resBody, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(resBody))
	r.mu.Lock()
	r.seen = append(r.seen, exchange{method: out.Method, url: out.URL.String(), reqHeader: out.Header.Clone(), reqBody: body,
		status: res.StatusCode, header: res.Header.Clone(), body: resBody})
	r.mu.Unlock()
	return res, nil
}

func (r *recorder) exchanges() []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

// transportHeaders are set by net/http, not by the API.
var transportHeaders = []string{"Content-Length", "Content-Type", "Date"}

// check holds one exchange to the document: the response always, and
// the request too when it succeeded (what works must be what the
// document allows).
func (d *apiDocument) check(t *testing.T, mux *http.ServeMux, e exchange) (pattern string) {
	t.Helper()
	req := func() *http.Request {
		r, err := http.NewRequest(e.method, e.url, bytes.NewReader(e.reqBody))
		if err != nil {
			t.Fatal(err)
		}
		r.Header = e.reqHeader.Clone()
		return r
	}
	where := fmt.Sprintf("%s %s -> %d", e.method, e.url, e.status)
	res := &http.Response{StatusCode: e.status, Header: e.header.Clone(), Body: io.NopCloser(bytes.NewReader(e.body)), Request: req()}
	if ok, errs := d.v.ValidateHttpResponse(req(), res); !ok {
		t.Errorf("%s: the response is not the documented one:%s\nbody: %.2000s", where, describe(errs), e.body)
	}
	if e.status < 300 {
		if ok, errs := d.v.ValidateHttpRequest(req()); !ok {
			t.Errorf("%s: the document does not allow this request, which succeeded:%s\nbody: %.500s", where, describe(errs), e.reqBody)
		}
	}
	_, pattern = mux.Handler(req())
	method, path, _ := strings.Cut(pattern, " ")
	item := d.model.Paths.PathItems.GetOrZero(path)
	if item == nil {
		t.Errorf("%s: %q is not documented", where, pattern)
		return pattern
	}
	op := item.GetOperations().GetOrZero(strings.ToLower(method))
	if op == nil {
		t.Errorf("%s: %q is not documented", where, pattern)
		return pattern
	}
	resp := op.Responses.Codes.GetOrZero(strconv.Itoa(e.status))
	if resp == nil {
		return pattern // reported by the validator
	}
	if orderedmap.Len(resp.Content) == 0 && len(e.body) > 0 {
		t.Errorf("%s: a body where the document has none: %.300s", where, e.body)
	}
	for name := range e.header {
		if slices.ContainsFunc(transportHeaders, func(h string) bool { return strings.EqualFold(h, name) }) {
			continue
		}
		declared := false
		for h := range resp.Headers.KeysFromOldest() {
			declared = declared || strings.EqualFold(h, name)
		}
		if !declared {
			t.Errorf("%s: header %s is not documented for this response", where, name)
		}
	}
	return pattern
}

// TestResponsesMatchTheDocument drives every route of the API, with
// its successes and its main refusals, and holds each answer to the
// document.
func TestResponsesMatchTheDocument(t *testing.T) {
	d := loadDocument(t)
	backendsOf(t, func(t *testing.T, a *testAPI) {
		rec := record(t, a)
		drive(t, a)
		mux := New(Options{}).mux
		succeeded := map[string]bool{}
		statuses := map[int]bool{}
		for _, e := range rec.exchanges() {
			pattern := d.check(t, mux, e)
			statuses[e.status] = true
			if e.status < 300 {
				succeeded[pattern] = true
			}
		}
		for path, item := range d.model.Paths.PathItems.FromOldest() {
			for method, op := range item.GetOperations().FromOldest() {
				pattern := strings.ToUpper(method) + " " + path
				if !slices.Contains(op.Tags, controlPlaneTag) && !succeeded[pattern] {
					t.Errorf("the flow never succeeded at %s", pattern)
				}
			}
		}
		for _, want := range []int{400, 401, 403, 404, 409, 412, 413, 422} {
			if !statuses[want] {
				t.Errorf("the flow never got a %d", want)
			}
		}
	})
}

// drive is a day of the API's life: publishers define APIs and tiers,
// developers build applications, take keys and subscribe, admins hold
// the identities and read the audit, and each meets the API's refusals.
func drive(t *testing.T, a *testAPI) {
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	tag := func(r response) string { return r.header.Get("ETag") }
	const stale = `"999"`

	// The document, and who is calling.
	a.must(t, 200, "", "GET", "/api/v1/openapi.json", nil)
	a.must(t, 200, aliceToken, "GET", "/api/v1/me", nil)
	a.must(t, 401, "", "GET", "/api/v1/me", nil)
	a.must(t, 401, "wrong", "GET", "/api/v1/apis", nil)

	seed(t, a)

	// APIs.
	orders := map[string]any{
		"id": "orders", "name": "Orders", "version": "v2", "basePath": "/orders", "hosts": []string{"api.example.com"},
		"security": []string{"apiKey", "jwt"}, "forwardCredentials": true, "apiKey": map[string]any{"header": "X-Key", "query": "key"},
		"rateLimit": "gold", "anonymousRateLimit": "gold", "audiences": []string{"orders"}, "methodOverride": "deny",
		"operations": []any{
			map[string]any{"path": "/orders", "methods": []string{"GET", "POST"}, "scopes": []string{"orders:read"}},
			map[string]any{"path": "/health", "security": []string{"none"}, "rateLimit": "gold"},
		},
		"description": "Orders of the shop", "requiresApproval": true,
	}
	created := a.must(t, 201, publisherToken, "POST", "/api/v1/apis", orders, "Idempotency-Key", "orders-1")
	a.must(t, 201, publisherToken, "POST", "/api/v1/apis", orders, "Idempotency-Key", "orders-1")
	a.must(t, 422, publisherToken, "POST", "/api/v1/apis", petstore, "Idempotency-Key", "orders-1")
	a.must(t, 400, publisherToken, "POST", "/api/v1/apis", orders, "Idempotency-Key", "has spaces")
	a.must(t, 409, publisherToken, "POST", "/api/v1/apis", petstore)
	a.must(t, 403, aliceToken, "POST", "/api/v1/apis", orders)
	a.must(t, 400, publisherToken, "POST", "/api/v1/apis", "not json")
	a.must(t, 400, publisherToken, "POST", "/api/v1/apis", map[string]any{"id": "bad id!", "security": []string{"apiKey"}, "operations": []any{map[string]any{"path": "x"}}})
	a.must(t, 413, publisherToken, "POST", "/api/v1/apis", strings.Repeat(" ", 2<<20))
	a.must(t, 200, adminToken, "GET", "/api/v1/apis", nil)
	a.must(t, 200, aliceToken, "GET", "/api/v1/apis?state=published&offset=0&limit=10", nil)
	a.must(t, 200, aliceToken, "GET", "/api/v1/apis?state=created", nil)
	a.must(t, 400, adminToken, "GET", "/api/v1/apis?limit=0", nil)
	a.must(t, 404, aliceToken, "GET", "/api/v1/apis/orders", nil)
	a.must(t, 404, adminToken, "GET", "/api/v1/apis/nope", nil)
	got := a.must(t, 200, publisherToken, "GET", "/api/v1/apis/orders", nil)
	if tag(got) != tag(created) {
		t.Fatalf("ETag %q after creation, %q on read", tag(created), tag(got))
	}
	replaced := map[string]any{}
	for k, v := range orders {
		replaced[k] = v
	}
	replaced["name"], replaced["createdAt"] = "Orders, replaced", "2020-01-01T00:00:00Z"
	put := a.must(t, 200, publisherToken, "PUT", "/api/v1/apis/orders", replaced, "If-Match", tag(got))
	a.must(t, 412, publisherToken, "PUT", "/api/v1/apis/orders", replaced, "If-Match", tag(got))
	a.must(t, 400, publisherToken, "PUT", "/api/v1/apis/orders", map[string]any{"id": "other", "security": []string{"none"}, "operations": []any{map[string]any{"path": "/"}}})
	a.must(t, 404, publisherToken, "PUT", "/api/v1/apis/nope", replaced)
	a.must(t, 403, aliceToken, "PATCH", "/api/v1/apis/orders", map[string]any{"state": "published"})
	a.must(t, 400, publisherToken, "PATCH", "/api/v1/apis/orders", map[string]any{"state": "published"}, "Idempotency-Key", "patch-1")
	a.must(t, 200, publisherToken, "PATCH", "/api/v1/apis/orders", map[string]any{"state": "published", "description": ""}, "If-Match", tag(put))
	a.must(t, 409, publisherToken, "PATCH", "/api/v1/apis/orders", map[string]any{"state": "created"})
	a.must(t, 200, aliceToken, "GET", "/api/v1/apis/orders", nil)
	// Documents are stored by the import; here straight into the store.
	a.must(t, 404, adminToken, "GET", "/api/v1/apis/petstore/openapi", nil)
	if _, err := a.st.Write(context.Background(), func(tx *store.Tx) error {
		if err := tx.PutDocument("petstore", store.Document{SpecVersion: "3.1.0", Content: []byte(`{"openapi": "3.1.0", "paths": {}}`)}); err != nil {
			return err
		}
		return tx.PutDocument("orders", store.Document{SpecVersion: "3.0.3", Content: []byte("openapi: 3.0.3\npaths: {}\n")})
	}); err != nil {
		t.Fatal(err)
	}
	a.must(t, 200, aliceToken, "GET", "/api/v1/apis/petstore/openapi", nil)
	a.must(t, 200, aliceToken, "GET", "/api/v1/apis/orders/openapi", nil)
	a.must(t, 409, publisherToken, "DELETE", "/api/v1/apis/petstore", nil)
	a.must(t, 201, publisherToken, "POST", "/api/v1/apis", map[string]any{"id": "scratch", "security": []string{"none"}, "operations": []any{map[string]any{"path": "/**"}}, "state": "created"})
	a.must(t, 403, aliceToken, "DELETE", "/api/v1/apis/scratch", nil)
	a.must(t, 412, publisherToken, "DELETE", "/api/v1/apis/scratch", nil, "If-Match", stale)
	a.must(t, 204, publisherToken, "DELETE", "/api/v1/apis/scratch", nil)
	a.must(t, 404, publisherToken, "DELETE", "/api/v1/apis/scratch", nil)

	// Applications.
	second := a.must(t, 201, aliceToken, "POST", "/api/v1/applications", map[string]any{"name": "Alice's second"}, "Idempotency-Key", "app-2").json(t)
	a.must(t, 201, aliceToken, "POST", "/api/v1/applications", map[string]any{"name": "Alice's second"}, "Idempotency-Key", "app-2")
	a.must(t, 403, publisherToken, "POST", "/api/v1/applications", map[string]any{"name": "x"})
	a.must(t, 403, aliceToken, "POST", "/api/v1/applications", map[string]any{"name": "x", "clientIds": []string{"c"}})
	a.must(t, 201, adminToken, "POST", "/api/v1/applications", map[string]any{
		"id": "bob-svc", "name": "Bob's service", "owner": "bob", "clientIds": []string{"bob-client"},
		"principals": []string{"spiffe://cluster.local/ns/shop/sa/bob"}, "certificates": []string{strings.Repeat("AB", 32)}, "tier": "gold",
	})
	a.must(t, 409, adminToken, "POST", "/api/v1/applications", map[string]any{"id": "thief", "owner": "bob", "clientIds": []string{"bob-client"}})
	a.must(t, 409, aliceToken, "POST", "/api/v1/applications", map[string]any{"id": "alice-app"})
	a.must(t, 400, adminToken, "POST", "/api/v1/applications", map[string]any{"id": "x", "tier": "nope"})
	a.must(t, 200, aliceToken, "GET", "/api/v1/applications", nil)
	a.must(t, 200, adminToken, "GET", "/api/v1/applications?owner=bob&limit=1", nil)
	a.must(t, 400, adminToken, "GET", "/api/v1/applications?offset=x", nil)
	app := a.must(t, 200, aliceToken, "GET", "/api/v1/applications/alice-app", nil)
	a.must(t, 404, bobToken, "GET", "/api/v1/applications/alice-app", nil)
	app = a.must(t, 200, aliceToken, "PUT", "/api/v1/applications/alice-app", map[string]any{"name": "Alice's app", "tier": "gold"}, "If-Match", tag(app))
	a.must(t, 412, aliceToken, "PUT", "/api/v1/applications/alice-app", map[string]any{"name": "late"}, "If-Match", stale)
	a.must(t, 403, aliceToken, "PUT", "/api/v1/applications/alice-app", map[string]any{"principals": []string{"p"}})
	a.must(t, 403, publisherToken, "PATCH", "/api/v1/applications/alice-app", map[string]any{"name": "x"})
	a.must(t, 404, bobToken, "PATCH", "/api/v1/applications/alice-app", map[string]any{"name": "mine"})
	a.must(t, 409, adminToken, "PATCH", "/api/v1/applications/alice-app", map[string]any{"clientIds": []string{"bob-client"}})
	a.must(t, 200, adminToken, "PATCH", "/api/v1/applications/alice-app", map[string]any{"principals": []string{"spiffe://cluster.local/ns/shop/sa/alice"}}, "If-Match", tag(app))
	a.must(t, 412, aliceToken, "DELETE", "/api/v1/applications/"+str(second, "id"), nil, "If-Match", stale)
	a.must(t, 403, publisherToken, "DELETE", "/api/v1/applications/"+str(second, "id"), nil)
	a.must(t, 204, aliceToken, "DELETE", "/api/v1/applications/"+str(second, "id"), nil)
	a.must(t, 404, aliceToken, "DELETE", "/api/v1/applications/"+str(second, "id"), nil)

	// Keys.
	keys := "/api/v1/applications/alice-app/keys"
	keyBody := map[string]any{"name": "ci", "expiresAt": time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339), "allowedCidrs": []string{"10.0.0.0/8"}, "scopes": []string{"orders:read"}}
	key := a.must(t, 201, aliceToken, "POST", keys, keyBody, "Idempotency-Key", "key-1").json(t)
	a.must(t, 201, aliceToken, "POST", keys, keyBody, "Idempotency-Key", "key-1")
	a.must(t, 422, aliceToken, "POST", keys, map[string]any{"name": "other"}, "Idempotency-Key", "key-1")
	a.must(t, 400, aliceToken, "POST", keys, map[string]any{"sha256": strings.Repeat("0", 64)})
	a.must(t, 400, aliceToken, "POST", keys, nil)
	a.must(t, 400, aliceToken, "POST", keys, map[string]any{"expiresAt": "2001-01-01T00:00:00Z"})
	a.must(t, 403, publisherToken, "POST", keys, map[string]any{"name": "x"})
	a.must(t, 404, bobToken, "POST", keys, map[string]any{"name": "x"})
	a.must(t, 200, aliceToken, "GET", keys+"?limit=5", nil)
	a.must(t, 400, aliceToken, "GET", keys+"?limit=x", nil)
	a.must(t, 403, publisherToken, "GET", keys, nil)
	a.must(t, 404, bobToken, "GET", keys, nil)
	one := keys + "/" + str(key, "id")
	k := a.must(t, 200, aliceToken, "GET", one, nil)
	a.must(t, 403, publisherToken, "GET", one, nil)
	a.must(t, 404, bobToken, "GET", one, nil)
	a.must(t, 404, aliceToken, "GET", keys+"/000000000000", nil)
	a.must(t, 400, aliceToken, "POST", one+"/regenerate", map[string]any{"grace": "forever"})
	a.must(t, 412, aliceToken, "POST", one+"/regenerate", nil, "If-Match", stale)
	next := a.must(t, 201, aliceToken, "POST", one+"/regenerate", map[string]any{"grace": "1h"}, "If-Match", tag(k)).json(t)
	a.must(t, 200, aliceToken, "GET", one, nil) // replacedBy, expiresAt
	nextOne := keys + "/" + str(next, "id")
	a.must(t, 201, aliceToken, "POST", nextOne+"/regenerate", nil, "Idempotency-Key", "regen-1")
	a.must(t, 201, aliceToken, "POST", nextOne+"/regenerate", nil, "Idempotency-Key", "regen-1")
	a.must(t, 403, publisherToken, "POST", nextOne+"/regenerate", nil)
	a.must(t, 404, bobToken, "POST", nextOne+"/regenerate", nil)
	a.must(t, 412, aliceToken, "POST", one+"/revoke", nil, "If-Match", stale)
	a.must(t, 200, aliceToken, "POST", one+"/revoke", nil, "Idempotency-Key", "revoke-1")
	a.must(t, 200, aliceToken, "POST", one+"/revoke", nil, "Idempotency-Key", "revoke-1")
	a.must(t, 200, aliceToken, "POST", one+"/revoke", nil)
	a.must(t, 422, aliceToken, "POST", nextOne+"/revoke", nil, "Idempotency-Key", "revoke-1")
	a.must(t, 409, aliceToken, "POST", one+"/regenerate", nil)
	a.must(t, 403, publisherToken, "POST", one+"/revoke", nil)
	a.must(t, 404, bobToken, "POST", one+"/revoke", nil)
	a.must(t, 412, aliceToken, "DELETE", one, nil, "If-Match", stale)
	a.must(t, 403, publisherToken, "DELETE", one, nil)
	a.must(t, 204, aliceToken, "DELETE", one, nil)
	a.must(t, 404, aliceToken, "DELETE", one, nil)

	// Subscriptions.
	subs := "/api/v1/subscriptions"
	a.must(t, 201, aliceToken, "POST", subs, map[string]any{"application": "alice-app", "api": "petstore", "tier": "gold"}, "Idempotency-Key", "sub-1")
	a.must(t, 201, aliceToken, "POST", subs, map[string]any{"application": "alice-app", "api": "petstore", "tier": "gold"}, "Idempotency-Key", "sub-1")
	a.must(t, 409, aliceToken, "POST", subs, map[string]any{"application": "alice-app", "api": "petstore"})
	a.must(t, 403, aliceToken, "POST", subs, map[string]any{"application": "alice-app", "api": "orders", "state": "active"})
	a.must(t, 400, bobToken, "POST", subs, map[string]any{"application": "alice-app", "api": "petstore"})
	a.must(t, 400, aliceToken, "POST", subs, map[string]any{"application": "alice-app", "api": "petstore", "extra": 1})
	a.must(t, 201, publisherToken, "POST", subs, map[string]any{"application": "bob-svc", "api": "petstore", "state": "onHold"})
	pending := a.must(t, 201, aliceToken, "POST", subs, map[string]any{"application": "alice-app", "api": "orders"}).json(t)
	if pending["state"] != "pending" {
		t.Fatalf("a subscription to an API that requires approval: %v", pending)
	}
	a.must(t, 200, aliceToken, "GET", subs, nil)
	a.must(t, 200, publisherToken, "GET", subs+"?application=alice-app&api=petstore&state=active&limit=2", nil)
	a.must(t, 400, publisherToken, "GET", subs+"?offset=-1", nil)
	a.must(t, 403, aliceToken, "POST", subs+"/alice-app/orders/approve", nil)
	a.must(t, 412, publisherToken, "POST", subs+"/alice-app/orders/approve", nil, "If-Match", stale)
	a.must(t, 200, publisherToken, "POST", subs+"/alice-app/orders/approve", nil, "Idempotency-Key", "approve-1")
	a.must(t, 200, publisherToken, "POST", subs+"/alice-app/orders/approve", nil, "Idempotency-Key", "approve-1")
	a.must(t, 409, publisherToken, "POST", subs+"/alice-app/orders/approve", nil)
	a.must(t, 404, publisherToken, "POST", subs+"/alice-app/nope/approve", nil)
	sub := a.must(t, 200, aliceToken, "GET", subs+"/alice-app/petstore", nil)
	a.must(t, 404, bobToken, "GET", subs+"/alice-app/petstore", nil)
	a.must(t, 403, aliceToken, "PATCH", subs+"/alice-app/petstore", map[string]any{"state": "active"})
	a.must(t, 400, publisherToken, "PATCH", subs+"/alice-app/petstore", map[string]any{"state": "gone"})
	a.must(t, 412, publisherToken, "PATCH", subs+"/alice-app/petstore", map[string]any{"state": "blocked"}, "If-Match", stale)
	a.must(t, 200, publisherToken, "PATCH", subs+"/alice-app/petstore", map[string]any{"state": "blocked", "tier": "", "id": "ignored"}, "If-Match", tag(sub))
	a.must(t, 404, publisherToken, "PATCH", subs+"/alice-app/nope", map[string]any{"state": "blocked"})
	a.must(t, 403, aliceToken, "POST", "/api/v1/applications/alice-app/block", nil)
	a.must(t, 412, publisherToken, "POST", "/api/v1/applications/alice-app/block", nil, "If-Match", stale)
	a.must(t, 200, publisherToken, "POST", "/api/v1/applications/alice-app/block", nil, "Idempotency-Key", "block-1")
	a.must(t, 409, publisherToken, "PATCH", subs+"/alice-app/orders", map[string]any{"state": "active"})
	a.must(t, 404, publisherToken, "POST", "/api/v1/applications/nope/block", nil)
	a.must(t, 200, publisherToken, "POST", "/api/v1/applications/alice-app/unblock", nil)
	a.must(t, 403, bobToken, "POST", "/api/v1/applications/alice-app/unblock", nil)
	a.must(t, 404, bobToken, "DELETE", subs+"/alice-app/petstore", nil)
	a.must(t, 412, aliceToken, "DELETE", subs+"/alice-app/petstore", nil, "If-Match", stale)
	a.must(t, 204, aliceToken, "DELETE", subs+"/alice-app/petstore", nil)
	a.must(t, 404, aliceToken, "DELETE", subs+"/alice-app/petstore", nil)

	// Rate-limit policies.
	policies := "/api/v1/policies"
	silver := map[string]any{"name": "silver", "limits": []any{map[string]any{"requests": "10", "per": "1.5s", "burst": 2}, map[string]any{"requests": 1000, "per": "86400s"}}}
	a.must(t, 201, publisherToken, "POST", policies, silver, "Idempotency-Key", "silver-1")
	a.must(t, 201, publisherToken, "POST", policies, silver, "Idempotency-Key", "silver-1")
	a.must(t, 409, publisherToken, "POST", policies, silver)
	a.must(t, 403, aliceToken, "POST", policies, silver)
	a.must(t, 400, publisherToken, "POST", policies, map[string]any{"name": "bad", "limits": []any{map[string]any{"requests": 0, "per": "1s"}}})
	a.must(t, 200, aliceToken, "GET", policies+"?limit=1", nil)
	a.must(t, 400, aliceToken, "GET", policies+"?limit=1001", nil)
	p := a.must(t, 200, aliceToken, "GET", policies+"/silver", nil)
	a.must(t, 404, aliceToken, "GET", policies+"/bronze", nil)
	silver["limits"] = []any{map[string]any{"requests": 20, "per": "1s"}}
	p = a.must(t, 200, publisherToken, "PUT", policies+"/silver", silver, "If-Match", tag(p))
	a.must(t, 412, publisherToken, "PUT", policies+"/silver", silver, "If-Match", stale)
	a.must(t, 400, publisherToken, "PUT", policies+"/silver", map[string]any{"name": "gold", "limits": []any{map[string]any{"requests": 1, "per": "1s"}}})
	a.must(t, 404, publisherToken, "PUT", policies+"/bronze", map[string]any{"name": "bronze", "limits": []any{map[string]any{"requests": 1, "per": "1s"}}})
	a.must(t, 403, aliceToken, "PUT", policies+"/silver", silver)
	a.must(t, 409, publisherToken, "DELETE", policies+"/gold", nil)
	a.must(t, 403, aliceToken, "DELETE", policies+"/silver", nil)
	a.must(t, 412, publisherToken, "DELETE", policies+"/silver", nil, "If-Match", stale)
	a.must(t, 204, publisherToken, "DELETE", policies+"/silver", nil, "If-Match", tag(p))
	a.must(t, 404, publisherToken, "DELETE", policies+"/silver", nil)

	// Issuers.
	issuers := "/api/v1/issuers"
	idp := map[string]any{"name": "idp", "issuer": "https://idp.example.com", "jwksUri": "https://idp.example.com/jwks", "audiences": []string{"shop"},
		"leeway": "30s", "jwksRefreshInterval": "600s", "jwksMinRefreshInterval": "5s", "scopesClaim": "scp", "clientIdClaim": "client_id",
		"subscriptionRequired": false, "claimHeaders": map[string]string{"email": "x-user-email"}}
	a.must(t, 201, adminToken, "POST", issuers, idp, "Idempotency-Key", "idp-1")
	a.must(t, 201, adminToken, "POST", issuers, idp, "Idempotency-Key", "idp-1")
	a.must(t, 409, adminToken, "POST", issuers, idp)
	a.must(t, 403, publisherToken, "POST", issuers, idp)
	a.must(t, 400, adminToken, "POST", issuers, map[string]any{"name": "nokeys", "issuer": "https://other"})
	a.must(t, 200, publisherToken, "GET", issuers, nil)
	a.must(t, 403, aliceToken, "GET", issuers, nil)
	is := a.must(t, 200, publisherToken, "GET", issuers+"/idp", nil)
	a.must(t, 403, aliceToken, "GET", issuers+"/idp", nil)
	a.must(t, 404, adminToken, "GET", issuers+"/nope", nil)
	idp["leeway"] = "60s"
	is = a.must(t, 200, adminToken, "PUT", issuers+"/idp", idp, "If-Match", tag(is))
	a.must(t, 412, adminToken, "PUT", issuers+"/idp", idp, "If-Match", stale)
	a.must(t, 403, publisherToken, "PUT", issuers+"/idp", idp)
	a.must(t, 403, publisherToken, "DELETE", issuers+"/idp", nil)
	a.must(t, 204, adminToken, "DELETE", issuers+"/idp", nil, "If-Match", tag(is))
	a.must(t, 404, adminToken, "DELETE", issuers+"/idp", nil)

	// Revoked tokens.
	revoked := "/api/v1/revoked-tokens"
	jti := map[string]any{"jti": "token-1", "expiresAt": time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano)}
	a.must(t, 201, adminToken, "POST", revoked, jti, "Idempotency-Key", "jti-1")
	a.must(t, 201, adminToken, "POST", revoked, jti, "Idempotency-Key", "jti-1")
	a.must(t, 201, adminToken, "POST", revoked, map[string]any{"jti": "token-2"})
	a.must(t, 409, adminToken, "POST", revoked, jti)
	a.must(t, 403, publisherToken, "POST", revoked, jti)
	a.must(t, 400, adminToken, "POST", revoked, map[string]any{"expiresAt": "2030-01-01T00:00:00Z"})
	a.must(t, 200, publisherToken, "GET", revoked, nil)
	a.must(t, 403, aliceToken, "GET", revoked, nil)
	a.must(t, 200, publisherToken, "GET", revoked+"/token-1", nil)
	a.must(t, 404, publisherToken, "GET", revoked+"/nope", nil)
	a.must(t, 403, publisherToken, "DELETE", revoked+"/token-1", nil)
	a.must(t, 412, adminToken, "DELETE", revoked+"/token-1", nil, "If-Match", stale)
	a.must(t, 204, adminToken, "DELETE", revoked+"/token-1", nil)

	// The audit holds every write above.
	a.must(t, 200, adminToken, "GET", "/api/v1/audit", nil)
	a.must(t, 200, adminToken, "GET", "/api/v1/audit?kind=apiKey&actor=alice&object="+str(key, "id")+"&offset=1&limit=3", nil)
	a.must(t, 200, adminToken, "GET", "/api/v1/audit?kind=policy&limit=1000", nil)
	a.must(t, 400, adminToken, "GET", "/api/v1/audit?limit=-5", nil)
	a.must(t, 403, publisherToken, "GET", "/api/v1/audit", nil)
	a.must(t, 401, "", "GET", "/api/v1/audit", nil)

	// OpenAPI import: new, again (changes), refused, and its document.
	yamlType := []string{"Content-Type", "application/yaml"}
	imported := a.must(t, 201, publisherToken, "POST", "/api/v1/apis/import?publish=true", ordersV1, yamlType...)
	a.must(t, 200, publisherToken, "POST", "/api/v1/apis/import", ordersV1, append(yamlType, "If-Match", tag(imported))...)
	a.must(t, 412, publisherToken, "POST", "/api/v1/apis/import", ordersV1, append(yamlType, "If-Match", stale)...)
	a.must(t, 400, publisherToken, "POST", "/api/v1/apis/import", "openapi: 3.0.3\ninfo: {title: x, version: '1'}\npaths: {}\n", yamlType...)
	a.must(t, 403, aliceToken, "POST", "/api/v1/apis/import", ordersV1, yamlType...)
	a.must(t, 200, aliceToken, "GET", "/api/v1/apis/orders-1-0/openapi", nil)

	// Export and import.
	exported := a.must(t, 200, adminToken, "GET", "/api/v1/export", nil)
	a.must(t, 403, publisherToken, "GET", "/api/v1/export", nil)
	a.must(t, 200, adminToken, "POST", "/api/v1/import", string(exported.body))
	a.must(t, 403, publisherToken, "POST", "/api/v1/import", string(exported.body))
	a.must(t, 400, adminToken, "POST", "/api/v1/import", map[string]any{"apis": []any{map[string]any{"id": "bad id!"}}})

	driveUsage(t, a)
}
