package ratelimit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tollgate/tollgate/internal/testredis"
)

// accuracyLimit is 50/s with a burst of 10: T = 20ms, τ = 200ms.
var accuracyLimit = Limit{Requests: 50, Per: time.Second, Burst: 10}

// TestAccuracyMemory: 8 goroutines ask for one key as fast as they can
// while a fake clock moves through 3 s in 10 ms steps. Within a step the
// clock stands still, so the goroutines ask until the key refuses, and
// the step ends when all have seen a refusal: GCRA then admits exactly
// its burst of 11 plus one per 20 ms, 161, however the goroutines are
// scheduled. Any lost atomicity shows as more.
func TestAccuracyMemory(t *testing.T) {
	clock := newTestClock()
	s := NewMemoryStore(MemoryOptions{Clock: clock})
	items := []Item{item("tg:{accuracy}:0", accuracyLimit)}
	var admitted atomic.Int64
	for step := 0; step <= 300; step++ {
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				res := make([]Result, 1)
				for {
					if ok, _ := s.Admit(context.Background(), items, res); !ok {
						return
					}
					admitted.Add(1)
				}
			})
		}
		wg.Wait()
		clock.Advance(10 * time.Millisecond)
	}
	if want := gcraAllows(accuracyLimit, 3*time.Second); admitted.Load() != want {
		t.Fatalf("admitted %d in 3 s, want %d", admitted.Load(), want)
	}
}

// newRedisStore connects to addrs with a generous timeout: these tests are
// about what the store answers, not how fast, and a loaded machine must
// not turn a slow reply into an error.
func newRedisStore(t *testing.T, addrs ...string) *RedisStore {
	t.Helper()
	s, err := NewRedisStore(RedisOptions{Addrs: addrs, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The Redis tests run on Redis's clock (the script reads TIME), which no
// test can hold still. They stay deterministic by asserting only what
// GCRA guarantees for any time elapsed: Redis evaluates each call between
// its send and its reply, so the wall time measured around the calls
// bounds the Redis time between them. (Both clocks run at the same rate;
// only a step of the system clock during a test could break this.)

// timedAdmit is one decision with the wall time around it.
type timedAdmit struct {
	sent, replied time.Time
	ok            bool
	res           Result
}

// TestAccuracyRedis: 8 clients ask for one key as fast as they can for
// 3 s. However they are scheduled, GCRA admits at most burst+1 plus one
// per T over the time from the first send to the last reply. And as long
// as the key never went idle (no admission after the first found it full,
// Remaining = burst), the last refusal proves the key had been admitted
// burst+1 plus one per T since the first evaluation: at least that many
// over the time from the first reply to that refusal's send.
func TestAccuracyRedis(t *testing.T) {
	srv := testredis.Start(t)
	s := newRedisStore(t, srv.Addr)
	key := "tg:{accuracy}:0"
	deadline := time.Now().Add(3 * time.Second)
	perClient := make([][]timedAdmit, 8)
	var wg sync.WaitGroup
	for c := range perClient {
		wg.Go(func() {
			items := []Item{item(key, accuracyLimit)}
			res := make([]Result, 1)
			for time.Now().Before(deadline) {
				sent := time.Now()
				ok, err := s.Admit(context.Background(), items, res)
				if err != nil {
					t.Error(err)
					return
				}
				perClient[c] = append(perClient[c], timedAdmit{sent: sent, replied: time.Now(), ok: ok, res: res[0]})
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	calls := slices.Concat(perClient...)
	firstSent := slices.MinFunc(calls, func(a, b timedAdmit) int { return a.sent.Compare(b.sent) }).sent
	firstReply := slices.MinFunc(calls, func(a, b timedAdmit) int { return a.replied.Compare(b.replied) }).replied
	lastReply := slices.MaxFunc(calls, func(a, b timedAdmit) int { return a.replied.Compare(b.replied) }).replied
	var admitted, full int64
	var lastRefusal time.Time
	for _, c := range calls {
		if c.ok {
			admitted++
			if c.res.Remaining == accuracyLimit.Burst {
				full++
			}
		} else if c.sent.After(lastRefusal) {
			lastRefusal = c.sent
		}
	}
	if most := gcraAllows(accuracyLimit, lastReply.Sub(firstSent)); admitted > most {
		t.Fatalf("admitted %d in %v, GCRA allows %d", admitted, lastReply.Sub(firstSent), most)
	}
	least := accuracyLimit.Burst + 1
	if full == 1 && lastRefusal.After(firstReply) {
		least = gcraAllows(accuracyLimit, lastRefusal.Sub(firstReply))
	}
	if admitted < least {
		t.Fatalf("admitted %d, want at least %d (the key went idle %d times)", admitted, least, full-1)
	}
	t.Logf("admitted %d of %d in %v; at least %d, idle %d times", admitted, len(calls), lastReply.Sub(firstSent), least, full-1)
}

// TestRedisSemantics: two limits in one decision, on Redis's clock. Every
// count is checked against GCRA's bounds for the wall time the calls took
// (see above); on any machine that does the 40-odd calls within a second,
// the bounds are exact.
func TestRedisSemantics(t *testing.T) {
	srv := testredis.Start(t)
	s := newRedisStore(t, srv.Addr)
	ctx := context.Background()
	fast := Limit{Requests: 60, Per: time.Minute, Burst: 9} // T = 1s, 10 at once
	slow := Limit{Requests: 3, Per: time.Minute, Burst: 2}  // T = 20s, 3 at once: tighter
	items := []Item{item("tg:{a}:fast", fast), item("tg:{b}:slow", slow)}
	res := make([]Result, 2)
	start := time.Now()
	admitted := int64(0)
	for i := range 10 {
		ok, err := s.Admit(ctx, items, res)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			admitted++
			continue
		}
		// Refused by the slow limit, which says when to retry; the fast
		// one, with 10 at once, would have admitted.
		if !res[0].Allowed || res[1].Allowed || res[1].RetryAfter <= 0 || res[1].Reset <= 0 {
			t.Fatalf("decision %d: %+v: the tighter limit must refuse, and only it", i, res)
		}
	}
	if most := gcraAllows(slow, time.Since(start)); admitted < slow.Burst+1 || admitted > most {
		t.Fatalf("admitted %d of 10, want %d..%d: the tighter limit must win", admitted, slow.Burst+1, most)
	}
	// Refusals consumed nothing of the fast key: alone, it admits until
	// its own limit is spent, counting the decisions admitted above.
	n := admitted
	for {
		ok, err := s.Admit(ctx, items[:1], res)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		n++
	}
	if most := gcraAllows(fast, time.Since(start)); n < fast.Burst+1 || n > most {
		t.Fatalf("fast key admitted %d in all, want %d..%d (refusals must not consume)", n, fast.Burst+1, most)
	}
	// One decision, one round trip: every Admit after the first is one EVALSHA.
	before := srv.CommandCalls("evalsha")
	for range 20 {
		if _, err := s.Admit(ctx, items, res); err != nil {
			t.Fatal(err)
		}
	}
	if calls := srv.CommandCalls("evalsha") - before; calls != 20 {
		t.Fatalf("%d EVALSHA for 20 decisions of two limits, want 20", calls)
	}
	// Keys expire once their TAT has passed.
	ttl, err := srv.Do("PTTL", "tg:{b}:slow")
	if err != nil || ttl == "-1" {
		t.Fatalf("key without expiry: %q %v", ttl, err)
	}
}

func TestRedisCluster(t *testing.T) {
	cluster := testredis.StartCluster(t)
	s := newRedisStore(t, cluster.Addrs()...)
	ctx := context.Background()
	// Scopes with different hash tags land in different slots (and nodes).
	policy := &Policy{Name: "p", Limits: []Limit{{Requests: 2, Per: time.Hour, Burst: 1}}}
	var items []Item
	for _, id := range []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot"} {
		items = policy.AppendItems(items, ScopeApplication, id)
	}
	res := make([]Result, len(items))
	before := cluster.CommandCalls(t, "evalsha") + cluster.CommandCalls(t, "eval")
	for i := range 2 {
		ok, err := s.Admit(ctx, items, res)
		if err != nil || !ok {
			t.Fatalf("decision %d: %v %v", i, ok, err)
		}
	}
	ok, err := s.Admit(ctx, items, res)
	if err != nil || ok {
		t.Fatalf("third decision admitted=%v err=%v: the limits did not hold", ok, err)
	}
	for i := range items {
		if res[i].Allowed {
			t.Fatalf("%s admitted a third request", items[i].Key)
		}
	}
	if calls := cluster.CommandCalls(t, "evalsha") + cluster.CommandCalls(t, "eval") - before; calls < 6 {
		t.Fatalf("%d script calls for 3 decisions over 6 slots", calls)
	}
	// Every node took part.
	for _, n := range cluster.Nodes {
		if n.CommandCalls("evalsha")+n.CommandCalls("eval") == 0 {
			t.Errorf("node %s served none of the keys", n.Addr)
		}
	}
}

// recorder is an Observer for tests.
type recorder struct {
	fallback atomic.Bool
	errors   atomic.Int64
}

func (r *recorder) ObserveStore(_ string, _ time.Duration, err error) {
	if err != nil {
		r.errors.Add(1)
	}
}
func (r *recorder) ObserveFallback(active bool) { r.fallback.Store(active) }

// TestRedisOutage stops a real Redis under the limiter and starts it
// again. It is deterministic because nothing in it races a clock: the
// store's timeout is generous, so with Redis up every call answers, and
// with Redis stopped every call fails at once with a refused connection;
// the local fallback runs on a fake clock with room for every decision
// asked of it; and the return to Redis is polled for, all of it (the
// probe clears the fallback gauge just after it leaves the fallback),
// until a deadline.
func TestRedisOutage(t *testing.T) {
	const timeout = 2 * time.Second
	limit := Limit{Requests: 1000, Per: time.Second, Burst: 100}
	for _, tc := range []struct {
		name     string
		mode     FailureMode
		fallback bool
		want     Outcome // while Redis is down, before any fallback
	}{
		{"fail open", FailOpen, false, FailedOpen},
		{"fail closed", FailClosed, false, Unavailable},
		{"local fallback", FailClosed, true, Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testredis.Start(t)
			store, err := NewRedisStore(RedisOptions{Addrs: []string{srv.Addr}, Timeout: timeout})
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			var obs recorder
			opts := LimiterOptions{Store: store, StoreName: "redis", Failure: tc.mode, Observer: &obs,
				ProbeEvery: 20 * time.Millisecond, FallbackShare: 0.5}
			if tc.fallback {
				// Half of 101 at once: room for the decisions below.
				opts.Fallback = NewMemoryStore(MemoryOptions{Clock: newTestClock()})
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			l := NewLimiter(ctx, opts)
			items := []Item{item("tg:{outage}:k", limit)}
			res := make([]Result, 1)
			if got := l.Admit(ctx, items, res); got != Admitted {
				t.Fatalf("with Redis up: %v", got)
			}

			srv.Stop()
			for i := range 5 {
				start := time.Now()
				got := l.Admit(ctx, items, res)
				// A stopped server refuses at once: nothing waits for the
				// timeout, let alone for Redis to return.
				if took := time.Since(start); took >= timeout {
					t.Fatalf("a decision took %v while Redis was down", took)
				}
				want := tc.want
				if tc.fallback && i >= 2 {
					want = Admitted // from the third failure on, the local limiter answers
				}
				if got != want {
					t.Fatalf("decision %d while down: %v, want %v", i, got, want)
				}
			}
			if tc.fallback && (!l.InFallback() || !obs.fallback.Load()) {
				t.Fatal("not in fallback after repeated failures")
			}
			if obs.errors.Load() < 2 {
				t.Fatalf("%d store errors observed", obs.errors.Load())
			}

			srv.Restart()
			deadline := time.Now().Add(10 * time.Second)
			for {
				got := l.Admit(ctx, items, res)
				if got == Admitted && !l.InFallback() && !obs.fallback.Load() {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the limiter did not return to Redis: last %v, in fallback %v, gauge %v",
						got, l.InFallback(), obs.fallback.Load())
				}
				time.Sleep(opts.ProbeEvery)
			}
		})
	}
}

// switchableStore fails, Ping included, while down is set.
type switchableStore struct {
	down     atomic.Bool
	admitted atomic.Int64
}

func (s *switchableStore) Admit(context.Context, []Item, []Result) (bool, error) {
	if s.down.Load() {
		return false, errors.New("down")
	}
	s.admitted.Add(1)
	return true, nil
}

func (s *switchableStore) Ping(context.Context) error {
	if s.down.Load() {
		return errors.New("down")
	}
	return nil
}

// TestLimiterFallbackAndReturn runs in a synctest bubble: the probe's
// ticker runs on the bubble's fake time, and synctest.Wait returns once
// the probe has done all a tick lets it do.
func TestLimiterFallbackAndReturn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &switchableStore{}
		store.down.Store(true)
		var obs recorder
		l := NewLimiter(t.Context(), LimiterOptions{Store: store, Failure: FailClosed, Observer: &obs,
			Fallback: NewMemoryStore(MemoryOptions{}), ProbeEvery: time.Second})
		items := []Item{item("k", Limit{Requests: 10, Per: time.Second, Burst: 9})}
		res := make([]Result, 1)
		for i, want := range []Outcome{Unavailable, Unavailable, Admitted, Admitted} {
			if got := l.Admit(t.Context(), items, res); got != want {
				t.Fatalf("decision %d with the store down: %v, want %v", i, got, want)
			}
		}
		time.Sleep(5 * time.Second) // five probes, all failed
		synctest.Wait()
		if !l.InFallback() || !obs.fallback.Load() {
			t.Fatal("left the fallback while the store was down")
		}

		store.down.Store(false)
		time.Sleep(time.Second)
		synctest.Wait() // the next probe found the store
		if l.InFallback() || obs.fallback.Load() {
			t.Fatalf("in fallback %v, gauge %v, one probe after the store answered", l.InFallback(), obs.fallback.Load())
		}
		if got := l.Admit(t.Context(), items, res); got != Admitted || store.admitted.Load() != 1 {
			t.Fatalf("after the return: %v, %d decisions reached the store", got, store.admitted.Load())
		}
	})
}

// TestFallbackShare runs the fallback on a fake clock: the counts and the
// retry time are exact.
func TestFallbackShare(t *testing.T) {
	// Half of each limit locally: 1/h with burst 2 (3 at once) becomes
	// 0.5/h with burst 1 (2 at once); the burst lasts as long as before.
	l := NewLimiter(context.Background(), LimiterOptions{Store: failingStore{},
		Fallback: NewMemoryStore(MemoryOptions{Clock: newTestClock()}), FallbackShare: 0.5, FailuresToFallback: 1})
	limit := Limit{Requests: 1, Per: time.Hour, Burst: 2}
	items := []Item{item("k", limit)}
	res := make([]Result, 1)
	n := 0
	for range 10 {
		if l.Admit(context.Background(), items, res) == Admitted {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("admitted %d from the local fallback, want 2", n)
	}
	if res[0].RetryAfter != 2*time.Hour {
		t.Fatalf("retry after %v: the local interval should be doubled (2h)", res[0].RetryAfter)
	}
}

type failingStore struct{}

func (failingStore) Admit(context.Context, []Item, []Result) (bool, error) {
	return false, fmt.Errorf("down")
}

func TestRedisSentinel(t *testing.T) {
	master := testredis.Start(t)
	sentinel := testredis.StartSentinel(t, master, "tollgate")
	s, err := NewRedisStore(RedisOptions{Addrs: []string{sentinel}, SentinelMaster: "tollgate", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	items := []Item{item("tg:{sentinel}:k", Limit{Requests: 1, Per: time.Hour})}
	res := make([]Result, 1)
	if ok, err := s.Admit(context.Background(), items, res); err != nil || !ok {
		t.Fatalf("through Sentinel: %v %v", ok, err)
	}
	if ok, err := s.Admit(context.Background(), items, res); err != nil || ok {
		t.Fatalf("second request: admitted %v, error %v; want refused", ok, err)
	}
	if master.CommandCalls("evalsha") == 0 {
		t.Fatal("the decision did not reach the master Sentinel named")
	}
}

// The Redis client's messages go to the structured log, not as plain text
// among the JSON lines.
func TestRedisLogIsStructured(t *testing.T) {
	var out strings.Builder
	l := redisLog{slog.New(slog.NewJSONHandler(&out, nil))}
	l.Printf(context.Background(), "redis: connection pool: %s", "was closed")
	var line map[string]any
	if err := json.Unmarshal([]byte(out.String()), &line); err != nil || line["message"] != "redis: connection pool: was closed" || line["msg"] != "redis client" {
		t.Fatalf("log line %q: %v", out.String(), err)
	}
}
