package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testredis"
)

func rateLimitConfig(redisAddr, failureMode string) string {
	return `
rateLimitPolicies:
  - {name: per-app, limits: [{requests: 3, per: 1m, burst: 2}]}
rateLimit:
  store: redis
  redis: {addrs: ["` + redisAddr + `"], timeout: 25ms, password: "${TOLLGATE_E2E_REDIS_PASSWORD}"}
  failureMode: ` + failureMode + `
  localFallbackShare: 0.5
apis:
  - id: petstore
    basePath: /petstore/v1
    security: [apiKey]
    operations: [{path: /pets, methods: [GET]}]
applications:
  - {id: mobile, rateLimit: per-app}
subscriptions:
  - {application: mobile, api: petstore, state: active}
apiKeys:
  - {application: mobile, sha256: ` + sha(keyMobile) + `}
`
}

type limitedResponse struct {
	status                  int
	code                    string
	limit, remaining, retry string
	took                    time.Duration
}

func callLimited(t *testing.T, e *enforcer) limitedResponse {
	t.Helper()
	req, _ := http.NewRequest("GET", e.HTTPURL()+"/petstore/v1/pets", nil)
	req.Header.Set("apikey", keyMobile)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var deny map[string]string
	_ = json.Unmarshal(body, &deny)
	return limitedResponse{
		status: resp.StatusCode, code: deny["code"], took: time.Since(start),
		limit: resp.Header.Get("RateLimit-Limit"), remaining: resp.Header.Get("RateLimit-Remaining"),
		retry: resp.Header.Get("Retry-After"),
	}
}

func TestRateLimitWithRedis(t *testing.T) {
	redis := testredis.Start(t)
	e := startEnforcer(t, rateLimitConfig(redis.Addr, "closed"))

	// Ready means warmed up: the script is in Redis before any decision,
	// so a cold replica under failureMode closed does not answer 503.
	if loads := redis.CommandCalls("script|load"); loads < 1 {
		t.Fatalf("SCRIPT LOAD calls before the first decision: %d, want at least 1", loads)
	}
	if calls := redis.CommandCalls("evalsha"); calls != 0 {
		t.Fatalf("%d EVALSHA before any decision", calls)
	}

	// burst 2: three at once, then refused with Retry-After.
	for i, want := range []string{"2", "1", "0"} {
		r := callLimited(t, e)
		if r.status != 200 || r.limit != "3" || r.remaining != want {
			t.Fatalf("request %d: %+v", i, r)
		}
	}
	r := callLimited(t, e)
	if r.status != 429 || r.code != "900803" || r.retry == "" || r.retry == "0" {
		t.Fatalf("over the limit: %+v", r)
	}
	// The state lives in Redis: one EVALSHA per decision.
	if calls := redis.CommandCalls("evalsha"); calls != 4 {
		t.Errorf("%d EVALSHA for 4 decisions", calls)
	}
	if v := e.Metric("tollgate_ratelimit_total", "policy", "per-app", "result", "limited"); v != 1 {
		t.Errorf("limited count %v", v)
	}

	// Redis goes away: failureMode closed answers 503 at once, then the
	// local fallback takes over.
	redis.Stop()
	r = callLimited(t, e)
	if r.status != 503 || r.code != "900810" || r.took > 2*time.Second {
		t.Fatalf("first decision without Redis: %+v", r)
	}
	waitFor(t, "the local fallback", 10*time.Second, func() bool {
		callLimited(t, e)
		return e.Metric("tollgate_ratelimit_fallback") == 1
	})
	// Redis comes back on its port: the enforcer returns to it by itself.
	redis.Restart()
	waitFor(t, "the return to Redis", 10*time.Second, func() bool {
		return e.Metric("tollgate_ratelimit_fallback") == 0
	})
	callLimited(t, e) // the restarted Redis lost the script: EVALSHA, NOSCRIPT, SCRIPT LOAD, EVALSHA
	before := redis.CommandCalls("evalsha")
	callLimited(t, e)
	if after := redis.CommandCalls("evalsha"); after != before+1 {
		t.Fatalf("decisions do not reach Redis again (%d -> %d EVALSHA)", before, after)
	}
	if e.Metric("tollgate_ratelimit_store_duration_seconds", "store", "redis") < 5 {
		t.Error("store latency not recorded")
	}
}

func TestRateLimitFailOpen(t *testing.T) {
	redis := testredis.Start(t)
	e := startEnforcer(t, rateLimitConfig(redis.Addr, "open"))
	redis.Stop()
	r := callLimited(t, e)
	if r.status != 200 || r.limit != "" {
		t.Fatalf("fail open without Redis: %+v", r)
	}
	if v := e.Metric("tollgate_ratelimit_total", "policy", "per-app", "result", "error"); v != 1 {
		t.Errorf("error count %v", v)
	}
}
