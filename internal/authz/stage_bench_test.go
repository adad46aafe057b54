package authz

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/model"
	"github.com/tollgate/tollgate/internal/ratelimit"
	"github.com/tollgate/tollgate/internal/testpki"
)

// stageCheck is the state of a decision for r just before the stage under
// measurement: the benchmarks copy it into one check for every iteration,
// so that values a stage memoises (a credential read once) are read again
// each time.
func stageCheck(tb testing.TB, e *Engine, r *Request, through string) (check, Decision) {
	tb.Helper()
	c := check{ctx: context.Background(), req: r, snap: e.config.Load(), now: e.clock.Now(), clientIP: r.Peer}
	var d Decision
	if through == "match" {
		return c, d
	}
	if denial := e.match(&c); denial != nil || c.op == nil {
		tb.Fatalf("no operation matched %s %s", r.Method, r.Target)
	}
	d.API, d.Operation = c.api, c.op
	if through == "authenticate" {
		return c, d
	}
	id, denial := e.authenticate(&c)
	if denial == nil {
		denial = e.authorize(&c, &id)
	}
	if denial != nil {
		tb.Fatalf("denied before %s: %s", through, denial.Description)
	}
	d.Identity = id
	if through == "rateLimit" || through == "authorize" {
		return c, d
	}
	if denial := e.rateLimit(&c, &d); denial != nil {
		tb.Fatalf("rate limited: %s", denial.Description)
	}
	return c, d // before allow
}

// tickingClock advances by step on every reading.
type tickingClock struct {
	start time.Time
	step  time.Duration
	ticks atomic.Int64
}

func (c *tickingClock) Now() time.Time { return c.start.Add(time.Duration(c.ticks.Add(1)) * c.step) }

// BenchmarkStages measures each stage of the decision on its own, with
// the headers of a typical request: matching, authentication per scheme,
// authorization (subscription and scopes), the rate limit against the
// memory store (the Redis store's cost is BenchmarkAdmitRedis in
// internal/ratelimit), and the allow step's upstream header plan.
func BenchmarkStages(b *testing.B) {
	apiKeyEngine := testEngine(b, testConfig)
	apiKeyReq := func() *Request {
		return &Request{Method: "DELETE", Host: "api.example.com", Target: "/petstore/v1/pets/42",
			Headers: headersOf(benchHeaders("apikey", keyMobile))}
	}

	b.Run("match/host-and-path", func(b *testing.B) {
		tmpl, _ := stageCheck(b, apiKeyEngine, apiKeyReq(), "match")
		c := new(check)
		b.ReportAllocs()
		for b.Loop() {
			*c = tmpl
			if apiKeyEngine.match(c) != nil || c.op == nil {
				b.Fatal("no match")
			}
		}
	})
	b.Run("match/context-extensions", func(b *testing.B) {
		r := apiKeyReq()
		r.APIID = "petstore"
		tmpl, _ := stageCheck(b, apiKeyEngine, r, "match")
		c := new(check)
		b.ReportAllocs()
		for b.Loop() {
			*c = tmpl
			if apiKeyEngine.match(c) != nil || c.op == nil {
				b.Fatal("no match")
			}
		}
	})

	authenticate := func(name string, e *Engine, r *Request) {
		b.Run("authenticate/"+name, func(b *testing.B) {
			tmpl, _ := stageCheck(b, e, r, "authenticate")
			c := new(check)
			b.ReportAllocs()
			for b.Loop() {
				*c = tmpl
				if _, denial := e.authenticate(c); denial != nil {
					b.Fatal(denial.Description)
				}
			}
		})
	}
	authenticate("apiKey", apiKeyEngine, apiKeyReq())

	jwtFix := newJWTFixture(b)
	token := sign(b, jwt.SigningMethodRS256, "rsa-1", jwtFix.claims(nil))
	jwtReq := &Request{Method: "DELETE", Host: "api.example.com", Target: "/petstore/v1/pets/42",
		Headers: headersOf(benchHeaders("authorization", "Bearer "+token))}
	if d := jwtFix.engine.Decide(context.Background(), jwtReq); !d.Allowed { // fills the verified-token cache
		b.Fatalf("JWT denied: %s", d.Denial.Description)
	}
	authenticate("jwt-cached", jwtFix.engine, jwtReq)

	mtlsFix := newMTLSFixture(b)
	authenticate("mtls-principal", mtlsFix.plain, mreq("/orders/1", spiffeCart, ""))
	authenticate("mtls-trusted-xfcc", mtlsFix.trusting, mreq("/orders/1", "", "",
		"x-forwarded-client-cert", "By="+spiffeOrders+`;Hash=abc;Subject="";URI=`+spiffeCart))
	authenticate("mtls-certificate", mtlsFix.plain, mreq("/orders/1", "", testpki.URLEncoded(mtlsFix.certs["cart"])))

	b.Run("authorize/subscription-and-scopes", func(b *testing.B) {
		tmpl, d := stageCheck(b, apiKeyEngine, apiKeyReq(), "authorize")
		c := new(check)
		b.ReportAllocs()
		for b.Loop() {
			*c = tmpl
			id := d.Identity
			if denial := apiKeyEngine.authorize(c, &id); denial != nil {
				b.Fatal(denial.Description)
			}
		}
	})

	b.Run("rateLimit/memory", func(b *testing.B) {
		snap, err := config.Compile([]byte(`
rateLimitPolicies:
  - {name: wide, limits: [{requests: 100000, per: 1s}, {requests: 1000000000, per: 24h}]}
apis:
  - {id: petstore, basePath: /petstore/v1, security: [apiKey], rateLimit: wide, operations: [{path: "/pets/{id}"}]}
applications: [{id: mobile}]
subscriptions: [{application: mobile, api: petstore, rateLimit: wide, state: active}]
apiKeys: [{application: mobile, sha256: `+sha(keyMobile)+`}]
`), func(string) (string, bool) { return "", false })
		if err != nil {
			b.Fatal(err)
		}
		// The store's clock moves 10 µs a reading, the first limit's
		// emission interval: every decision is admitted, as under a steady
		// load within the limits.
		clock := &tickingClock{start: testNow, step: 10 * time.Microsecond}
		limiter := ratelimit.NewLimiter(context.Background(), ratelimit.LimiterOptions{Store: ratelimit.NewMemoryStore(ratelimit.MemoryOptions{Clock: clock})})
		e := NewEngine(Options{Config: model.NewStore(snap.Snapshot), Clock: fixedClock(testNow), RateLimiter: limiter})
		tmpl, d := stageCheck(b, e, apiKeyReq(), "rateLimit")
		c := new(check)
		b.ReportAllocs()
		for b.Loop() {
			*c = tmpl
			dd := d
			if denial := e.rateLimit(c, &dd); denial != nil {
				b.Fatal(denial.Description)
			}
		}
	})

	b.Run("allow/upstream-headers", func(b *testing.B) {
		tmpl, d := stageCheck(b, apiKeyEngine, apiKeyReq(), "allow")
		c := new(check)
		b.ReportAllocs()
		for b.Loop() {
			*c = tmpl
			dd := d
			apiKeyEngine.allow(c, &dd)
			if !dd.Allowed {
				b.Fatal("not allowed")
			}
		}
	})
}
