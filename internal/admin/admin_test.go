package admin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/keys"
	"github.com/tollgate/tollgate/internal/store"
	"github.com/tollgate/tollgate/internal/testpg"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testpg.StopShared()
	os.Exit(code)
}

// Static tokens of the test API, by role.
const (
	adminToken     = "admin-token"
	publisherToken = "publisher-token"
	aliceToken     = "alice-token" // developer
	bobToken       = "bob-token"   // developer
)

// testAPI is an admin API over a fresh store, on a loopback port, with a
// log captured for the tests that look for secrets in it.
type testAPI struct {
	url string
	st  *store.Store
	log *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func hashHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

var signer = func() *keys.Signer {
	s, err := keys.LoadSigner("../../examples/keys/test-issuer.key")
	if err != nil {
		panic(err)
	}
	return s
}()

const testIssuer = "https://idp.tollgate.test"

func startAPI(t *testing.T, backend string) *testAPI {
	t.Helper()
	o := store.Options{PollInterval: time.Hour}
	if backend == "postgres" {
		o.Postgres = testpg.Database(t)
	} else {
		o.SQLite = filepath.Join(t.TempDir(), "tollgate.db")
	}
	st, err := store.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwks, signer.PublicJWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	auth, err := NewAuthenticator(ctx, config.AdminAuth{
		Tokens: []config.AdminToken{
			{Name: "ops", SHA256: hashHex(adminToken), Role: config.RoleAdmin},
			{Name: "pub", SHA256: hashHex(publisherToken), Role: config.RolePublisher},
			{Name: "alice", SHA256: hashHex(aliceToken), Role: config.RoleDeveloper},
			{Name: "bob", SHA256: hashHex(bobToken), Role: config.RoleDeveloper},
		},
		Issuer: &config.AdminIssuer{Issuer: testIssuer, JwksFile: jwks, RolesClaim: "roles", SubjectClaim: "sub", Leeway: "30s"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := &testAPI{st: st, log: &syncBuffer{}}
	log := slog.New(slog.NewJSONHandler(a.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := httptest.NewServer(New(Options{Store: st, Auth: auth, Log: log}))
	t.Cleanup(srv.Close)
	a.url = srv.URL
	return a
}

// response is one answer of the API.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("not a JSON object (%d): %s", r.status, r.body)
	}
	return m
}

func (a *testAPI) do(t *testing.T, token, method, path string, body any, headers ...string) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, a.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// must asserts a status and returns the response.
func (a *testAPI) must(t *testing.T, want int, token, method, path string, body any, headers ...string) response {
	t.Helper()
	r := a.do(t, token, method, path, body, headers...)
	if r.status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, want, r.body)
	}
	return r
}

func backendsOf(t *testing.T, fn func(t *testing.T, a *testAPI)) {
	for _, b := range []string{"sqlite", "postgres"} {
		t.Run(b, func(t *testing.T) { fn(t, startAPI(t, b)) })
	}
}

var petstore = map[string]any{
	"id": "petstore", "name": "PetStore", "version": "v1", "basePath": "/petstore/v1", "security": []string{"apiKey"},
	"operations": []any{map[string]any{"path": "/pets", "methods": []string{"GET"}}},
}

// seed makes a published API, a gold policy and alice's application.
func seed(t *testing.T, a *testAPI) {
	t.Helper()
	a.must(t, 201, publisherToken, "POST", "/api/v1/policies", map[string]any{"name": "gold", "limits": []any{map[string]any{"requests": 100, "per": "1s"}}})
	a.must(t, 201, publisherToken, "POST", "/api/v1/apis", petstore)
	a.must(t, 200, publisherToken, "PATCH", "/api/v1/apis/petstore", map[string]any{"state": "published"})
	a.must(t, 201, aliceToken, "POST", "/api/v1/applications", map[string]any{"id": "alice-app", "name": "Alice's app"})
}

func TestOnboarding(t *testing.T) {
	backendsOf(t, func(t *testing.T, a *testAPI) {
		seed(t, a)
		app := a.must(t, 200, aliceToken, "GET", "/api/v1/applications/alice-app", nil).json(t)
		if app["owner"] != "alice" {
			t.Fatalf("a developer's application is theirs: owner %v", app["owner"])
		}
		sub := a.must(t, 201, aliceToken, "POST", "/api/v1/subscriptions", map[string]any{"application": "alice-app", "api": "petstore", "tier": "gold"}).json(t)
		if sub["state"] != "active" || sub["tier"] != "gold" || sub["id"] != "alice-app/petstore" {
			t.Fatalf("subscription: %v", sub)
		}
		key := a.must(t, 201, aliceToken, "POST", "/api/v1/applications/alice-app/keys", map[string]any{"name": "ci"}).json(t)
		secret, _ := key["key"].(string)
		id, formatted, ok := keys.ParseKey(secret)
		if !formatted || !ok || id != key["id"] || key["prefix"] != keys.KeyPrefix+id {
			t.Fatalf("key %v: parsed id %q formatted %v ok %v", key, id, formatted, ok)
		}
		if _, has := key["sha256"]; has {
			t.Fatal("the digest is not shown")
		}
		// Stored as its digest, claimed so no other key can hold it.
		rec, err := a.st.Get(context.Background(), store.KindAPIKey, id)
		if err != nil || !strings.Contains(string(rec.Body), keys.HashAPIKey(secret).String()) || strings.Contains(string(rec.Body), secret) {
			t.Fatalf("stored key: %s (%v)", rec.Body, err)
		}
		// The secret is returned once: never by a read.
		for _, path := range []string{"/api/v1/applications/alice-app/keys", "/api/v1/applications/alice-app/keys/" + id, "/api/v1/audit"} {
			tok := aliceToken
			if path == "/api/v1/audit" {
				tok = adminToken
			}
			if r := a.must(t, 200, tok, "GET", path, nil); bytes.Contains(r.body, []byte(secret)) {
				t.Fatalf("%s shows the secret: %s", path, r.body)
			}
		}
		// Revoked: listed as such.
		a.must(t, 200, aliceToken, "POST", "/api/v1/applications/alice-app/keys/"+id+"/revoke", nil)
		if got := a.must(t, 200, aliceToken, "GET", "/api/v1/applications/alice-app/keys/"+id, nil).json(t); got["state"] != "revoked" {
			t.Fatalf("after revoke: %v", got)
		}
		// Nor does any error about the key, or the log.
		for _, r := range []struct{ method, path string }{
			{"POST", "/api/v1/applications/alice-app/keys/" + id + "/regenerate"},
			{"POST", "/api/v1/applications/alice-app/keys/" + id + "/revoke"},
			{"GET", "/api/v1/applications/alice-app/keys/" + secret},
			{"POST", "/api/v1/applications/alice-app/keys/" + secret + "/revoke"},
			{"GET", "/api/v1/applications/" + secret + "/keys"},
			{"POST", "/api/v1/subscriptions/" + secret + "/petstore/approve"},
		} {
			if got := a.do(t, aliceToken, r.method, r.path, nil); bytes.Contains(got.body, []byte(secret)) {
				t.Fatalf("%s %s shows the secret: %s", r.method, r.path, got.body)
			}
		}
		if got := a.do(t, bobToken, "POST", "/api/v1/applications/alice-app/keys", map[string]any{"name": "x"}); bytes.Contains(got.body, []byte(secret)) {
			t.Fatal("an error shows the secret")
		}
		if strings.Contains(a.log.String(), secret) {
			t.Fatal("the secret is in the log")
		}
	})
}

// Developer A can neither read nor change what belongs to developer B, on
// any route: B's things are as if absent (404), so their existence is not
// told either.
func TestDevelopersSeeOnlyTheirOwn(t *testing.T) {
	backendsOf(t, func(t *testing.T, a *testAPI) {
		seed(t, a)
		a.must(t, 201, aliceToken, "POST", "/api/v1/subscriptions", map[string]any{"application": "alice-app", "api": "petstore"})
		key := a.must(t, 201, aliceToken, "POST", "/api/v1/applications/alice-app/keys", map[string]any{"name": "ci"}).json(t)
		kid := key["id"].(string)
		routes := []struct {
			method, path string
			body         any
		}{
			{"GET", "/api/v1/applications/alice-app", nil},
			{"PUT", "/api/v1/applications/alice-app", map[string]any{"name": "mine now"}},
			{"PATCH", "/api/v1/applications/alice-app", map[string]any{"name": "mine now"}},
			{"DELETE", "/api/v1/applications/alice-app", nil},
			{"GET", "/api/v1/applications/alice-app/keys", nil},
			{"POST", "/api/v1/applications/alice-app/keys", map[string]any{"name": "stolen"}},
			{"GET", "/api/v1/applications/alice-app/keys/" + kid, nil},
			{"DELETE", "/api/v1/applications/alice-app/keys/" + kid, nil},
			{"POST", "/api/v1/applications/alice-app/keys/" + kid + "/regenerate", nil},
			{"POST", "/api/v1/applications/alice-app/keys/" + kid + "/revoke", nil},
			{"GET", "/api/v1/subscriptions/alice-app/petstore", nil},
			{"DELETE", "/api/v1/subscriptions/alice-app/petstore", nil},
		}
		for _, r := range routes {
			got := a.do(t, bobToken, r.method, r.path, r.body)
			if got.status != http.StatusNotFound {
				t.Errorf("bob %s %s: %d, want 404: %s", r.method, r.path, got.status, got.body)
			}
		}
		// Subscribing someone else's application is refused too.
		if got := a.do(t, bobToken, "POST", "/api/v1/subscriptions", map[string]any{"application": "alice-app", "api": "petstore"}); got.status != http.StatusBadRequest {
			t.Errorf("bob subscribes alice's app: %d %s", got.status, got.body)
		}
		// Listings hold only bob's (nothing).
		for _, path := range []string{"/api/v1/applications", "/api/v1/subscriptions", "/api/v1/subscriptions?application=alice-app"} {
			if got := a.must(t, 200, bobToken, "GET", path, nil).json(t); got["total"] != 0.0 {
				t.Errorf("bob lists %s: %v", path, got)
			}
		}
		// And alice's things are untouched.
		if got := a.must(t, 200, aliceToken, "GET", "/api/v1/applications/alice-app/keys/"+kid, nil).json(t); got["state"] != "active" {
			t.Fatalf("alice's key after bob: %v", got)
		}
	})
}

func TestRoles(t *testing.T) {
	backendsOf(t, func(t *testing.T, a *testAPI) {
		seed(t, a)
		tests := []struct {
			token, method, path string
			body                any
			want                int
		}{
			{"", "GET", "/api/v1/apis", nil, 401},
			{"wrong", "GET", "/api/v1/apis", nil, 401},
			{aliceToken, "POST", "/api/v1/apis", map[string]any{"id": "x", "security": []string{"none"}, "operations": []any{map[string]any{"path": "/x"}}}, 403},
			{aliceToken, "PATCH", "/api/v1/apis/petstore", map[string]any{"state": "retired"}, 403},
			{aliceToken, "POST", "/api/v1/policies", map[string]any{"name": "free", "limits": []any{map[string]any{"requests": 1, "per": "1s"}}}, 403},
			{aliceToken, "GET", "/api/v1/policies", nil, 200},
			{aliceToken, "GET", "/api/v1/issuers", nil, 403},
			{aliceToken, "GET", "/api/v1/audit", nil, 403},
			{publisherToken, "GET", "/api/v1/audit", nil, 403},
			{publisherToken, "POST", "/api/v1/issuers", map[string]any{"name": "idp", "issuer": "https://idp", "jwksUri": "https://idp/jwks"}, 403},
			{adminToken, "POST", "/api/v1/issuers", map[string]any{"name": "idp", "issuer": "https://idp", "jwksUri": "https://idp/jwks"}, 201},
			{publisherToken, "GET", "/api/v1/applications/alice-app", nil, 200},
			{publisherToken, "PATCH", "/api/v1/applications/alice-app", map[string]any{"name": "x"}, 403},
			{publisherToken, "GET", "/api/v1/applications/alice-app/keys", nil, 403},
			// Developers do not bind mesh or IdP identities to applications.
			{aliceToken, "PATCH", "/api/v1/applications/alice-app", map[string]any{"principals": []string{"spiffe://cluster.local/ns/shop/sa/cart"}}, 403},
			{aliceToken, "POST", "/api/v1/applications", map[string]any{"name": "x", "clientIds": []string{"someone-elses"}}, 403},
			{adminToken, "PATCH", "/api/v1/applications/alice-app", map[string]any{"principals": []string{"spiffe://cluster.local/ns/shop/sa/cart"}}, 200},
		}
		for _, tt := range tests {
			if got := a.do(t, tt.token, tt.method, tt.path, tt.body); got.status != tt.want {
				t.Errorf("%s %s with %q: %d, want %d: %s", tt.method, tt.path, tt.token, got.status, tt.want, got.body)
			}
		}
	})
}

func TestJWTCallers(t *testing.T) {
	a := startAPI(t, "sqlite")
	token := func(claims jwt.MapClaims) string {
		claims["iss"], claims["exp"], claims["iat"] = testIssuer, time.Now().Add(time.Hour).Unix(), time.Now().Unix()
		s, err := signer.Sign(claims)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	carol := token(jwt.MapClaims{"sub": "carol@example.com", "roles": []any{"developer"}})
	me := a.must(t, 200, carol, "GET", "/api/v1/me", nil).json(t)
	if me["name"] != "carol@example.com" || me["role"] != "developer" {
		t.Fatalf("me: %v", me)
	}
	app := a.must(t, 201, carol, "POST", "/api/v1/applications", map[string]any{"name": "Carol's"}).json(t)
	if app["owner"] != "carol@example.com" || !strings.HasPrefix(app["id"].(string), "app-") {
		t.Fatalf("carol's application: %v", app)
	}
	for name, tok := range map[string]string{
		"no role":      token(jwt.MapClaims{"sub": "dave"}),
		"unknown role": token(jwt.MapClaims{"sub": "dave", "roles": "root"}),
		"no subject":   token(jwt.MapClaims{"roles": "admin"}),
	} {
		if got := a.do(t, tok, "GET", "/api/v1/me", nil); got.status != 401 {
			t.Errorf("%s: %d %s", name, got.status, got.body)
		}
	}
	if a.must(t, 200, token(jwt.MapClaims{"sub": "erin", "roles": "developer admin"}), "GET", "/api/v1/me", nil).json(t)["role"] != "admin" {
		t.Error("the strongest role named wins")
	}
}

// Two admins read the same API and both change it: the second gets 412.
func TestLostUpdate(t *testing.T) {
	backendsOf(t, func(t *testing.T, a *testAPI) {
		seed(t, a)
		first := a.must(t, 200, adminToken, "GET", "/api/v1/apis/petstore", nil)
		second := a.must(t, 200, publisherToken, "GET", "/api/v1/apis/petstore", nil)
		tag := first.header.Get("ETag")
		if tag == "" || tag != second.header.Get("ETag") {
			t.Fatalf("ETags %q and %q", tag, second.header.Get("ETag"))
		}
		r := a.must(t, 200, adminToken, "PATCH", "/api/v1/apis/petstore", map[string]any{"description": "first"}, "If-Match", tag)
		if r.header.Get("ETag") == tag {
			t.Fatal("a write gives a new ETag")
		}
		lost := a.must(t, 412, publisherToken, "PATCH", "/api/v1/apis/petstore", map[string]any{"description": "second"}, "If-Match", tag)
		if lost.json(t)["code"] != CodePreconditionFailed {
			t.Fatalf("412 body: %s", lost.body)
		}
		if got := a.must(t, 200, adminToken, "GET", "/api/v1/apis/petstore", nil).json(t); got["description"] != "first" {
			t.Fatalf("after the lost update: %v", got)
		}
	})
}

func TestIdempotentPost(t *testing.T) {
	backendsOf(t, func(t *testing.T, a *testAPI) {
		seed(t, a)
		body := map[string]any{"name": "ci"}
		firstAnswer := a.must(t, 201, aliceToken, "POST", "/api/v1/applications/alice-app/keys", body, "Idempotency-Key", "k-1")
		first := firstAnswer.json(t)
		again := a.must(t, 201, aliceToken, "POST", "/api/v1/applications/alice-app/keys", body, "Idempotency-Key", "k-1")
		replayed := again.json(t)
		if again.header.Get("Idempotent-Replayed") != "true" || replayed["id"] != first["id"] || again.header.Get("ETag") != firstAnswer.header.Get("ETag") {
			t.Fatalf("replay: %v (first %v)", replayed, first)
		}
		if _, has := replayed["key"]; has {
			t.Fatal("a replay shows the secret again")
		}
		list := a.must(t, 200, aliceToken, "GET", "/api/v1/applications/alice-app/keys", nil).json(t)
		if list["total"] != 1.0 {
			t.Fatalf("keys after a replay: %v", list["total"])
		}
		// The same key for another request is refused; bob's keys are his.
		a.must(t, 422, aliceToken, "POST", "/api/v1/applications/alice-app/keys", map[string]any{"name": "other"}, "Idempotency-Key", "k-1")
		a.must(t, 201, bobToken, "POST", "/api/v1/applications", map[string]any{"id": "bob-app"}, "Idempotency-Key", "k-1")
	})
}

func TestPaging(t *testing.T) {
	backendsOf(t, func(t *testing.T, a *testAPI) {
		for i := range 5 {
			a.must(t, 201, adminToken, "POST", "/api/v1/policies", map[string]any{"name": fmt.Sprintf("p%d", i), "limits": []any{map[string]any{"requests": 1, "per": "1s"}}})
		}
		got := a.must(t, 200, adminToken, "GET", "/api/v1/policies?offset=3&limit=10", nil).json(t)
		items := got["items"].([]any)
		if got["total"] != 5.0 || len(items) != 2 || items[0].(map[string]any)["name"] != "p3" || got["offset"] != 3.0 || got["limit"] != 10.0 {
			t.Fatalf("page: %v", got)
		}
		for _, q := range []string{"offset=-1", "limit=0", "limit=100000", "offset=x"} {
			a.must(t, 400, adminToken, "GET", "/api/v1/policies?"+q, nil)
		}
	})
}

func TestRegenerateGrace(t *testing.T) {
	a := startAPI(t, "sqlite")
	seed(t, a)
	old := a.must(t, 201, aliceToken, "POST", "/api/v1/applications/alice-app/keys", map[string]any{"name": "ci"}).json(t)
	next := a.must(t, 201, aliceToken, "POST", "/api/v1/applications/alice-app/keys/"+old["id"].(string)+"/regenerate", map[string]any{"grace": "1h"}).json(t)
	if next["key"] == "" || next["id"] == old["id"] || next["name"] != "ci" {
		t.Fatalf("regenerated: %v", next)
	}
	was := a.must(t, 200, aliceToken, "GET", "/api/v1/applications/alice-app/keys/"+old["id"].(string), nil).json(t)
	exp, err := time.Parse(time.RFC3339Nano, fmt.Sprint(was["expiresAt"]))
	if err != nil || time.Until(exp) > time.Hour || time.Until(exp) < 59*time.Minute || was["replacedBy"] != next["id"] || was["state"] != "active" {
		t.Fatalf("the old key after regenerate: %v", was)
	}
	// The old key changed (its expiry): a write from before is refused.
	a.must(t, 412, aliceToken, "POST", "/api/v1/applications/alice-app/keys/"+old["id"].(string)+"/revoke", nil, "If-Match", `"1"`)
}

func TestLifecycle(t *testing.T) {
	backendsOf(t, func(t *testing.T, a *testAPI) {
		a.must(t, 201, publisherToken, "POST", "/api/v1/apis", petstore)
		a.must(t, 201, aliceToken, "POST", "/api/v1/applications", map[string]any{"id": "alice-app"})
		// Not yet published: developers do not see it, nobody subscribes.
		a.must(t, 404, aliceToken, "GET", "/api/v1/apis/petstore", nil)
		a.must(t, 400, aliceToken, "POST", "/api/v1/subscriptions", map[string]any{"application": "alice-app", "api": "petstore"})
		a.must(t, 409, adminToken, "POST", "/api/v1/subscriptions", map[string]any{"application": "alice-app", "api": "petstore"})
		a.must(t, 200, publisherToken, "PATCH", "/api/v1/apis/petstore", map[string]any{"state": "published", "requiresApproval": true})
		sub := a.must(t, 201, aliceToken, "POST", "/api/v1/subscriptions", map[string]any{"application": "alice-app", "api": "petstore"}).json(t)
		if sub["state"] != "pending" {
			t.Fatalf("an API that requires approval: %v", sub)
		}
		a.must(t, 403, aliceToken, "POST", "/api/v1/subscriptions/alice-app/petstore/approve", nil)
		if got := a.must(t, 200, publisherToken, "POST", "/api/v1/subscriptions/alice-app/petstore/approve", nil).json(t); got["state"] != "active" {
			t.Fatalf("approved: %v", got)
		}
		a.must(t, 409, publisherToken, "POST", "/api/v1/subscriptions/alice-app/petstore/approve", nil)
		// Deprecated: still listed for developers, no new subscriptions.
		a.must(t, 200, publisherToken, "PATCH", "/api/v1/apis/petstore", map[string]any{"state": "deprecated"})
		a.must(t, 200, aliceToken, "GET", "/api/v1/apis/petstore", nil)
		a.must(t, 201, aliceToken, "POST", "/api/v1/applications", map[string]any{"id": "alice-two"})
		a.must(t, 409, aliceToken, "POST", "/api/v1/subscriptions", map[string]any{"application": "alice-two", "api": "petstore"})
		// In use: not deleted; retired: never back.
		a.must(t, 409, publisherToken, "DELETE", "/api/v1/apis/petstore", nil)
		a.must(t, 200, publisherToken, "PATCH", "/api/v1/apis/petstore", map[string]any{"state": "retired"})
		a.must(t, 409, publisherToken, "PATCH", "/api/v1/apis/petstore", map[string]any{"state": "published"})
		a.must(t, 204, publisherToken, "DELETE", "/api/v1/apis/petstore", nil)
		a.must(t, 404, aliceToken, "GET", "/api/v1/subscriptions/alice-app/petstore", nil)
	})
}

func TestBadInputGetsTheErrorShape(t *testing.T) {
	a := startAPI(t, "sqlite")
	seed(t, a)
	tests := []struct {
		method, path string
		body         any
		status       int
		code         string
	}{
		{"POST", "/api/v1/apis", "not json", 400, CodeInvalid},
		{"POST", "/api/v1/apis", "[1]", 400, CodeInvalid},
		{"POST", "/api/v1/apis", map[string]any{"id": "x", "bogus": 1}, 400, CodeInvalid},
		{"POST", "/api/v1/apis", map[string]any{"id": "bad id!", "security": []string{"apiKey"}, "operations": []any{map[string]any{"path": "/x"}}}, 400, CodeInvalid},
		{"POST", "/api/v1/apis", map[string]any{"id": "x", "security": []string{"apiKey"}, "rateLimit": "nope", "operations": []any{map[string]any{"path": "/x"}}}, 400, CodeInvalid},
		{"POST", "/api/v1/apis", petstore, 409, CodeConflict},
		{"POST", "/api/v1/apis", strings.Repeat(" ", 2<<20), 413, CodeTooLarge},
		{"GET", "/api/v1/apis/nope", nil, 404, CodeNotFound},
		{"PATCH", "/api/v1/apis/petstore", map[string]any{"state": "sideways"}, 409, CodeConflict},
		{"PATCH", "/api/v1/apis/petstore", map[string]any{"id": "renamed"}, 400, CodeInvalid},
		{"DELETE", "/api/v1/policies/gold", nil, 409, CodeConflict},
	}
	for _, tt := range tests {
		tok := adminToken
		if tt.path == "/api/v1/policies/gold" {
			a.must(t, 200, adminToken, "PATCH", "/api/v1/apis/petstore", map[string]any{"rateLimit": "gold"})
		}
		got := a.do(t, tok, tt.method, tt.path, tt.body)
		if got.status != tt.status {
			t.Errorf("%s %s: %d, want %d: %.300s", tt.method, tt.path, got.status, tt.status, got.body)
			continue
		}
		if e := got.json(t); e["code"] != tt.code || e["message"] == "" {
			t.Errorf("%s %s: body %s, want code %s", tt.method, tt.path, got.body, tt.code)
		}
	}
}

// Unknown routes, and methods a route does not have, answer in the error
// shape too.
func TestUnknownRoutes(t *testing.T) {
	a := startAPI(t, "sqlite")
	for _, r := range [][2]string{{"GET", "/api/v1/nothing-here"}, {"PUT", "/api/v1/revoked-tokens/x"}, {"POST", "/api/v1/audit"}} {
		got := a.do(t, adminToken, r[0], r[1], nil)
		if got.status != 404 || got.json(t)["code"] != CodeNotFound {
			t.Errorf("%s %s: %d %s", r[0], r[1], got.status, got.body)
		}
	}
}

// Blocking an application blocks each of its subscriptions and new ones;
// unblocking gives each back the state it had, and one blocked on its
// own stays blocked.
func TestBlockApplication(t *testing.T) {
	backendsOf(t, func(t *testing.T, a *testAPI) {
		for _, id := range []string{"petstore", "orders", "books"} {
			api := map[string]any{"id": id, "basePath": "/" + id, "security": []string{"apiKey"}, "state": "published",
				"operations": []any{map[string]any{"path": "/", "methods": []string{"GET"}}}}
			a.must(t, 201, publisherToken, "POST", "/api/v1/apis", api)
		}
		a.must(t, 201, aliceToken, "POST", "/api/v1/applications", map[string]any{"id": "alice-app"})
		a.must(t, 201, aliceToken, "POST", "/api/v1/subscriptions", map[string]any{"application": "alice-app", "api": "petstore"})
		a.must(t, 201, aliceToken, "POST", "/api/v1/subscriptions", map[string]any{"application": "alice-app", "api": "orders"})
		a.must(t, 200, publisherToken, "PATCH", "/api/v1/subscriptions/alice-app/orders", map[string]any{"state": "onHold"})
		state := func(api string) string {
			return a.must(t, 200, aliceToken, "GET", "/api/v1/subscriptions/alice-app/"+api, nil).json(t)["state"].(string)
		}
		if got := a.must(t, 200, publisherToken, "POST", "/api/v1/applications/alice-app/block", nil).json(t); got["blocked"] != true {
			t.Fatalf("blocked application: %v", got)
		}
		a.must(t, 201, aliceToken, "POST", "/api/v1/subscriptions", map[string]any{"application": "alice-app", "api": "books"})
		for _, api := range []string{"petstore", "orders", "books"} {
			if got := state(api); got != "blocked" {
				t.Errorf("%s while the application is blocked: %s", api, got)
			}
		}
		a.must(t, 409, publisherToken, "PATCH", "/api/v1/subscriptions/alice-app/petstore", map[string]any{"state": "active"})
		a.must(t, 200, publisherToken, "PATCH", "/api/v1/subscriptions/alice-app/petstore", map[string]any{"tier": ""})
		// Developers cannot unblock through an edit of their application.
		a.must(t, 200, aliceToken, "PATCH", "/api/v1/applications/alice-app", map[string]any{"name": "Alice", "blocked": false})
		if got := a.must(t, 200, aliceToken, "GET", "/api/v1/applications/alice-app", nil).json(t); got["blocked"] != true {
			t.Fatalf("an edit unblocked the application: %v", got)
		}
		a.must(t, 200, publisherToken, "POST", "/api/v1/applications/alice-app/unblock", nil)
		for api, want := range map[string]string{"petstore": "active", "orders": "onHold", "books": "active"} {
			if got := state(api); got != want {
				t.Errorf("%s after unblocking: %s, want %s", api, got, want)
			}
		}
	})
}

// An API's tiers bound what a subscription may choose; the first is the
// default.
func TestAPITiers(t *testing.T) {
	backendsOf(t, func(t *testing.T, a *testAPI) {
		for _, name := range []string{"bronze", "silver"} {
			a.must(t, 201, publisherToken, "POST", "/api/v1/policies", map[string]any{"name": name, "limits": []any{map[string]any{"requests": 10, "per": "1s"}}})
		}
		api := map[string]any{"id": "petstore", "basePath": "/pets", "security": []string{"apiKey"}, "state": "published",
			"tags": []string{"pets", "Zoo 2"}, "tiers": []string{"bronze", "silver"},
			"operations": []any{map[string]any{"path": "/", "methods": []string{"GET"}}}}
		a.must(t, 400, publisherToken, "POST", "/api/v1/apis", map[string]any{"id": "x", "security": []string{"apiKey"}, "tiers": []string{"gold"},
			"operations": []any{map[string]any{"path": "/", "methods": []string{"GET"}}}})
		a.must(t, 400, publisherToken, "POST", "/api/v1/apis", map[string]any{"id": "y", "security": []string{"apiKey"}, "tags": []string{"<b>"},
			"operations": []any{map[string]any{"path": "/", "methods": []string{"GET"}}}})
		got := a.must(t, 201, publisherToken, "POST", "/api/v1/apis", api).json(t)
		if fmt.Sprint(got["tags"], got["tiers"]) != "[pets Zoo 2] [bronze silver]" {
			t.Fatalf("tags and tiers: %v %v", got["tags"], got["tiers"])
		}
		a.must(t, 201, aliceToken, "POST", "/api/v1/applications", map[string]any{"id": "a1"})
		a.must(t, 201, aliceToken, "POST", "/api/v1/applications", map[string]any{"id": "a2"})
		a.must(t, 400, aliceToken, "POST", "/api/v1/subscriptions", map[string]any{"application": "a1", "api": "petstore", "tier": "gold"})
		if sub := a.must(t, 201, aliceToken, "POST", "/api/v1/subscriptions", map[string]any{"application": "a1", "api": "petstore"}).json(t); sub["tier"] != "bronze" {
			t.Errorf("default tier: %v", sub)
		}
		if sub := a.must(t, 201, aliceToken, "POST", "/api/v1/subscriptions", map[string]any{"application": "a2", "api": "petstore", "tier": "silver"}).json(t); sub["tier"] != "silver" {
			t.Errorf("chosen tier: %v", sub)
		}
		a.must(t, 204, aliceToken, "DELETE", "/api/v1/subscriptions/a1/petstore", nil)
		// Offered by the API: still in use.
		a.must(t, 409, publisherToken, "DELETE", "/api/v1/policies/bronze", nil)
		a.must(t, 200, publisherToken, "PATCH", "/api/v1/apis/petstore", map[string]any{"tiers": []string{"silver"}})
		a.must(t, 204, publisherToken, "DELETE", "/api/v1/policies/bronze", nil)
	})
}
