package authz

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate/internal/catalog"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/keys"
	"github.com/tollgate/tollgate/internal/model"
)

// movableClock is a clock tests can move.
type movableClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *movableClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *movableClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Test keys, generated once per test binary (RSA generation is slow).
var testKeys = sync.OnceValue(func() map[string]crypto.Signer {
	must := func(k crypto.Signer, err error) crypto.Signer {
		if err != nil {
			panic(err)
		}
		return k
	}
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey := must(rsa.GenerateKey(rand.Reader, 2048))
	return map[string]crypto.Signer{
		"rsa-1":      rsaKey,
		"rsa-pinned": rsaKey, // the same key, published with alg RS256
		"rsa-other":  must(rsa.GenerateKey(rand.Reader, 2048)),
		"ec256":      must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)),
		"ec384":      must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader)),
		"ec521":      must(ecdsa.GenerateKey(elliptic.P521(), rand.Reader)),
		"ed":         ed,
	}
})

// jwksFor publishes the public halves of the named test keys.
func jwksFor(t testing.TB, kids ...string) []byte {
	t.Helper()
	var set jwkset.JWKSMarshal
	for _, kid := range kids {
		meta := jwkset.JWKMetadataOptions{KID: kid, USE: jwkset.UseSig}
		if kid == "rsa-pinned" {
			meta.ALG = jwkset.AlgRS256
		}
		jwk, err := jwkset.NewJWKFromKey(testKeys()[kid].Public(), jwkset.JWKOptions{Metadata: meta})
		if err != nil {
			t.Fatal(err)
		}
		set.Keys = append(set.Keys, jwk.Marshal())
	}
	data, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

const jwtConfig = `
issuers:
  - name: idp
    issuer: https://idp.test
    jwksFile: JWKS
    audiences: [petstore, other]
    leeway: 30s
    claimHeaders: {email: x-user-email, groups: x-user-groups}
  - name: open
    issuer: https://open.test
    jwksFile: JWKS
    subscriptionRequired: false
    scopesClaim: scp
    clientIdClaim: cid
backendJwt: {enabled: true, signingKeyFile: BACKEND_KEY, ttl: 5m}
rateLimitPolicies:
  - {name: anon, limits: [{requests: 2, per: 1h, burst: 1}]}
revokedTokens: [{jti: revoked-1, expiresAt: 2030-01-01T00:00:00Z}]
apis:
  - id: petstore
    basePath: /petstore/v1
    version: v1
    security: [jwt]
    anonymousRateLimit: anon
    operations:
      - {path: /pets, methods: [GET]}
      - {path: "/pets/{id}", methods: [DELETE], scopes: ["pets:write", "pets:admin"]}
      - {path: "/pets/{id}", methods: [PUT], scopes: ["pets:read pets:write", "pets:admin"]}
  - id: fwd
    basePath: /fwd
    security: [jwt, apiKey]
    forwardCredentials: true
    operations: [{path: /**}]
  - id: billing
    basePath: /billing
    security: [jwt]
    audiences: [billing]
    operations: [{path: /**}]
applications:
  - {id: mobile, name: Mobile app, clientIds: [mobile-client]}
  - {id: stranger, clientIds: [stranger-client]}
subscriptions:
  - {application: mobile, api: petstore, state: active}
  - {application: mobile, api: fwd, state: active}
  - {application: mobile, api: billing, state: active}
`

// jwtFixture is an engine whose issuers trust the test keys.
type jwtFixture struct {
	engine  *Engine
	clock   *movableClock
	backend *keys.Signer
	cfg     string                // the config, with its file paths filled in
	sources map[string]*keys.JWKS // per issuer; they outlive reloads, as JWKSManager's do
}

// compile compiles cfg with the fixture's keys bound to its issuers.
func (f *jwtFixture) compile(t testing.TB, cfg string) *model.Snapshot {
	t.Helper()
	snap, err := config.Compile([]byte(cfg), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	for _, iss := range snap.IssuerList {
		iss.Keys = f.sources[iss.Name]
	}
	return snap.Snapshot
}

func newJWTFixture(t testing.TB) *jwtFixture {
	t.Helper()
	dir := t.TempDir()
	jwksPath := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwksPath, jwksFor(t, "rsa-1", "rsa-pinned", "ec256", "ec384", "ec521", "ed"), 0o600); err != nil {
		t.Fatal(err)
	}
	backendKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(backendKey)
	backendPath := filepath.Join(dir, "backend.key")
	if err := os.WriteFile(backendPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(jwksPath)
	set, err := keys.ParseJWKS(data)
	if err != nil {
		t.Fatal(err)
	}
	f := &jwtFixture{
		clock:   &movableClock{now: testNow},
		cfg:     strings.NewReplacer("JWKS", jwksPath, "BACKEND_KEY", backendPath).Replace(jwtConfig),
		sources: map[string]*keys.JWKS{"idp": keys.StaticJWKS("idp", set), "open": keys.StaticJWKS("open", set)},
	}
	snap := f.compile(t, f.cfg)
	f.engine = NewEngine(Options{Config: model.NewStore(snap), Clock: f.clock})
	f.backend = snap.BackendJWT.Signer
	return f
}

// claims are the claims of a good token at the fixture's time; edit
// reshapes them.
func (f *jwtFixture) claims(edit func(jwt.MapClaims)) jwt.MapClaims {
	now := f.clock.Now()
	c := jwt.MapClaims{
		"iss": "https://idp.test", "aud": "petstore", "sub": "alice", "azp": "mobile-client",
		"scope": "pets:read pets:write", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"jti": "t-1", "email": "alice@example.com",
	}
	if edit != nil {
		edit(c)
	}
	return c
}

func sign(t testing.TB, method jwt.SigningMethod, kid string, claims jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(testKeys()[kid])
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *jwtFixture) decide(method, path, token string, headers ...string) Decision {
	r := req(method, path, append([]string{"authorization", "Bearer " + token}, headers...)...)
	return f.engine.Decide(context.Background(), r)
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestJWTAlgorithms(t *testing.T) {
	f := newJWTFixture(t)
	for _, tc := range []struct {
		method jwt.SigningMethod
		kid    string
	}{
		{jwt.SigningMethodRS256, "rsa-1"}, {jwt.SigningMethodRS384, "rsa-1"}, {jwt.SigningMethodRS512, "rsa-1"},
		{jwt.SigningMethodPS256, "rsa-1"}, {jwt.SigningMethodPS384, "rsa-1"}, {jwt.SigningMethodPS512, "rsa-1"},
		{jwt.SigningMethodRS256, "rsa-pinned"},
		{jwt.SigningMethodES256, "ec256"}, {jwt.SigningMethodES384, "ec384"}, {jwt.SigningMethodES512, "ec521"},
		{jwt.SigningMethodEdDSA, "ed"},
	} {
		t.Run(tc.method.Alg()+"/"+tc.kid, func(t *testing.T) {
			d := f.decide("GET", "/petstore/v1/pets", sign(t, tc.method, tc.kid, f.claims(nil)))
			if !d.Allowed {
				t.Fatalf("denied %s: %s", d.Denial.Code, d.Denial.Description)
			}
		})
	}
}

// TestJWTAdversarial: every way a token can be wrong, with the exact
// answer.
func TestJWTAdversarial(t *testing.T) {
	f := newJWTFixture(t)
	good := sign(t, jwt.SigningMethodRS256, "rsa-1", f.claims(nil))
	parts := strings.Split(good, ".")
	edit := func(e func(jwt.MapClaims)) string { return sign(t, jwt.SigningMethodES256, "ec256", f.claims(e)) }
	now := f.clock.Now()

	// HS256 "signed" with the RSA public key, the classic confusion attack.
	pubDER, _ := x509.MarshalPKIXPublicKey(testKeys()["rsa-1"].Public())
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hsTok := jwt.NewWithClaims(jwt.SigningMethodHS256, f.claims(nil))
	hsTok.Header["kid"] = "rsa-1"
	hs, _ := hsTok.SignedString(pubPEM)
	// A token whose claims are not JSON, correctly signed.
	notJSON := func() string {
		signing := b64(`{"alg":"ES256","kid":"ec256"}`) + "." + b64("not json")
		sig, _ := jwt.SigningMethodES256.Sign(signing, testKeys()["ec256"])
		return signing + "." + b64(string(sig))
	}()

	// Tokens with header parameters or members the signing libraries do
	// not produce, correctly signed.
	signRaw := func(header, claims string) string {
		signing := b64(header) + "." + b64(claims)
		sig, err := jwt.SigningMethodES256.Sign(signing, testKeys()["ec256"])
		if err != nil {
			t.Fatal(err)
		}
		return signing + "." + b64(string(sig))
	}
	claimsJSON, _ := json.Marshal(f.claims(nil))
	validClaims := string(claimsJSON)
	withCrit := signRaw(`{"alg":"ES256","kid":"ec256","crit":["exp"]}`, validClaims)
	withB64 := signRaw(`{"alg":"ES256","kid":"ec256","b64":false,"crit":["b64"]}`, validClaims)
	b64Alone := signRaw(`{"alg":"ES256","kid":"ec256","b64":false}`, validClaims)
	b64True := signRaw(`{"alg":"ES256","kid":"ec256","b64":true}`, validClaims)
	dupSub := signRaw(`{"alg":"ES256","kid":"ec256"}`, strings.Replace(validClaims, "{", `{"sub":"admin",`, 1))
	dupAlg := signRaw(`{"alg":"ES256","kid":"ec256","alg":"ES256"}`, validClaims)

	cases := []struct {
		name   string
		token  string
		status int
		desc   string // substring of the description
	}{
		{"critical header parameter", withCrit, 401, "critical"},
		{"b64 false (RFC 7797)", withB64, 401, "critical"},
		{"b64 false without crit", b64Alone, 401, "critical"},
		{"b64 true changes nothing", b64True, 200, ""},
		{"a claim twice", dupSub, 401, "repeats"},
		{"a header parameter twice", dupAlg, 401, "repeats"},
		{"expired", edit(func(c jwt.MapClaims) { c["exp"] = now.Add(-31 * time.Second).Unix() }), 401, "expired"},
		{"expired within leeway is accepted", edit(func(c jwt.MapClaims) { c["exp"] = now.Add(-29 * time.Second).Unix() }), 200, ""},
		{"no exp", edit(func(c jwt.MapClaims) { delete(c, "exp") }), 401, "no expiry"},
		{"exp as a string", edit(func(c jwt.MapClaims) { c["exp"] = "tomorrow" }), 401, "malformed"},
		{"exp huge", edit(func(c jwt.MapClaims) { c["exp"] = 1e300 }), 401, "malformed"},
		{"exp beyond float64", edit(func(c jwt.MapClaims) { c["exp"] = json.Number("1e400") }), 401, "malformed"},
		{"not yet valid", edit(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Minute).Unix() }), 401, "not valid yet"},
		{"nbf within leeway", edit(func(c jwt.MapClaims) { c["nbf"] = now.Add(20 * time.Second).Unix() }), 200, ""},
		{"issued in the future", edit(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Minute).Unix() }), 401, "issued in the future"},
		{"wrong issuer", edit(func(c jwt.MapClaims) { c["iss"] = "https://evil.test" }), 401, "issuer is not trusted"},
		{"no issuer", edit(func(c jwt.MapClaims) { delete(c, "iss") }), 401, "issuer is not trusted"},
		{"wrong audience", edit(func(c jwt.MapClaims) { c["aud"] = "billing" }), 401, "audience"},
		{"no audience", edit(func(c jwt.MapClaims) { delete(c, "aud") }), 401, "audience"},
		{"one of several audiences", edit(func(c jwt.MapClaims) { c["aud"] = []string{"billing", "other"} }), 200, ""},
		{"unknown kid", sign(t, jwt.SigningMethodRS256, "rsa-other", f.claims(nil)), 401, "unknown key"},
		{"bad signature", parts[0] + "." + b64(`{"iss":"https://idp.test","sub":"mallory"}`) + "." + parts[2], 401, "signature is invalid"},
		{"signature of another key", parts[0] + "." + parts[1] + "." + strings.Split(sign(t, jwt.SigningMethodRS256, "rsa-other", f.claims(nil)), ".")[2], 401, "signature is invalid"},
		{"alg none", b64(`{"alg":"none","typ":"JWT","kid":"rsa-1"}`) + "." + parts[1] + ".", 401, "signature is invalid"},
		{"alg none, no kid", b64(`{"alg":"none"}`) + "." + parts[1] + ".", 401, "signature is invalid"},
		{"HS256 with the public key", hs, 401, "signature is invalid"},
		{"ES256 header on an RSA key", b64(`{"alg":"ES256","kid":"rsa-1"}`) + "." + parts[1] + "." + parts[2], 401, "does not match its key"},
		{"PS256 on a key pinned to RS256", sign(t, jwt.SigningMethodPS256, "rsa-pinned", f.claims(nil)), 401, "does not match its key"},
		{"ES384 on a P-256 key", b64(`{"alg":"ES384","kid":"ec256"}`) + "." + parts[1] + "." + parts[2], 401, "does not match its key"},
		{"truncated", parts[0] + "." + parts[1], 401, "malformed"},
		{"four segments", good + ".x", 401, "malformed"},
		{"non-base64 segments", "!!!.@@@.###", 401, "malformed"},
		{"header not JSON", b64("nope") + "." + parts[1] + "." + parts[2], 401, "malformed"},
		{"claims not JSON", notJSON, 401, "malformed"},
		{"empty", "", 401, ""},
		{"100 KB token", strings.Repeat("a", 100<<10), 401, "too large"},
		{"revoked", edit(func(c jwt.MapClaims) { c["jti"] = "revoked-1" }), 401, "revoked"},
		{"unknown client", edit(func(c jwt.MapClaims) { c["azp"] = "nobody" }), 403, "not a known application"},
		{"client not subscribed", edit(func(c jwt.MapClaims) { c["azp"] = "stranger-client" }), 403, "not subscribed"},
		{"client id from client_id", edit(func(c jwt.MapClaims) { delete(c, "azp"); c["client_id"] = "mobile-client" }), 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := f.decide("GET", "/petstore/v1/pets", tc.token)
			status := 200
			if !d.Allowed {
				status = d.Denial.Status
			}
			wantCode := map[int]string{200: "", 401: "900901", 403: "900908"}[tc.status]
			if tc.name == "empty" {
				wantCode = "900902" // "Bearer " with nothing after it is no credential
			}
			if status != tc.status || d.Code() != wantCode || !strings.Contains(d.Denial.Description, tc.desc) {
				t.Fatalf("got %d %s %q, want %d %s %q", status, d.Code(), d.Denial.Description, tc.status, wantCode, tc.desc)
			}
			if status == 401 && tc.desc != "" && d.Denial.Challenge != `Bearer error="invalid_token"` {
				t.Errorf("challenge = %q", d.Denial.Challenge)
			}
		})
	}
}

// apis[].audiences: a token minted for one API does not pass on another,
// even where its issuer accepts it.
func TestJWTAudiencePerAPI(t *testing.T) {
	f := newJWTFixture(t)
	forPetstore := sign(t, jwt.SigningMethodES256, "ec256", f.claims(nil)) // aud petstore
	forBoth := sign(t, jwt.SigningMethodES256, "ec256", f.claims(func(c jwt.MapClaims) { c["aud"] = []string{"petstore", "billing"} }))
	if d := f.decide("GET", "/billing/invoices", forPetstore); d.Allowed || d.Code() != "900901" || !strings.Contains(d.Denial.Description, "this API") {
		t.Fatalf("petstore token on billing: allowed=%v %s %q", d.Allowed, d.Code(), d.Denial.Description)
	}
	if d := f.decide("GET", "/billing/invoices", forBoth); !d.Allowed {
		t.Fatalf("token for both on billing: %s", d.Denial.Description)
	}
	// the cached verdict does not carry one API's answer to another
	if d := f.decide("GET", "/petstore/v1/pets", forPetstore); !d.Allowed {
		t.Fatalf("petstore token on petstore after billing: %s", d.Denial.Description)
	}
	if d := f.decide("GET", "/billing/invoices", forPetstore); d.Allowed {
		t.Fatal("petstore token passed billing from the cache")
	}
}

func TestJWTHugeTokenIsCheap(t *testing.T) {
	f := newJWTFixture(t)
	huge := "Bearer " + strings.Repeat("a", 100<<10)
	r := req("GET", "/petstore/v1/pets", "authorization", huge)
	allocs := testing.AllocsPerRun(20, func() { f.engine.Decide(context.Background(), r) })
	if allocs > 5 {
		t.Fatalf("a 100 KB token costs %v allocations", allocs)
	}
}

func TestJWTIdentityAndHeaders(t *testing.T) {
	f := newJWTFixture(t)
	token := sign(t, jwt.SigningMethodES256, "ec256", f.claims(func(c jwt.MapClaims) {
		c["groups"] = []any{"admins", "ops"}
	}))
	d := f.decide("GET", "/petstore/v1/pets", token, "x-user-email", "spoofed", "x-jwt-assertion", "forged")
	if !d.Allowed {
		t.Fatalf("denied: %s", d.Denial.Description)
	}
	want := identityHeaders{"mobile", "Mobile app", "alice", "pets:read pets:write", "jwt"}
	if d.Upstream != want {
		t.Errorf("identity headers %q, want %q", d.Upstream, want)
	}
	extra := map[string]string{}
	for _, h := range d.Extra {
		extra[h.Name] = h.Value
	}
	if extra["x-user-email"] != "alice@example.com" || extra["x-user-groups"] != "admins,ops" || extra["x-jwt-assertion"] == "" {
		t.Errorf("extra headers %v", extra)
	}
	wantRemoved(t, &d, "authorization")

	// A claim header whose claim is missing: the client's copy is removed.
	noEmail := sign(t, jwt.SigningMethodES256, "ec256", f.claims(func(c jwt.MapClaims) { delete(c, "email") }))
	d = f.decide("GET", "/petstore/v1/pets", noEmail, "x-user-email", "spoofed")
	wantRemoved(t, &d, "authorization", "x-user-email")

	// forwardCredentials keeps Authorization.
	d = f.decide("GET", "/fwd/x", token)
	if slices.Contains(d.RemoveHeaders, "authorization") {
		t.Errorf("RemoveHeaders = %q removes the forwarded token", d.RemoveHeaders)
	}
}

// Claims that become headers are refused rather than edited when they hold
// what no header may carry (CR LF would start a header of their own).
func TestJWTHeaderBoundClaims(t *testing.T) {
	f := newJWTFixture(t)
	cases := []struct {
		name string
		edit func(jwt.MapClaims)
		desc string // "" allows
	}{
		{"plain", nil, ""},
		{"CRLF in sub", func(c jwt.MapClaims) { c["sub"] = "alice\r\nx-consumer-id: admin" }, "subject"},
		{"NUL in sub", func(c jwt.MapClaims) { c["sub"] = "alice\x00" }, "subject"},
		{"tab in sub", func(c jwt.MapClaims) { c["sub"] = "a\tb" }, "subject"},
		{"DEL in sub", func(c jwt.MapClaims) { c["sub"] = "a\x7fb" }, "subject"},
		{"non-ASCII sub is fine", func(c jwt.MapClaims) { c["sub"] = "jürgen" }, ""},
		{"LF in a claim header", func(c jwt.MapClaims) { c["email"] = "a@b\nx-consumer-id: admin" }, "claim"},
		{"LF in an array claim header", func(c jwt.MapClaims) { c["groups"] = []any{"a", "b\nc"} }, "claim"},
		{"object claim header is left out", func(c jwt.MapClaims) { c["groups"] = map[string]any{"a": 1} }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := f.decide("GET", "/petstore/v1/pets", sign(t, jwt.SigningMethodES256, "ec256", f.claims(tc.edit)))
			switch {
			case tc.desc == "" && !d.Allowed:
				t.Fatalf("denied: %s", d.Denial.Description)
			case tc.desc != "" && (d.Allowed || d.Code() != "900901" || !strings.Contains(d.Denial.Description, tc.desc)):
				t.Fatalf("allowed=%v %s %q, want 401/900901 about the %s", d.Allowed, d.Code(), d.Denial.Description, tc.desc)
			}
			if d.Allowed {
				d.UpstreamHeaders(func(name, value string) {
					if !safeHeaderValue(value) {
						t.Errorf("header %s = %q is not safe", name, value)
					}
				})
			}
		})
	}
}

func TestJWTScopes(t *testing.T) {
	f := newJWTFixture(t)
	cases := []struct {
		name   string
		edit   func(jwt.MapClaims)
		status int
	}{
		{"string scope present", nil, 200},
		{"string scope missing", func(c jwt.MapClaims) { c["scope"] = "pets:read" }, 403},
		{"array scope", func(c jwt.MapClaims) { c["scope"] = []any{"pets:admin"} }, 200},
		{"no scope", func(c jwt.MapClaims) { delete(c, "scope") }, 403},
		{"doubled spaces", func(c jwt.MapClaims) { c["scope"] = " pets:read  pets:write " }, 200},
		// RFC 6749 §3.3: scope-tokens are separated by single spaces only
		{"no-break space is not a separator", func(c jwt.MapClaims) { c["scope"] = "a\u00a0pets:write" }, 401},
		{"tab is not a separator", func(c jwt.MapClaims) { c["scope"] = "a\tpets:write" }, 401},
		{"vertical tab is not a separator", func(c jwt.MapClaims) { c["scope"] = "a\vpets:write" }, 401},
		{"array items are whole scopes", func(c jwt.MapClaims) { c["scope"] = []any{"a pets:write"} }, 401},
		{"array of another type", func(c jwt.MapClaims) { c["scope"] = []any{"pets:write", 7} }, 401},
		{"scope of another type", func(c jwt.MapClaims) { c["scope"] = 42 }, 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := f.decide("DELETE", "/petstore/v1/pets/1", sign(t, jwt.SigningMethodEdDSA, "ed", f.claims(tc.edit)))
			status := 200
			if !d.Allowed {
				status = d.Denial.Status
				switch {
				case status == 403 && (d.Code() != "900910" || !strings.Contains(d.Denial.Description, "pets:write pets:admin")),
					status == 401 && d.Code() != "900901":
					t.Errorf("denial %s %q", d.Code(), d.Denial.Description)
				}
			}
			if status != tc.status {
				t.Fatalf("status %d, want %d", status, tc.status)
			}
		})
	}
}

// TestJWTAllOfScopes: an operation's entry of several scopes needs all of
// them from the token, whichever form its scope claim takes.
func TestJWTAllOfScopes(t *testing.T) {
	f := newJWTFixture(t)
	cases := []struct {
		name   string
		scope  any // the scope claim; nil: none
		status int
	}{
		{"both of the set", "pets:read pets:write", 200},
		{"both, in the other order", "pets:write pets:read", 200},
		{"both, as an array", []any{"pets:write", "pets:read"}, 200},
		{"the other entry", "pets:admin", 200},
		{"one of the set", "pets:write", 403},
		{"the other one of the set", []any{"pets:read"}, 403},
		{"none", nil, 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			claims := f.claims(func(c jwt.MapClaims) {
				delete(c, "scope")
				if tc.scope != nil {
					c["scope"] = tc.scope
				}
			})
			d := f.decide("PUT", "/petstore/v1/pets/1", sign(t, jwt.SigningMethodEdDSA, "ed", claims))
			status := 200
			if !d.Allowed {
				status = d.Denial.Status
				if want := "pets:read and pets:write, or pets:admin"; d.Code() != "900910" || !strings.Contains(d.Denial.Description, want) {
					t.Errorf("denial %s %q, want 900910 naming %q", d.Code(), d.Denial.Description, want)
				}
			}
			if status != tc.status {
				t.Fatalf("status %d, want %d", status, tc.status)
			}
		})
	}
}

func TestJWTAnonymousApplication(t *testing.T) {
	f := newJWTFixture(t)
	// The open issuer does not require a known client: the caller passes
	// as an anonymous application, identified by its subject.
	token := sign(t, jwt.SigningMethodES256, "ec256", f.claims(func(c jwt.MapClaims) {
		c["iss"], c["cid"], c["scp"] = "https://open.test", "unknown-client", []any{"pets:read"}
		delete(c, "aud")
	}))
	d := f.decide("GET", "/petstore/v1/pets", token)
	if !d.Allowed || d.Identity.Application != nil || d.Upstream[2] != "alice" || d.Upstream[0] != "" || d.Upstream[3] != "pets:read" {
		t.Fatalf("allowed=%v identity=%+v headers=%q", d.Allowed, d.Identity, d.Upstream)
	}
	// The client id claim is cid for this issuer: a known cid is a subscriber.
	known := sign(t, jwt.SigningMethodES256, "ec256", f.claims(func(c jwt.MapClaims) {
		c["iss"], c["cid"] = "https://open.test", "stranger-client"
	}))
	if d := f.decide("GET", "/petstore/v1/pets", known); d.Allowed || d.Code() != "900908" {
		t.Fatalf("known but unsubscribed client: allowed=%v %s", d.Allowed, d.Code())
	}
}

func TestJWTCache(t *testing.T) {
	f := newJWTFixture(t)
	a := f.engine.schemes[catalog.SchemeJWT].(*jwtAuthenticator)
	token := sign(t, jwt.SigningMethodRS256, "rsa-1", f.claims(func(c jwt.MapClaims) {
		c["exp"] = f.clock.Now().Add(10 * time.Second).Unix()
	}))
	for range 3 {
		if d := f.decide("GET", "/petstore/v1/pets", token); !d.Allowed {
			t.Fatalf("denied: %s", d.Denial.Description)
		}
	}
	if n := a.verified.Load(); n != 1 {
		t.Fatalf("%d full verifications for one token used three times, want 1", n)
	}

	// Never past exp: after it, the token is verified again (and, past the
	// leeway, refused).
	f.clock.Advance(11 * time.Second)
	if d := f.decide("GET", "/petstore/v1/pets", token); !d.Allowed {
		t.Fatalf("denied within leeway: %s", d.Denial.Description)
	}
	if n := a.verified.Load(); n != 2 {
		t.Fatalf("%d verifications after exp, want 2", n)
	}
	f.clock.Advance(30 * time.Second)
	if d := f.decide("GET", "/petstore/v1/pets", token); d.Allowed || !strings.Contains(d.Denial.Description, "expired") {
		t.Fatalf("expired token: allowed=%v %q", d.Allowed, d.Denial.Description)
	}

	// A token refused before its signature verified is never remembered:
	// junk must not evict the tokens in use.
	bad := token[:len(token)-4] + "AAAA"
	before := a.verified.Load()
	for range 3 {
		if d := f.decide("GET", "/petstore/v1/pets", bad); d.Allowed {
			t.Fatal("bad token allowed")
		}
	}
	if n := a.verified.Load() - before; n != 3 {
		t.Fatalf("%d verifications of one bad token used three times, want 3 (no negative caching)", n)
	}
	key := keyOf(bad)
	if _, cached := a.cache.get(&key); cached {
		t.Fatal("a token with a bad signature was cached")
	}

	// One whose signature verified but whose claims refuse it is
	// remembered until it expires.
	foreign := sign(t, jwt.SigningMethodRS256, "rsa-1", f.claims(func(c jwt.MapClaims) { c["aud"] = "billing" }))
	before = a.verified.Load()
	for range 3 {
		if d := f.decide("GET", "/petstore/v1/pets", foreign); d.Allowed {
			t.Fatal("foreign-audience token allowed")
		}
	}
	if n := a.verified.Load() - before; n != 1 {
		t.Fatalf("%d verifications of one signed but refused token used three times, want 1", n)
	}
}

// TestJWTCacheOutlivesUnrelatedChanges checks that a cached verdict
// survives a config change that leaves its issuer alone, while what the
// rest of the config says (revocations, which application a client id
// is) applies at once; a change to the issuer verifies the token again.
func TestJWTCacheOutlivesUnrelatedChanges(t *testing.T) {
	f := newJWTFixture(t)
	a := f.engine.schemes[catalog.SchemeJWT].(*jwtAuthenticator)
	store := f.engine.config.(*model.Store)
	token := sign(t, jwt.SigningMethodRS256, "rsa-1", f.claims(nil))
	steps := []struct {
		name     string
		cfg      string
		code     string // "" allowed
		verified int64
	}{
		{"first use", f.cfg, "", 1},
		{"an application added", strings.Replace(f.cfg, "applications:\n", "applications:\n  - {id: later, clientIds: [later-client]}\n", 1), "", 1},
		{"the token revoked", strings.Replace(f.cfg, "{jti: revoked-1,", "{jti: t-1,", 1), "900901", 1},
		{"its client id given up", strings.Replace(f.cfg, "clientIds: [mobile-client]", "clientIds: [other-client]", 1), "900908", 1},
		{"back as it was", f.cfg, "", 1},
		{"the issuer's leeway changed", strings.Replace(f.cfg, "leeway: 30s", "leeway: 20s", 1), "", 2},
	}
	for _, st := range steps {
		store.Swap(f.compile(t, st.cfg))
		d := f.decide("GET", "/petstore/v1/pets", token)
		if d.Code() != st.code {
			t.Errorf("%s: code %q, want %q", st.name, d.Code(), st.code)
		}
		if n := a.verified.Load(); n != st.verified {
			t.Errorf("%s: %d full verifications, want %d", st.name, n, st.verified)
		}
	}
}

// The cache holds neither the token nor anything pointing into the request
// it came in: a verdict is keyed by the token's SHA-256.
func TestJWTCacheKeepsNoRequestMemory(t *testing.T) {
	f := newJWTFixture(t)
	a := f.engine.schemes[catalog.SchemeJWT].(*jwtAuthenticator)
	token := sign(t, jwt.SigningMethodES256, "ec256", f.claims(nil))
	buf := strings.Repeat("x", 1<<16) + token // the token as a substring of a large request
	inRequest := buf[len(buf)-len(token):]
	if d := f.decide("GET", "/petstore/v1/pets", inRequest); !d.Allowed {
		t.Fatalf("denied: %s", d.Denial.Description)
	}
	key := keyOf(token)
	v, ok := a.cache.get(&key)
	if !ok {
		t.Fatal("verdict not cached")
	}
	lo, hi := uintptr(unsafe.Pointer(unsafe.StringData(buf))), uintptr(unsafe.Pointer(unsafe.StringData(buf)))+uintptr(len(buf))
	for _, s := range append([]string{v.id.Subject, v.id.ScopeText}, v.id.Scopes...) {
		if p := uintptr(unsafe.Pointer(unsafe.StringData(s))); len(s) > 0 && p >= lo && p < hi {
			t.Fatalf("cached %q points into the request", s)
		}
	}
}

func TestJWTBackendToken(t *testing.T) {
	f := newJWTFixture(t)
	token := sign(t, jwt.SigningMethodES256, "ec256", f.claims(nil))
	backend := func() string {
		d := f.decide("GET", "/petstore/v1/pets", token)
		for _, h := range d.Extra {
			if h.Name == "x-jwt-assertion" {
				return h.Value
			}
		}
		t.Fatalf("no backend JWT in %v", d.Extra)
		return ""
	}
	first := backend()
	set, err := keys.ParseJWKS(f.backend.PublicJWKS())
	if err != nil {
		t.Fatal(err)
	}
	var claims backendClaims
	parsed, err := jwt.ParseWithClaims(first, &claims, func(tok *jwt.Token) (any, error) {
		k, ok := set.Find(tok.Header["kid"].(string), tok.Method.Alg())
		if !ok {
			t.Fatalf("backend JWT kid %v not in the published JWKS", tok.Header["kid"])
		}
		return k.Key, nil
	}, jwt.WithTimeFunc(f.clock.Now), jwt.WithIssuer(BackendJWTIssuer), jwt.WithAudience("petstore"))
	if err != nil || !parsed.Valid {
		t.Fatalf("backend JWT does not verify: %v", err)
	}
	if claims.Subject != "alice" || claims.Application != "mobile" || claims.API != "petstore" ||
		claims.Scope != "pets:read pets:write" || claims.CredentialType != "jwt" ||
		claims.ExpiresAt.Sub(f.clock.Now()) != 5*time.Minute {
		t.Fatalf("backend claims %+v", claims)
	}
	// The same caller gets the same token until half its lifetime is gone.
	if again := backend(); again != first {
		t.Fatal("backend JWT not reused")
	}
	f.clock.Advance(3 * time.Minute)
	if later := backend(); later == first {
		t.Fatal("backend JWT reused past half its lifetime")
	}
}

func TestJWTBearerPresence(t *testing.T) {
	f := newJWTFixture(t)
	token := sign(t, jwt.SigningMethodES256, "ec256", f.claims(nil))
	for _, tc := range []struct {
		header string
		code   string
	}{
		{"bearer " + token, ""},
		{"BEARER   " + token, ""},
		{"Basic dXNlcjpwYXNz", "900902"},
		{"Bearer", "900902"},
		{"Bearer ", "900902"},
	} {
		d := f.engine.Decide(context.Background(), req("GET", "/petstore/v1/pets", "authorization", tc.header))
		if d.Code() != tc.code {
			t.Errorf("Authorization %.20q: code %q, want %q", tc.header, d.Code(), tc.code)
		}
		if tc.code == "900902" && !strings.Contains(d.Denial.Challenge, `Bearer realm="petstore"`) {
			t.Errorf("challenge %q", d.Denial.Challenge)
		}
	}
}
