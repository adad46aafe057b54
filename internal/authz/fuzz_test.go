package authz

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzDecide feeds arbitrary request data through the whole pipeline: the
// path normaliser and matcher, the query parser, the forwarded-address
// parser and the key lookup. Every outcome must be an allow or a status
// from the deny table with a JSON body, never a panic.
func FuzzDecide(f *testing.F) {
	seeds := [][5]string{
		{"GET", "/petstore/v1/pets", keyMobile, "", ""},
		{"GET", "/petstore/v1/pets?apikey=" + keyMobile + "&x=%zz", "", "1.2.3.4, 10.0.0.1", "api.example.com:80"},
		{"DELETE", "/petstore/v1/pets/%2e%2e/pets/1", keyReadOnly, "garbage,,", "[::1]:443"},
		{"PUT", "/internal/../petstore/v1/maybe?apikey=", "", "::ffff:192.168.0.1", "INTERNAL.example.com."},
		{"", "", "", "", ""},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2], s[3], s[4])
	}
	e := testEngine(f, testConfig)
	allowed := map[int]bool{401: true, 403: true, 404: true, 429: true, 503: true}
	f.Fuzz(func(t *testing.T, method, target, key, xff, host string) {
		r := &Request{Method: method, Host: host, Target: target, Peer: netip.MustParseAddr("10.0.0.1"),
			Headers: headersOf(map[string]string{"apikey": key, "x-forwarded-for": xff, "x-consumer-id": "x"})}
		d := e.Decide(context.Background(), r)
		if d.Allowed {
			for _, h := range d.RemoveHeaders {
				if h == "x-consumer-id" && d.Upstream[0] == "" {
					return
				}
			}
			if d.Upstream[0] == "" {
				t.Fatalf("allowed without replacing or removing the client's x-consumer-id")
			}
			return
		}
		if !allowed[d.Denial.Status] {
			t.Fatalf("deny status %d is not in the table", d.Denial.Status)
		}
		var body map[string]string
		if err := json.Unmarshal(d.Denial.Body(), &body); err != nil || body["code"] != d.Denial.Code {
			t.Fatalf("deny body %q: %v", d.Denial.Body(), err)
		}
	})
}

// FuzzQueryParam checks the query-string reader against arbitrary input.
func FuzzQueryParam(f *testing.F) {
	for _, s := range []string{"/p?apikey=a", "/p?a=1&apikey=%41%42", "/p?apikey", "/p?%zz=1&apikey=+", "/p#x?apikey=1", "?&&=&"} {
		f.Add(s, "apikey")
	}
	f.Fuzz(func(t *testing.T, target, name string) {
		v, ok := queryParam(target, name)
		if !ok && v != "" {
			t.Fatalf("absent parameter with value %q", v)
		}
	})
}

// FuzzBearerToken feeds arbitrary bearer tokens through JWT verification:
// header and claims decoding, the key lookup, the claim checks and the
// verdict cache. A token is allowed only if it verifies; every refusal is
// 401/900901, 403 or a missing credential, never a panic.
func FuzzBearerToken(f *testing.F) {
	fx := newJWTFixture(f)
	good := sign(f, jwt.SigningMethodES256, "ec256", fx.claims(nil))
	parts := strings.Split(good, ".")
	for _, s := range []string{
		good, parts[0] + "." + parts[1] + ".", parts[0] + "..", "..", "a.b.c", "eyJhbGciOiJub25lIn0.e30.",
		b64(`{"alg":"ES256","kid":"ec256"}`) + "." + b64(`{"exp":"x"}`) + "." + parts[2],
		b64(`{"alg":"RS256","kid":"rsa-1","crit":["x"]}`) + "." + parts[1] + "." + parts[2],
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		d := fx.decide("GET", "/petstore/v1/pets", token)
		if d.Allowed {
			if token != good {
				// Only the seed token is signed; anything else passing would be a forgery,
				// unless the fuzzer merely changed what the verifier ignores.
				if _, err := tokenParser.Parse(token, func(tok *jwt.Token) (any, error) {
					return testKeys()["ec256"].Public(), nil
				}); err != nil {
					t.Fatalf("allowed a token that does not verify: %q", token)
				}
			}
			return
		}
		switch d.Code() {
		case "900901", "900902", "900908":
		default:
			t.Fatalf("token %q: code %s", token, d.Code())
		}
	})
}
