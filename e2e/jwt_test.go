package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate/internal/keys"
)

// identityProvider serves a JWK Set over HTTPS, with a certificate the
// enforcer trusts through jwksCaFile.
type identityProvider struct {
	*httptest.Server
	jwks   atomic.Pointer[[]byte]
	down   atomic.Bool
	CAFile string
}

func newIdentityProvider(t *testing.T) *identityProvider {
	p := &identityProvider{}
	empty := []byte(`{"keys":[]}`)
	p.jwks.Store(&empty)
	p.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if p.down.Load() {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(*p.jwks.Load())
	}))
	t.Cleanup(p.Close)
	p.CAFile = filepath.Join(t.TempDir(), "idp-ca.pem")
	must(t, os.WriteFile(p.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.Certificate().Raw}), 0o600))
	return p
}

// publish serves the public keys of signers.
func (p *identityProvider) publish(t *testing.T, signers ...*keys.Signer) {
	var all struct {
		Keys []json.RawMessage `json:"keys"`
	}
	for _, s := range signers {
		var one struct {
			Keys []json.RawMessage `json:"keys"`
		}
		must(t, json.Unmarshal(s.PublicJWKS(), &one))
		all.Keys = append(all.Keys, one.Keys...)
	}
	data, err := json.Marshal(all)
	must(t, err)
	p.jwks.Store(&data)
}

func newSigner(t *testing.T) (*keys.Signer, string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	s, err := keys.NewSigner(key)
	must(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	must(t, err)
	path := filepath.Join(t.TempDir(), "key.pem")
	must(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))
	return s, path
}

func token(t *testing.T, s *keys.Signer, edit func(jwt.MapClaims)) string {
	now := time.Now()
	claims := jwt.MapClaims{"iss": "https://idp.e2e.test", "aud": "petstore", "sub": "alice", "azp": "mobile-client",
		"scope": "pets:read", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "email": "alice@example.com"}
	if edit != nil {
		edit(claims)
	}
	tok, err := s.Sign(claims)
	must(t, err)
	return tok
}

func TestJWTEndToEnd(t *testing.T) {
	idp := newIdentityProvider(t)
	key1, _ := newSigner(t)
	idp.publish(t, key1)
	_, backendKeyFile := newSigner(t)

	e := startEnforcer(t, `
issuers:
  - name: e2e-idp
    issuer: https://idp.e2e.test
    jwksUri: `+idp.URL+`/jwks.json
    jwksCaFile: `+idp.CAFile+`
    jwksMinRefreshInterval: 1s
    audiences: [petstore]
    claimHeaders: {email: x-user-email}
backendJwt: {enabled: true, signingKeyFile: `+backendKeyFile+`}
apis:
  - id: petstore
    basePath: /petstore/v1
    security: [jwt]
    operations:
      - {path: /pets, methods: [GET], scopes: ["pets:read"]}
applications:
  - {id: mobile, name: Mobile app, clientIds: [mobile-client]}
subscriptions:
  - {application: mobile, api: petstore, state: active}
`)
	client := e.AuthClient()
	checkToken := func(tok string) (allowed bool, headers map[string]string, code string) {
		resp, err := client.Check(context.Background(), check("GET", "/petstore/v1/pets",
			map[string]string{"authorization": "Bearer " + tok, "x-user-email": "spoofed@example.com"}, nil))
		must(t, err)
		if ok := resp.GetOkResponse(); ok != nil {
			headers = map[string]string{}
			for _, h := range ok.GetHeaders() {
				headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
			}
			return true, headers, ""
		}
		var body map[string]string
		_ = json.Unmarshal([]byte(resp.GetDeniedResponse().GetBody()), &body)
		return false, nil, body["code"]
	}

	allowed, headers, _ := checkToken(token(t, key1, nil))
	if !allowed || headers["x-consumer-id"] != "mobile" || headers["x-authenticated-userid"] != "alice" ||
		headers["x-credential-type"] != "jwt" || headers["x-user-email"] != "alice@example.com" {
		t.Fatalf("allowed=%v headers=%v", allowed, headers)
	}
	if allowed, _, code := checkToken(token(t, key1, func(c jwt.MapClaims) { c["aud"] = "billing" })); allowed || code != "900901" {
		t.Fatalf("wrong audience: allowed=%v code=%s", allowed, code)
	}

	// The backend JWT verifies with the keys the admin port publishes.
	resp, err := http.Get(e.AdminURL() + "/.well-known/jwks.json")
	must(t, err)
	published, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	set, err := keys.ParseJWKS(published)
	if err != nil {
		t.Fatalf("published JWKS %s: %v", published, err)
	}
	var backend jwt.MapClaims
	if _, err := jwt.ParseWithClaims(headers["x-jwt-assertion"], &backend, func(tok *jwt.Token) (any, error) {
		k, ok := set.Find(tok.Header["kid"].(string), tok.Method.Alg())
		if !ok {
			t.Fatal("backend JWT kid not published")
		}
		return k.Key, nil
	}); err != nil {
		t.Fatalf("backend JWT: %v", err)
	}
	if backend["sub"] != "alice" || backend["application"] != "mobile" || backend["api"] != "petstore" {
		t.Errorf("backend claims %v", backend)
	}

	// Key rotation: the IdP adds a key; the first token signed with it
	// brings the new set in early.
	key2, _ := newSigner(t)
	idp.publish(t, key1, key2)
	waitFor(t, "a token of the new key to be accepted", 10*time.Second, func() bool {
		ok, _, _ := checkToken(token(t, key2, func(c jwt.MapClaims) { c["jti"] = time.Now().String() }))
		return ok
	})
	if ok, _, _ := checkToken(token(t, key1, func(c jwt.MapClaims) { c["sub"] = "still-key1" })); !ok {
		t.Fatal("tokens of the old key stopped working while it is still published")
	}

	// The IdP goes down: refreshes fail, the last good keys keep working.
	idp.down.Store(true)
	failures := e.Metric("tollgate_jwks_refresh_total", "issuer", "e2e-idp", "result", "failure")
	unknown, _ := newSigner(t)
	waitFor(t, "a failed refresh to be counted", 10*time.Second, func() bool {
		checkToken(token(t, unknown, nil)) // an unknown kid asks for a refresh
		return e.Metric("tollgate_jwks_refresh_total", "issuer", "e2e-idp", "result", "failure") > max(failures, 0)
	})
	if ok, _, _ := checkToken(token(t, key2, func(c jwt.MapClaims) { c["sub"] = "during-outage" })); !ok {
		t.Fatal("tokens stopped working while the IdP is down")
	}
	if e.Metric("tollgate_jwks_refresh_total", "issuer", "e2e-idp", "result", "success") < 2 {
		t.Error("successful refreshes not counted")
	}
	if e.Metric("tollgate_jwks_age_seconds", "issuer", "e2e-idp") < 0 {
		t.Error("no JWKS age gauge")
	}
	if strings.Contains(e.Logs(), "eyJ") {
		t.Error("a token reached the log")
	}
}

// TestQuickstartToken follows the README: `enforcer token` with the bundled
// test key, against the quickstart config.
func TestQuickstartToken(t *testing.T) {
	data, err := os.ReadFile("../examples/quickstart.yaml")
	must(t, err)
	abs, err := filepath.Abs("../examples/keys/test-issuer.jwks.json")
	must(t, err)
	cfg := strings.NewReplacer(
		"127.0.0.1:8081", "127.0.0.1:0", "127.0.0.1:8082", "127.0.0.1:0", "127.0.0.1:8083", "127.0.0.1:0",
		"jwksFile: keys/test-issuer.jwks.json", "jwksFile: "+abs,
	).Replace(string(data))
	path := filepath.Join(t.TempDir(), "quickstart.yaml")
	must(t, os.WriteFile(path, []byte(cfg), 0o600))
	e := startEnforcerAt(t, path)

	code, tok, errOut := runCommand(t, nil, "token", "--key", "../examples/keys/test-issuer.key",
		"--issuer", "https://idp.quickstart.test", "--aud", "petstore", "--sub", "alice",
		"--client-id", "mobile-client", "--scope", "pets:read pets:write", "--claim", "email=alice@example.com", "--ttl", "10m")
	if code != 0 {
		t.Fatalf("token: exit %d: %s", code, errOut)
	}
	req, _ := http.NewRequest("GET", e.HTTPURL()+"/petstore/v1/pets", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(tok))
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Consumer-Id") != "mobile" || resp.Header.Get("X-User-Email") != "alice@example.com" {
		t.Fatalf("status %d headers %v", resp.StatusCode, resp.Header)
	}
}
