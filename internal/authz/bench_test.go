package authz

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate/internal/catalog"
	"github.com/tollgate/tollgate/internal/keys"
	"github.com/tollgate/tollgate/internal/model"
)

// Headers of a typical request through Envoy, so that header scans in the
// pipeline are measured at a realistic size.
func benchHeaders(extra ...string) map[string]string {
	h := map[string]string{
		":authority": "api.example.com", ":method": "GET", ":path": "/petstore/v1/pets/42", ":scheme": "https",
		"accept": "application/json", "user-agent": "curl/8.5.0", "x-request-id": "5b8f6a1e-94b6-4b8e-9d7c-0e8d1f2a3b4c",
		"x-forwarded-proto": "https", "x-envoy-expected-rq-timeout-ms": "15000", "content-length": "0",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		h[extra[i]] = extra[i+1]
	}
	return h
}

// BenchmarkDecide measures the decision alone: match, API-key lookup,
// subscription, scopes, and the upstream header plan.
func BenchmarkDecide(b *testing.B) {
	// A key of the checksummed format, which is parsed before its lookup.
	generated, err := keys.GenerateKeyFrom(rand.NewChaCha8([32]byte{9}))
	if err != nil {
		b.Fatal(err)
	}
	withGenerated := testConfig + "  - {application: mobile, name: gen, id: " + generated.ID + ", sha256: " + generated.Digest.String() +
		", scopes: [\"pets:write\", extra]}\n" // as the ci key, so that only the format differs
	cases := []struct {
		name    string
		method  string
		path    string
		headers map[string]string
		allowed bool
	}{
		{"apikey-allow", "GET", "/petstore/v1/pets", benchHeaders("apikey", keyMobile), true},
		{"apikey-allow-checksummed", "GET", "/petstore/v1/pets", benchHeaders("apikey", generated.Key), true},
		{"apikey-allow-scoped", "DELETE", "/petstore/v1/pets/42", benchHeaders("apikey", keyMobile), true},
		{"apikey-deny-unknown", "GET", "/petstore/v1/pets", benchHeaders("apikey", "tgk_unknown_key_value"), false},
		{"apikey-deny-missing", "GET", "/petstore/v1/pets", benchHeaders(), false},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			e := testEngine(b, withGenerated)
			r := &Request{Method: tc.method, Host: "api.example.com", Target: tc.path, Headers: headersOf(tc.headers)}
			b.ReportAllocs()
			for b.Loop() {
				d := e.Decide(context.Background(), r)
				if d.Allowed != tc.allowed {
					b.Fatalf("allowed = %v", d.Allowed)
				}
			}
		})
	}
}

// BenchmarkDecideJWT measures an allowed decision for a bearer token that
// is in the verified-token cache: no signature check, as for every request
// after a client's first.
func BenchmarkDecideJWT(b *testing.B) {
	f := newJWTFixture(b)
	token := sign(b, jwt.SigningMethodRS256, "rsa-1", f.claims(nil))
	r := &Request{Method: "DELETE", Host: "api.example.com", Target: "/petstore/v1/pets/42",
		Headers: headersOf(benchHeaders("authorization", "Bearer "+token))}
	if d := f.engine.Decide(context.Background(), r); !d.Allowed {
		b.Fatalf("denied: %s", d.Denial.Description)
	}
	b.ReportAllocs()
	for b.Loop() {
		if d := f.engine.Decide(context.Background(), r); !d.Allowed {
			b.Fatal("denied")
		}
	}
}

// BenchmarkVerifyToken measures a full, uncached verification: decoding,
// the signature check and the claim checks.
func BenchmarkVerifyToken(b *testing.B) {
	f := newJWTFixture(b)
	a := f.engine.schemes[catalog.SchemeJWT].(*jwtAuthenticator)
	for _, tc := range []struct {
		method jwt.SigningMethod
		kid    string
	}{
		{jwt.SigningMethodRS256, "rsa-1"}, {jwt.SigningMethodES256, "ec256"}, {jwt.SigningMethodEdDSA, "ed"},
	} {
		b.Run(tc.method.Alg(), func(b *testing.B) {
			token := sign(b, tc.method, tc.kid, f.claims(nil))
			c := &check{ctx: context.Background(), snap: f.engine.config.Load(), now: f.clock.Now()}
			b.ReportAllocs()
			for b.Loop() {
				if v, _ := a.verifyToken(c, token); v.denial != nil {
					b.Fatal(v.denial.Description)
				}
			}
		})
	}
}

// BenchmarkManyLiveTokens decides for 100,000 distinct live tokens, each
// Check carrying one drawn at random, with the token cache at its default
// size and at the size the README gives for that many. It reports the
// share of Checks served from the cache (hit-%) and the heap the full
// cache holds per live token (B/token). make bench reports it.
func BenchmarkManyLiveTokens(b *testing.B) {
	const live = 100_000
	f := newJWTFixture(b)
	// Without a backend JWT, signed per caller, to see the token cache.
	store := model.NewStore(f.compile(b, strings.Replace(f.cfg, "backendJwt: {enabled: true,", "backendJwt: {enabled: false,", 1)))
	reqs := make([]*Request, live)
	for i := range reqs {
		token := sign(b, jwt.SigningMethodEdDSA, "ed", f.claims(func(c jwt.MapClaims) {
			c["sub"], c["jti"] = fmt.Sprintf("user-%d", i), fmt.Sprintf("t-%d", i)
		}))
		reqs[i] = &Request{Method: "DELETE", Host: "api.example.com", Target: "/petstore/v1/pets/42",
			Headers: headersOf(benchHeaders("authorization", "Bearer "+token))}
	}
	for _, entries := range []int{1 << 14, 1 << 18} {
		b.Run(fmt.Sprintf("entries=%d", entries), func(b *testing.B) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			e := NewEngine(Options{Config: store, Clock: f.clock, TokenCacheEntries: entries})
			a := e.schemes[catalog.SchemeJWT].(*jwtAuthenticator)
			rng := rand.New(rand.NewPCG(1, 2))
			decide := func() {
				if d := e.Decide(context.Background(), reqs[rng.IntN(live)]); !d.Allowed {
					b.Fatalf("denied: %s", d.Denial.Description)
				}
			}
			for range 4 * live { // until the cache holds what it will
				decide()
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			verified := a.verified.Load()
			n := 0
			for b.Loop() {
				decide()
				n++
			}
			b.ReportMetric(100*(1-float64(a.verified.Load()-verified)/float64(n)), "hit-%")
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/live, "B/token")
			runtime.KeepAlive(e)
		})
	}
}
