package authz

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/model"
	"github.com/tollgate/tollgate/internal/ratelimit"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

const rateLimitConfig = `
rateLimitPolicies:
  - {name: one-per-minute, limits: [{requests: 1, per: 1m}]}
  - {name: two-per-minute, limits: [{requests: 2, per: 1m, burst: 1}]}
  - {name: roomy, limits: [{requests: 100, per: 1s, burst: 49}, {requests: 1000, per: 1h, burst: 9}]}
apis:
  - id: op-limited
    basePath: /op
    security: [apiKey]
    operations:
      - {path: /strict, rateLimit: one-per-minute}
      - {path: /free}
  - id: api-limited
    basePath: /api
    security: [apiKey]
    rateLimit: two-per-minute
    operations: [{path: /**}]
  - id: sub-limited
    basePath: /sub
    security: [apiKey]
    operations: [{path: /**}]
  - id: app-limited
    basePath: /app
    security: [apiKey]
    operations: [{path: /**}]
  - id: public
    basePath: /public
    security: [none]
    anonymousRateLimit: one-per-minute
    operations: [{path: /**}]
  - id: headers
    basePath: /headers
    security: [apiKey]
    rateLimit: roomy
    operations: [{path: /**}]
applications:
  - {id: a}
  - {id: b, rateLimit: one-per-minute}
subscriptions:
  - {application: a, api: op-limited, state: active}
  - {application: a, api: api-limited, state: active}
  - {application: a, api: sub-limited, rateLimit: one-per-minute, state: active}
  - {application: a, api: headers, state: active}
  - {application: b, api: app-limited, state: active}
  - {application: b, api: headers, state: active}
apiKeys:
  - {application: a, sha256: ` + "SHA_A" + `}
  - {application: b, sha256: ` + "SHA_B" + `}
`

// countingRecorder records rate-limit outcomes.
type countingRecorder struct {
	mu     sync.Mutex
	counts map[string]int
}

func (r *countingRecorder) ObserveDecision(*Request, *Decision, time.Duration) {}
func (r *countingRecorder) ObservePanic(string)                                {}
func (r *countingRecorder) ObserveRateLimit(policy, result string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts[policy+"/"+result]++
}

func rateLimitEngine(t *testing.T, limiter *ratelimit.Limiter) (*Engine, *movableClock, *countingRecorder) {
	t.Helper()
	cfg := strings.NewReplacer("SHA_A", sha("key-a"), "SHA_B", sha("key-b")).Replace(rateLimitConfig)
	snap, err := config.Compile([]byte(cfg), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	clock := &movableClock{now: testNow}
	rec := &countingRecorder{counts: map[string]int{}}
	if limiter == nil {
		limiter = ratelimit.NewLimiter(context.Background(), ratelimit.LimiterOptions{Store: ratelimit.NewMemoryStore(ratelimit.MemoryOptions{Clock: clock})})
	}
	return NewEngine(Options{Config: model.NewStore(snap.Snapshot), Clock: clock, Metrics: rec, RateLimiter: limiter}), clock, rec
}

func TestRateLimitScopes(t *testing.T) {
	cases := []struct {
		name     string
		path     string
		key      string
		admitted int    // before the first 429
		code     string // of the 429
		other    string // a request that must still pass afterwards
	}{
		{"operation", "/op/strict", "key-a", 1, "900802", "/op/free"},
		{"API", "/api/x", "key-a", 2, "900800", "/op/free"},
		{"subscription", "/sub/x", "key-a", 1, "900804", "/api/y"},
		{"application", "/app/x", "key-b", 1, "900803", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, clock, rec := rateLimitEngine(t, nil)
			decide := func(path string) Decision {
				return e.Decide(context.Background(), req("GET", path, "apikey", tc.key))
			}
			for i := range tc.admitted {
				if d := decide(tc.path); !d.Allowed {
					t.Fatalf("request %d refused: %s %s", i, d.Code(), d.Denial.Description)
				}
			}
			d := decide(tc.path)
			if d.Allowed || d.Denial.Status != 429 || d.Code() != tc.code || d.Denial.RetryAfter < 1 || d.Denial.RetryAfter > 60 {
				t.Fatalf("got allowed=%v %d %s retry %d, want 429 %s", d.Allowed, d.Denial.Status, d.Code(), d.Denial.RetryAfter, tc.code)
			}
			if d.RateLimit.Remaining != 0 || d.RateLimit.Limit == 0 {
				t.Errorf("429 rate-limit headers %+v", d.RateLimit)
			}
			if tc.other != "" {
				if d := decide(tc.other); !d.Allowed {
					t.Fatalf("%s refused: limits leak across scopes (%s)", tc.other, d.Code())
				}
			}
			clock.Advance(time.Minute)
			if d := decide(tc.path); !d.Allowed {
				t.Fatalf("still refused a minute later: %s", d.Code())
			}
			if rec.counts[pickPolicy(tc.name)+"/limited"] != 1 {
				t.Errorf("metric counts %v", rec.counts)
			}
		})
	}
}

func pickPolicy(scope string) string {
	if scope == "API" {
		return "two-per-minute"
	}
	return "one-per-minute"
}

func TestRateLimitAnonymousPerClient(t *testing.T) {
	e, _, _ := rateLimitEngine(t, nil)
	from := func(ip string) Decision {
		r := req("GET", "/public/x")
		r.Peer = mustAddr(ip)
		return e.Decide(context.Background(), r)
	}
	if d := from("198.51.100.1"); !d.Allowed {
		t.Fatal("first request of a client refused")
	}
	if d := from("198.51.100.1"); d.Allowed || d.Code() != "900800" {
		t.Fatalf("second request of the client: allowed=%v %s", d.Allowed, d.Code())
	}
	if d := from("198.51.100.2"); !d.Allowed {
		t.Fatal("another client was limited by the first one's use")
	}
}

func TestRateLimitAnonymousApplicationBySubject(t *testing.T) {
	f := newJWTFixture(t)
	token := func(sub string) string {
		return sign(t, jwt.SigningMethodES256, "ec256", f.claims(func(c jwt.MapClaims) {
			c["iss"], c["cid"], c["sub"] = "https://open.test", "unknown", sub
			delete(c, "aud")
		}))
	}
	carol, dave := token("carol"), token("dave")
	for i := range 2 { // 2/h with burst 1
		if d := f.decide("GET", "/petstore/v1/pets", carol); !d.Allowed {
			t.Fatalf("carol's request %d refused: %s", i, d.Code())
		}
	}
	if d := f.decide("GET", "/petstore/v1/pets", carol); d.Allowed || d.Code() != "900800" {
		t.Fatalf("carol's third request: allowed=%v %s", d.Allowed, d.Code())
	}
	if d := f.decide("GET", "/petstore/v1/pets", dave); !d.Allowed {
		t.Fatal("dave was limited by carol's use")
	}
}

func TestRateLimitHeaders(t *testing.T) {
	e, _, rec := rateLimitEngine(t, nil)
	d := e.Decide(context.Background(), req("GET", "/headers/x", "apikey", "key-b"))
	// roomy allows 50 at once and 10 per hour-burst; b's application policy allows 1:
	// the tightest is the application's, with nothing left.
	if !d.Allowed || d.RateLimit != (RateLimitHeaders{Limit: 1, Remaining: 0, Reset: 60}) {
		t.Fatalf("allowed=%v headers %+v", d.Allowed, d.RateLimit)
	}
	d = e.Decide(context.Background(), req("GET", "/headers/x", "apikey", "key-a"))
	// The API-wide roomy limit is shared: b's request used one of its hourly 10.
	if !d.Allowed || d.RateLimit != (RateLimitHeaders{Limit: 1000, Remaining: 8, Reset: 8}) {
		t.Fatalf("allowed=%v headers %+v", d.Allowed, d.RateLimit)
	}
	resp := checkResponse(&d)
	got := map[string]string{}
	for _, h := range resp.GetOkResponse().GetResponseHeadersToAdd() {
		got[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	if got["ratelimit-limit"] != "1000" || got["ratelimit-remaining"] != "8" || got["ratelimit-reset"] != "8" {
		t.Fatalf("response headers %v", got)
	}
	if rec.counts["roomy/allowed"] != 2 || rec.counts["one-per-minute/allowed"] != 1 {
		t.Fatalf("metric counts %v", rec.counts)
	}
}

type downStore struct{}

func (downStore) Admit(context.Context, []ratelimit.Item, []ratelimit.Result) (bool, error) {
	return false, errors.New("connection refused")
}

func TestRateLimitStoreDown(t *testing.T) {
	for _, tc := range []struct {
		mode    ratelimit.FailureMode
		allowed bool
	}{{ratelimit.FailOpen, true}, {ratelimit.FailClosed, false}} {
		limiter := ratelimit.NewLimiter(context.Background(), ratelimit.LimiterOptions{Store: downStore{}, Failure: tc.mode})
		e, _, rec := rateLimitEngine(t, limiter)
		d := e.Decide(context.Background(), req("GET", "/api/x", "apikey", "key-a"))
		if d.Allowed != tc.allowed || (!tc.allowed && (d.Denial.Status != 503 || d.Code() != "900810")) {
			t.Fatalf("mode %v: allowed=%v %d %s", tc.mode, d.Allowed, d.Denial.Status, d.Code())
		}
		if d.Allowed && d.RateLimit.Limit != 0 {
			t.Errorf("headers without a store answer: %+v", d.RateLimit)
		}
		if rec.counts["two-per-minute/error"] != 1 {
			t.Errorf("metric counts %v", rec.counts)
		}
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// TestHeldAPIDenies checks that an API whose rate-limit policy has not
// reached the replica yet (a partial set from the control plane) refuses
// every request rather than running without its limits.
func TestHeldAPIDenies(t *testing.T) {
	snap, problems := model.Compile(model.Input{Now: time.Now(), Partial: true, Resources: &tollgatev1.Resources{
		Apis: []*tollgatev1.Api{{Id: "open", BasePath: "/open", Security: []string{"none"}, RateLimit: "gold",
			Operations: []*tollgatev1.Operation{{Path: "/**"}}}},
	}})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	e := NewEngine(Options{Config: model.NewStore(snap), Clock: fixedClock(testNow)})
	d := e.Decide(context.Background(), req("GET", "/open/x"))
	if d.Allowed || d.Denial.Status != 503 || d.Code() != "900810" {
		t.Fatalf("held API: allowed=%v status=%d code=%s, want a 503 900810 denial", d.Allowed, d.Denial.Status, d.Code())
	}
}
