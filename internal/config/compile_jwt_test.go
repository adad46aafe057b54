package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestLoadJWTSettings loads a config whose files are named relative to it,
// and checks the compiled issuers, revocations and backend JWT.
func TestLoadJWTSettings(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "keys"), 0o700))
	must(os.WriteFile(filepath.Join(dir, "keys", "backend.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))
	must(os.WriteFile(filepath.Join(dir, "keys", "jwks.json"), []byte(`{"keys":[{"kty":"EC","crv":"P-256","kid":"k",`+
		`"x":"y0SJaWqo7sN2AfECsRw3qYMY4PEeaPhfsgFqdNYDXtA","y":"D9cDmMjZ0uLRsxZYk8MFV2yA2mb7sr0e87Mc38AJaW8"}]}`), 0o600))
	must(os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(`
issuers:
  - name: files
    issuer: https://files.test
    jwksFile: keys/jwks.json
  - name: local
    issuer: http://127.0.0.1:9999
    jwksUri: http://127.0.0.1:9999/jwks
    subscriptionRequired: false
    leeway: 5s
    jwksRefreshInterval: 1m
    jwksMinRefreshInterval: 5s
    scopesClaim: scp
    clientIdClaim: cid
revokedTokens:
  - {jti: live, expiresAt: 2999-01-01T00:00:00Z}
  - {jti: gone, expiresAt: 2001-01-01T00:00:00Z}
  - {jti: forever}
backendJwt: {enabled: true, signingKeyFile: keys/backend.key, header: X-Caller}
applications:
  - {id: mobile, clientIds: [mobile-client]}
`), 0o600))

	snap, err := Load(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files, local := snap.Issuers["https://files.test"], snap.Issuers["http://127.0.0.1:9999"]
	if files == nil || files.JWKS.File != filepath.Join(dir, "keys", "jwks.json") || files.Leeway != 30*time.Second ||
		files.ScopesClaim != "scope" || files.ClientIDClaim != "azp" || !files.SubscriptionRequired {
		t.Errorf("defaults: %+v", files)
	}
	if local == nil || local.SubscriptionRequired || local.Leeway != 5*time.Second || local.JWKS.URI != "http://127.0.0.1:9999/jwks" ||
		local.JWKS.RefreshInterval != time.Minute || local.JWKS.MinRefreshInterval != 5*time.Second ||
		local.ScopesClaim != "scp" || local.ClientIDClaim != "cid" {
		t.Errorf("settings: %+v", local)
	}
	if len(snap.IssuerList) != 2 || snap.IssuerList[0] != files {
		t.Errorf("issuer order %v", snap.IssuerList)
	}
	if _, ok := snap.Revoked["live"]; !ok {
		t.Error("live revocation dropped")
	}
	if _, ok := snap.Revoked["forever"]; !ok {
		t.Error("revocation without expiry dropped")
	}
	if _, ok := snap.Revoked["gone"]; ok {
		t.Error("expired revocation kept")
	}
	b := snap.BackendJWT
	if b == nil || b.Header != "x-caller" || b.TTL != 5*time.Minute || b.Signer == nil || b.Signer.Alg() != "ES256" {
		t.Fatalf("backend JWT %+v", b)
	}
	if !snap.ReservedHeaders["x-caller"] {
		t.Error("the backend JWT header is not reserved")
	}
	if snap.ClientIDs["mobile-client"] != snap.Applications["mobile"] {
		t.Error("client id not mapped")
	}
}

// TestRateLimitPolicyDefaults: without burst, a policy admits its whole
// period's requests at once; burst: 0 spaces them evenly.
func TestRateLimitPolicyDefaults(t *testing.T) {
	snap, err := Compile([]byte(`
rateLimitPolicies:
  - name: quota
    limits: [{requests: 100000, per: 24h}, {requests: 10, per: 1s, burst: 0}]
rateLimit: {store: redis, redis: {addrs: ["10.0.0.1:6379", "10.0.0.2:6379"], password: "${PW}"}, failureMode: closed, localFallbackShare: 0.25}
`), func(name string) (string, bool) { return map[string]string{"PW": "s3cret"}[name], name == "PW" })
	if err != nil {
		t.Fatal(err)
	}
	p := snap.RateLimitPolicies["quota"]
	if p == nil || p.Limits[0].Burst != 99999 || p.Limits[1].Burst != 0 {
		t.Fatalf("policy %+v", p)
	}
	rl := snap.RateLimit
	if rl.Store != "redis" || len(rl.Redis.Addrs) != 2 || rl.Redis.Password != "s3cret" || rl.Redis.Timeout != 25*time.Millisecond ||
		rl.FailureMode != 1 || rl.FallbackShare != 0.25 {
		t.Fatalf("store settings %+v", rl)
	}
	if def, _ := Compile([]byte("unmatched: deny\n"), noEnv); def.RateLimit.Store != "memory" || def.RateLimit.FailureMode != 0 || def.RateLimit.FallbackShare != 1 {
		t.Fatalf("defaults %+v", def.RateLimit)
	}
}
