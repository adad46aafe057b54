package authz

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/model"
)

// Plain API keys of the test config; the config holds only their hashes.
const (
	keyMobile   = "tgk_test_mobile"
	keyReadOnly = "tgk_test_readonly"
	keyExpired  = "tgk_test_expired"
	keyCIDR     = "tgk_test_cidr"
	keyPartner  = "tgk_test_partner" // subscription blocked
	keyOnHold   = "tgk_test_onhold"
	keyNoSub    = "tgk_test_nosub"
)

var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }

func sha(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

var testConfig = `
clientIp: {header: x-forwarded-for, trustedProxies: [10.0.0.1]}
apis:
  - id: petstore
    name: PetStore
    basePath: /petstore/v1
    security: [apiKey]
    apiKey: {header: apikey, query: apikey}
    operations:
      - {path: /pets, methods: [GET]}
      - {path: "/pets/{id}", methods: [DELETE], scopes: ["pets:write", "pets:admin"]}
      - {path: /health, methods: [GET], security: [none]}
      - {path: /maybe, methods: [GET], security: [apiKey, none]}
      - {path: "/docs/**", methods: [GET], security: [none]}
  - id: internal
    basePath: /internal
    hosts: [internal.example.com]
    security: [apiKey]
    forwardCredentials: true
    operations: [{path: /**}]
applications:
  - {id: mobile, name: Mobile app, owner: alice}
  - {id: partner}
  - {id: onhold}
  - {id: nosub}
subscriptions:
  - {application: mobile, api: petstore, state: active}
  - {application: mobile, api: internal, state: active}
  - {application: partner, api: petstore, state: blocked}
  - {application: onhold, api: petstore, state: onHold}
apiKeys:
  - {application: mobile, name: ci, sha256: ` + sha(keyMobile) + `, scopes: ["pets:write", "extra"]}
  - {application: mobile, name: ro, sha256: ` + sha(keyReadOnly) + `}
  - {application: mobile, name: old, sha256: ` + sha(keyExpired) + `, expiresAt: 2026-01-01T00:00:00Z}
  - {application: mobile, name: office, sha256: ` + sha(keyCIDR) + `, allowedCidrs: [192.168.0.0/16, "2001:db8::/32"]}
  - {application: partner, sha256: ` + sha(keyPartner) + `}
  - {application: onhold, sha256: ` + sha(keyOnHold) + `}
  - {application: nosub, sha256: ` + sha(keyNoSub) + `}
`

func testEngine(t testing.TB, yaml string) *Engine {
	t.Helper()
	snap, err := config.Compile([]byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("test config: %v", err)
	}
	return NewEngine(Options{Config: model.NewStore(snap.Snapshot), Clock: fixedClock(testNow)})
}

// req builds a gRPC-shaped request; headers alternate name, value.
func req(method, target string, headers ...string) *Request {
	m := map[string]string{}
	for i := 0; i+1 < len(headers); i += 2 {
		m[headers[i]] = headers[i+1]
	}
	return &Request{Method: method, Host: "api.example.com", Target: target, Headers: headersOf(m),
		Peer: netip.MustParseAddr("203.0.113.7")}
}

func TestDecide(t *testing.T) {
	e := testEngine(t, testConfig)
	from := func(r *Request, peer string) *Request { r.Peer = netip.MustParseAddr(peer); return r }
	named := func(r *Request, api, op string) *Request { r.APIID, r.OperationID = api, op; return r }
	onHost := func(r *Request, host string) *Request { r.Host = host; return r }

	cases := []struct {
		name   string
		req    *Request
		status int    // 200 for allow
		code   string // deny code
		check  func(t *testing.T, d *Decision)
	}{
		{name: "key in header allows", req: req("GET", "/petstore/v1/pets", "apikey", keyMobile), status: 200,
			check: func(t *testing.T, d *Decision) {
				want := identityHeaders{"mobile", "Mobile app", "alice", "pets:write extra", "apiKey"}
				if d.Upstream != want {
					t.Errorf("upstream headers = %q, want %q", d.Upstream, want)
				}
				wantRemoved(t, d, "apikey")
				wantSlice(t, "RemoveQuery", d.RemoveQuery)
				if d.API.ID != "petstore" || d.Operation.Path != "/pets" || d.Identity.KeyName != "ci" {
					t.Errorf("decision = %s %s key %q", d.API.ID, d.Operation.Path, d.Identity.KeyName)
				}
			}},
		{name: "key in query allows and is removed", req: req("GET", "/petstore/v1/pets?x=1&apikey="+keyMobile), status: 200,
			check: func(t *testing.T, d *Decision) {
				wantSlice(t, "RemoveQuery", d.RemoveQuery, "apikey")
			}},
		{name: "key in query under an encoded name is refused", req: req("GET", "/petstore/v1/pets?api%6bey="+keyMobile), status: 400, code: "900400"},
		{name: "key in query twice is refused", req: req("GET", "/petstore/v1/pets?apikey="+keyMobile+"&apikey=x"), status: 400, code: "900400"},
		{name: "key in header and query is refused", req: req("GET", "/petstore/v1/pets?apikey="+keyMobile, "apikey", keyMobile), status: 400, code: "900400"},
		{name: "key after the fragment is not a key", req: req("GET", "/petstore/v1/pets#?apikey="+keyMobile), status: 401, code: "900902"},
		{name: "key in a raw header_map line twice is refused", status: 400, code: "900400",
			req: rawReq("GET", "/petstore/v1/pets", "apikey", keyMobile, "apikey", keyReadOnly)},
		{name: "url-encoded key in query", req: req("GET", "/petstore/v1/pets?apikey=tgk%5Ftest%5Fmobile"), status: 200},
		{name: "no key", req: req("GET", "/petstore/v1/pets"), status: 401, code: "900902",
			check: func(t *testing.T, d *Decision) {
				if !strings.Contains(d.Denial.Challenge, `header="apikey"`) {
					t.Errorf("challenge = %q", d.Denial.Challenge)
				}
			}},
		{name: "empty key in query is invalid", req: req("GET", "/petstore/v1/pets?apikey="), status: 401, code: "900901"},
		{name: "unknown key", req: req("GET", "/petstore/v1/pets", "apikey", "tgk_nope"), status: 401, code: "900901"},
		{name: "expired key", req: req("GET", "/petstore/v1/pets", "apikey", keyExpired), status: 401, code: "900901"},
		{name: "cidr allowed", req: from(req("GET", "/petstore/v1/pets", "apikey", keyCIDR), "192.168.4.4"), status: 200},
		{name: "cidr allowed v6", req: from(req("GET", "/petstore/v1/pets", "apikey", keyCIDR), "2001:db8::1"), status: 200},
		{name: "cidr refused", req: req("GET", "/petstore/v1/pets", "apikey", keyCIDR), status: 403, code: "900908"},
		{name: "cidr via trusted proxy", status: 200,
			req: from(req("GET", "/petstore/v1/pets", "apikey", keyCIDR, "x-forwarded-for", "1.2.3.4, 192.168.9.9"), "10.0.0.1")},
		{name: "forwarded-for from an untrusted peer is ignored", status: 403, code: "900908",
			req: from(req("GET", "/petstore/v1/pets", "apikey", keyCIDR, "x-forwarded-for", "192.168.9.9"), "10.0.0.2")},
		{name: "subscription blocked", req: req("GET", "/petstore/v1/pets", "apikey", keyPartner), status: 401, code: "900907"},
		{name: "subscription on hold", req: req("GET", "/petstore/v1/pets", "apikey", keyOnHold), status: 403, code: "900909"},
		{name: "not subscribed", req: req("GET", "/petstore/v1/pets", "apikey", keyNoSub), status: 403, code: "900908"},
		{name: "scope present", req: req("DELETE", "/petstore/v1/pets/7", "apikey", keyMobile), status: 200},
		{name: "scope missing", req: req("DELETE", "/petstore/v1/pets/7", "apikey", keyReadOnly), status: 403, code: "900910",
			check: func(t *testing.T, d *Decision) {
				if !strings.Contains(d.Denial.Description, "pets:write pets:admin") {
					t.Errorf("description %q does not name the scopes", d.Denial.Description)
				}
			}},
		{name: "public operation", req: req("GET", "/petstore/v1/health", "x-consumer-id", "spoofed", "x-authenticated-userid", "eve"), status: 200,
			check: func(t *testing.T, d *Decision) {
				if d.Upstream != (identityHeaders{}) {
					t.Errorf("public operation sets identity headers %q", d.Upstream)
				}
				wantRemoved(t, d, "x-authenticated-userid", "x-consumer-id", "x-consumer-name", "x-authenticated-scope", "x-credential-type")
			}},
		{name: "public operation strips a key sent anyway", req: req("GET", "/petstore/v1/health", "apikey", "whatever"), status: 200,
			check: func(t *testing.T, d *Decision) { wantRemoved(t, d, "apikey") }},
		{name: "optional key absent", req: req("GET", "/petstore/v1/maybe"), status: 200,
			check: func(t *testing.T, d *Decision) {
				if d.Identity.Application != nil || d.Identity.Credential != "none" {
					t.Errorf("identity = %+v", d.Identity)
				}
			}},
		{name: "optional key present must verify", req: req("GET", "/petstore/v1/maybe", "apikey", "bad"), status: 401, code: "900901"},
		{name: "optional key present identifies", req: req("GET", "/petstore/v1/maybe", "apikey", keyMobile), status: 200,
			check: func(t *testing.T, d *Decision) {
				if d.Identity.Application == nil || d.Identity.Application.ID != "mobile" {
					t.Errorf("identity = %+v", d.Identity)
				}
			}},
		{name: "client-sent identity headers are replaced or removed", status: 200,
			req: req("GET", "/petstore/v1/pets", "apikey", keyReadOnly, "x-consumer-id", "eve", "x-consumer-groups", "admin",
				"x-authenticated-scope", "pets:admin", "x-credential-type", "jwt", "x-other", "kept"),
			check: func(t *testing.T, d *Decision) {
				// the read-only key has no scopes, so x-authenticated-scope is removed, not set
				wantRemoved(t, d, "apikey", "x-authenticated-scope", "x-consumer-groups")
				if d.Upstream[0] != "mobile" || d.Upstream[4] != "apiKey" {
					t.Errorf("upstream = %q", d.Upstream)
				}
			}},
		{name: "dot segments cannot reach a public operation's neighbour", req: req("GET", "/petstore/v1/health/../pets"), status: 401, code: "900902"},
		{name: "encoded dots are resolved too", req: req("GET", "/petstore/v1/health/%2e%2e/pets"), status: 401, code: "900902"},
		{name: "unmatched path", req: req("GET", "/nothing/here", "apikey", keyMobile), status: 404, code: "404"},
		{name: "unmatched method", req: req("PUT", "/petstore/v1/pets", "apikey", keyMobile), status: 404, code: "404",
			check: func(t *testing.T, d *Decision) {
				if !strings.Contains(d.Denial.Description, "method") {
					t.Errorf("description %q", d.Denial.Description)
				}
			}},
		{name: "host-restricted API on the wrong host", req: req("GET", "/internal/x", "apikey", keyMobile), status: 404, code: "404"},
		{name: "host-restricted API keeps credentials", req: onHost(req("GET", "/internal/x/y", "apikey", keyMobile), "internal.example.com"), status: 200,
			check: func(t *testing.T, d *Decision) {
				if slices.Contains(d.RemoveHeaders, "apikey") {
					t.Errorf("RemoveHeaders = %q removes the forwarded credential", d.RemoveHeaders)
				}
				wantRemoved(t, d, "x-http-method-override")
			}},
		{name: "context extensions name the API", req: named(req("GET", "/internal/x", "apikey", keyMobile), "internal", ""), status: 200,
			check: func(t *testing.T, d *Decision) {
				if d.API.ID != "internal" {
					t.Errorf("api = %s", d.API.ID)
				}
			}},
		{name: "context extensions name the operation", req: named(req("DELETE", "/rewritten", "apikey", keyMobile), "petstore", "/pets/{id}"), status: 200,
			check: func(t *testing.T, d *Decision) {
				if d.Operation.Path != "/pets/{id}" {
					t.Errorf("operation = %s", d.Operation.Path)
				}
			}},
		{name: "context extensions: operation without the method", req: named(req("GET", "/x", "apikey", keyMobile), "petstore", "/pets/{id}"), status: 404, code: "404"},
		{name: "context extensions: unknown API", req: named(req("GET", "/petstore/v1/pets", "apikey", keyMobile), "nope", ""), status: 404, code: "404"},
		{name: "empty request", req: &Request{}, status: 400, code: "900400"},
		{name: "escaped slash", req: req("GET", "/petstore/v1/pets/1%2F..%2F..%2Fpets", "apikey", keyReadOnly), status: 400, code: "900400"},
		{name: "backslash", req: req("GET", "/petstore/v1/health\\..\\pets"), status: 400, code: "900400"},
		{name: "path parameters that read as a dot segment", req: req("GET", "/petstore/v1/docs/..;/pets"), status: 400, code: "900400"},
		{name: "path parameters that read as another operation", req: req("GET", "/petstore/v1/docs/x/..;/../pets"), status: 400, code: "900400"},
		{name: "path parameters within one operation", req: req("DELETE", "/petstore/v1/pets/7;v=1", "apikey", keyMobile), status: 200},
		{name: "path parameters on a literal are another resource", req: req("GET", "/petstore/v1/health;jsessionid=1"), status: 404, code: "404"},
		{name: "malformed host", req: onHost(req("GET", "/petstore/v1/pets", "apikey", keyMobile), "api.example.com@evil"), status: 400, code: "900400"},
		{name: "HEAD is GET", req: req("HEAD", "/petstore/v1/pets", "apikey", keyMobile), status: 200},
		{name: "method override headers are removed", status: 200,
			req: req("GET", "/petstore/v1/pets", "apikey", keyMobile, "x-http-method-override", "DELETE"),
			check: func(t *testing.T, d *Decision) {
				wantRemoved(t, d, "x-http-method-override", "x-http-method", "x-method-override")
			}},
		{name: "method override query is removed", req: req("POST", "/petstore/v1/anything?_method=DELETE", "apikey", keyMobile), status: 404, code: "404"},
		{name: "method override query spelled otherwise is refused", req: req("GET", "/petstore/v1/pets?_m%65thod=DELETE", "apikey", keyMobile), status: 400, code: "900400"},
		{name: "X-Forwarded-For lines are joined", status: 403, code: "900908",
			req: from(rawReq("GET", "/petstore/v1/pets", "apikey", keyCIDR, "x-forwarded-for", "192.168.9.9", "x-forwarded-for", "203.0.113.9"), "10.0.0.1")},
		{name: "mTLS-less 401 names the accepted schemes", req: req("GET", "/petstore/v1/pets", "apikey", keyPartner), status: 401, code: "900907",
			check: func(t *testing.T, d *Decision) {
				if !strings.Contains(d.Denial.Challenge, "APIKey") {
					t.Errorf("challenge = %q", d.Denial.Challenge)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := e.Decide(context.Background(), tc.req)
			status := 200
			if !d.Allowed {
				status = d.Denial.Status
			}
			if status != tc.status || d.Code() != tc.code {
				t.Fatalf("got %d %q (%s), want %d %q", status, d.Code(), d.Denial.Description, tc.status, tc.code)
			}
			if tc.check != nil {
				tc.check(t, &d)
			}
		})
	}
}

func TestDecideUnmatchedAllow(t *testing.T) {
	e := testEngine(t, testConfig+"unmatched: allow\n")
	d := e.Decide(context.Background(), req("GET", "/elsewhere", "x-consumer-id", "eve"))
	if !d.Allowed || d.API != nil {
		t.Fatalf("unmatched request: allowed=%v api=%v", d.Allowed, d.API)
	}
	wantRemoved(t, &d, "x-consumer-id")
	// A route that names an API that does not exist is a misconfiguration, not "unmatched".
	r := req("GET", "/elsewhere")
	r.APIID = "nope"
	if d := e.Decide(context.Background(), r); d.Allowed {
		t.Fatal("unknown context_extensions API allowed")
	}
}

// The removal list is built from slices the config shares between
// decisions (the API's credential headers); appending to one in place would
// let concurrent decisions write into each other's lists. The test gives
// the shared slice spare capacity, so an in-place append would show.
func TestDecideDoesNotShareRemovalSlices(t *testing.T) {
	e := testEngine(t, testConfig)
	api := e.config.Load().Catalog.API("petstore")
	api.CredentialHeaders = append(make([]string, 0, 16), api.CredentialHeaders...)
	shared := api.CredentialHeaders[:cap(api.CredentialHeaders)]
	a := e.Decide(context.Background(), req("GET", "/petstore/v1/pets", "apikey", keyMobile, "x-consumer-a", "1"))
	b := e.Decide(context.Background(), req("GET", "/petstore/v1/pets", "apikey", keyMobile, "x-consumer-b", "1"))
	wantRemoved(t, &a, "apikey", "x-consumer-a")
	wantRemoved(t, &b, "apikey", "x-consumer-b")
	if slices.Contains(a.RemoveHeaders, "x-consumer-b") {
		t.Errorf("the first decision's list changed with the second: %q", a.RemoveHeaders)
	}
	for _, h := range shared[len(api.CredentialHeaders):] {
		if h != "" {
			t.Fatalf("a decision appended %q into the API's shared slice", h)
		}
	}
}

// wantRemoved checks that the decision removes every header in want, and
// none of those it sets upstream.
func wantRemoved(t *testing.T, d *Decision, want ...string) {
	t.Helper()
	for _, h := range want {
		if !slices.Contains(d.RemoveHeaders, h) {
			t.Errorf("RemoveHeaders = %q lacks %s", d.RemoveHeaders, h)
		}
	}
	for _, h := range d.RemoveHeaders {
		if d.sets(h) {
			t.Errorf("RemoveHeaders = %q removes %s, which the decision sets", d.RemoveHeaders, h)
		}
	}
}

// rawReq builds a request whose headers came in Envoy's header_map, one
// line each, so that names may repeat.
func rawReq(method, target string, headers ...string) *Request {
	r := req(method, target)
	var fields []headerField
	for i := 0; i+1 < len(headers); i += 2 {
		fields = append(fields, headerField{headers[i], headers[i+1]})
	}
	r.Headers = Headers{fields: fields}
	return r
}

func wantSlice(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	got = slices.Clone(got)
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}
