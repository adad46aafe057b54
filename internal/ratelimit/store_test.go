package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testredis"
)

// accuracy runs 8 clients as fast as they can against one key limited to
// 50/s with burst 10, for 3 s, and returns how many were admitted. GCRA
// allows the burst of 11 plus 50 per second: between 150 and 161.
func accuracy(t *testing.T, s Store) int64 {
	t.Helper()
	limit := Limit{Requests: 50, Per: time.Second, Burst: 10}
	key := fmt.Sprintf("tg:{accuracy}:%d", time.Now().UnixNano())
	var admitted, errs atomic.Int64
	deadline := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			items := []Item{item(key, limit)}
			res := make([]Result, 1)
			for time.Now().Before(deadline) {
				ok, err := s.Admit(context.Background(), items, res)
				switch {
				case err != nil:
					errs.Add(1)
				case ok:
					admitted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if errs.Load() > 0 {
		t.Fatalf("%d store errors", errs.Load())
	}
	return admitted.Load()
}

func TestAccuracyMemory(t *testing.T) {
	if n := accuracy(t, NewMemoryStore(nil)); n < 150 || n > 161 {
		t.Fatalf("admitted %d in 3 s, want 150..161", n)
	}
}

func newRedisStore(t *testing.T, addrs ...string) *RedisStore {
	t.Helper()
	s, err := NewRedisStore(RedisOptions{Addrs: addrs, Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestAccuracyRedis(t *testing.T) {
	srv := testredis.Start(t)
	s := newRedisStore(t, srv.Addr)
	if n := accuracy(t, s); n < 150 || n > 161 {
		t.Fatalf("admitted %d in 3 s, want 150..161", n)
	}
}

func TestRedisSemantics(t *testing.T) {
	srv := testredis.Start(t)
	s := newRedisStore(t, srv.Addr)
	ctx := context.Background()
	fast := Limit{Requests: 100, Per: time.Second, Burst: 9}
	slow := Limit{Requests: 3, Per: time.Minute, Burst: 2}
	items := []Item{item("tg:{a}:fast", fast), item("tg:{b}:slow", slow)}
	res := make([]Result, 2)
	admitted := 0
	for range 10 {
		ok, err := s.Admit(ctx, items, res)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			admitted++
		}
	}
	if admitted != 3 || res[1].Allowed || res[1].RetryAfter <= 0 || res[1].Reset <= 0 {
		t.Fatalf("admitted %d, last %+v: the tighter limit must win", admitted, res)
	}
	// Refusals consumed nothing of the fast key.
	n := 0
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
	if n != 7 {
		t.Fatalf("fast key admitted %d more, want 7", n)
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

func TestRedisOutage(t *testing.T) {
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
			store, err := NewRedisStore(RedisOptions{Addrs: []string{srv.Addr}, Timeout: 25 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			var obs recorder
			opts := LimiterOptions{Store: store, StoreName: "redis", Failure: tc.mode, Observer: &obs,
				ProbeEvery: 20 * time.Millisecond, FallbackShare: 0.5}
			if tc.fallback {
				opts.Fallback = NewMemoryStore(nil)
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
				// Bounded by the store timeout, not by how long Redis stays away.
				if took := time.Since(start); took > time.Second {
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
			for l.Admit(ctx, items, res) != Admitted || l.InFallback() {
				if time.Now().After(deadline) {
					t.Fatal("the limiter did not return to Redis")
				}
				time.Sleep(20 * time.Millisecond)
			}
			if obs.fallback.Load() {
				t.Fatal("fallback gauge still set")
			}
		})
	}
}

func TestFallbackShare(t *testing.T) {
	// Half of each limit locally: 1/h with burst 2 (3 at once) becomes
	// 0.5/h with burst 1 (2 at once); the burst lasts as long as before.
	l := NewLimiter(context.Background(), LimiterOptions{Store: failingStore{}, Fallback: NewMemoryStore(nil),
		FallbackShare: 0.5, FailuresToFallback: 1})
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
	if res[0].RetryAfter < 90*time.Minute {
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
	s, err := NewRedisStore(RedisOptions{Addrs: []string{sentinel}, SentinelMaster: "tollgate", Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	items := []Item{item("tg:{sentinel}:k", Limit{Requests: 1, Per: time.Hour})}
	res := make([]Result, 1)
	if ok, err := s.Admit(context.Background(), items, res); err != nil || !ok {
		t.Fatalf("through Sentinel: %v %v", ok, err)
	}
	if ok, _ := s.Admit(context.Background(), items, res); ok {
		t.Fatal("second request admitted")
	}
	if master.CommandCalls("evalsha") == 0 {
		t.Fatal("the decision did not reach the master Sentinel named")
	}
}
