package authz

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate/internal/catalog"
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
		{"GET", "/petstore/v1/pets", "tg_000000000000_000000000000000000000000000000002tCSgW", "", ""}, // well formed, unknown
		{"GET", "/petstore/v1/pets", "tg_000000000000_000000000000000000000000000000002tCSgX", "", ""}, // a wrong checksum
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2], s[3], s[4])
	}
	e := testEngine(f, testConfig)
	allowed := map[int]bool{400: true, 401: true, 403: true, 404: true, 429: true, 503: true}
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
		v := queryParam(target, name)
		if !v.found && v.value != "" {
			t.Fatalf("absent parameter with value %q", v.value)
		}
		// A parameter is found only under its exact spelling, in the query
		// and not in the fragment: what Envoy removes by name.
		query := target
		if i := strings.IndexByte(query, '#'); i >= 0 {
			query = query[:i]
		}
		_, query, hasQuery := strings.Cut(query, "?")
		if v.found && (!hasQuery || !slices.ContainsFunc(strings.Split(query, "&"), func(pair string) bool {
			k, _, _ := strings.Cut(pair, "=")
			return k == name
		})) {
			t.Fatalf("found %q in %q, which does not spell it", name, target)
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

// fuzzShape drives the HTTP front end in one shape with arbitrary request
// data: every answer is an allow or a status of the deny table with a JSON
// body, never a panic; and an allowed request was checked as the shape
// says (its path as the shape's header gives it, never as the client's
// own headers of another shape would).
func fuzzShape(f *testing.F, shape string, seeds [][4]string, target func(method, uri, host string) (*http.Request, string)) {
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2], s[3])
	}
	h := NewHTTPHandler(testEngine(f, testConfig+"httpFrontEnd: {shape: "+shape+"}\n"))
	allowed := map[int]bool{200: true, 400: true, 401: true, 403: true, 404: true, 429: true, 503: true}
	f.Fuzz(func(t *testing.T, method, uri, host, key string) {
		r, checked := target(method, uri, host)
		if r == nil {
			return
		}
		r.Header.Set("apikey", key)
		if shape == "nginx" {
			if checked != "" {
				r.Header.Set(HeaderOriginalURI, checked)
			}
		} else {
			// a client's own attempt at another shape's headers
			r.Header.Set(HeaderOriginalURI, "/petstore/v1/health")
			r.Header.Set(HeaderOriginalMethod, "GET")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if !allowed[w.Code] {
			t.Fatalf("status %d is not in the table", w.Code)
		}
		if w.Code != 200 {
			var body map[string]string
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body["code"] == "" {
				t.Fatalf("deny body %q: %v", w.Body, err)
			}
			return
		}
		p, err := catalog.CleanPath(checked, catalog.RejectEscapedSlashes)
		if err != nil {
			t.Fatalf("allowed %q, which does not read one way: %v", checked, err)
		}
		// Allowed without a credential only where the shape's own path is
		// public (were the client's X-Original-URI read, any path would do).
		public := p.Clean == "/petstore/v1/health" || p.Clean == "/petstore/v1/maybe" || strings.HasPrefix(p.Clean, "/petstore/v1/docs")
		if w.Header().Get("X-Credential-Type") == "" && !public {
			t.Fatalf("%q allowed without a credential", checked)
		}
	})
}

func FuzzHTTPShapeEnvoy(f *testing.F) {
	fuzzShape(f, "envoy", [][4]string{{"GET", "/petstore/v1/pets", "api.example.com", keyMobile}, {"DELETE", "/petstore/v1/pets/1", "x", ""},
		{"GET", "/petstore/v1/health/../pets", "h:1", ""}, {"GET", "/petstore/v1/pets?apikey=" + keyMobile, "", ""}},
		func(method, uri, host string) (*http.Request, string) {
			r, err := http.NewRequest(method, "http://tollgate"+uri, nil)
			if err != nil || !strings.HasPrefix(uri, "/") {
				return nil, ""
			}
			r.RequestURI, r.Host = uri, host
			return r, uri
		})
}

func FuzzHTTPShapeNginx(f *testing.F) {
	fuzzShape(f, "nginx", [][4]string{{"GET", "/petstore/v1/pets", "api.example.com", keyMobile}, {"DELETE", "/petstore/v1/pets/%2e%2e/1", "x", keyReadOnly},
		{"", "", "", ""}, {"GET", "/petstore/v1/pets;x/..", "h", keyMobile}},
		func(method, uri, host string) (*http.Request, string) {
			r := httptest.NewRequest("GET", "/auth", nil)
			r.Host = host
			if method != "" {
				r.Header.Set(HeaderOriginalMethod, method)
			}
			return r, uri
		})
}

func FuzzHTTPShapeForwardAuth(f *testing.F) {
	fuzzShape(f, "forwardAuth", [][4]string{{"GET", "/petstore/v1/pets", "api.example.com", keyMobile}, {"DELETE", "/petstore/v1/pets/1", "internal.example.com", keyMobile},
		{"GET", "", "", ""}, {"GET", "/internal/x", "INTERNAL.example.com:443", keyMobile}},
		func(method, uri, host string) (*http.Request, string) {
			r := httptest.NewRequest("GET", "/", nil)
			for name, v := range map[string]string{HeaderForwardedMethod: method, HeaderForwardedURI: uri, HeaderForwardedHost: host} {
				if v != "" {
					r.Header.Set(name, v)
				}
			}
			r.Header.Set(HeaderForwardedProto, "https")
			return r, uri
		})
}
