package ratelimit

import (
	"context"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func item(key string, l Limit) Item {
	return Item{Key: key, Interval: l.Interval(), Tolerance: l.Tolerance()}
}

func TestGCRA(t *testing.T) {
	l := Limit{Requests: 10, Per: time.Second, Burst: 4} // T = 100ms, tolerance 400ms
	it := item("k", l)
	var tat int64
	now := int64(1_000_000_000_000)
	// A fresh key admits burst+1 at once, counting down.
	for want := int64(4); want >= 0; want-- {
		var r Result
		tat, r = gcra(tat, now, it)
		if !r.Allowed || r.Remaining != want {
			t.Fatalf("request %d: %+v, want allowed with %d remaining", 4-want, r, want)
		}
	}
	_, r := gcra(tat, now, it)
	if r.Allowed || r.RetryAfter != 100*time.Millisecond || r.Reset != 500*time.Millisecond {
		t.Fatalf("over the burst: %+v", r)
	}
	// Half an interval later, still refused, for half an interval more.
	_, r = gcra(tat, now+int64(50*time.Millisecond), it)
	if r.Allowed || r.RetryAfter != 50*time.Millisecond {
		t.Fatalf("half an interval later: %+v", r)
	}
	// One interval later, exactly one more, with none remaining.
	tat, r = gcra(tat, now+int64(100*time.Millisecond), it)
	if !r.Allowed || r.Remaining != 0 {
		t.Fatalf("one interval later: %+v", r)
	}
	// After a long pause the key is full again.
	_, r = gcra(tat, now+int64(time.Hour), it)
	if !r.Allowed || r.Remaining != 4 || r.Reset != 100*time.Millisecond {
		t.Fatalf("after a pause: %+v", r)
	}
	// No burst: one at a time.
	one := item("k", Limit{Requests: 1, Per: time.Second})
	tat, r = gcra(0, now, one)
	if !r.Allowed || r.Remaining != 0 {
		t.Fatalf("burst 0: %+v", r)
	}
	if _, r = gcra(tat, now, one); r.Allowed {
		t.Fatal("burst 0 admitted two at once")
	}
}

func TestMemoryStoreSemantics(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	s := NewMemoryStore(MemoryOptions{Clock: clock})
	ctx := context.Background()
	fast := Limit{Requests: 100, Per: time.Second, Burst: 9} // 10 at once
	slow := Limit{Requests: 3, Per: time.Minute, Burst: 2}   // 3 at once, tighter
	items := []Item{item("fast", fast), item("slow", slow)}
	res := make([]Result, 2)

	admitted := 0
	for range 10 {
		if ok, _ := s.Admit(ctx, items, res); ok {
			admitted++
		}
	}
	if admitted != 3 {
		t.Fatalf("admitted %d, want 3: the tighter limit wins", admitted)
	}
	if res[1].Allowed || res[0].Allowed != true {
		t.Fatalf("last results %+v: the slow limit refuses, the fast one would admit", res)
	}
	// A refused request consumes nothing: the fast key alone still has 7.
	n := 0
	for {
		ok, _ := s.Admit(ctx, items[:1], res)
		if !ok {
			break
		}
		n++
	}
	if n != 7 {
		t.Fatalf("fast key admitted %d after the refusals, want 7 (refusals must not consume)", n)
	}
	// Sweep drops keys whose TAT has passed.
	if left := s.Sweep(); left != 2 {
		t.Fatalf("%d keys before they are due, want 2", left)
	}
	clock.Advance(2 * time.Minute)
	if left := s.Sweep(); left != 0 {
		t.Fatalf("%d keys left after sweeping, want 0", left)
	}
}

func TestBindKeys(t *testing.T) {
	p := &Policy{Name: "gold", Limits: []Limit{{Requests: 100, Per: time.Second, Burst: 20}, {Requests: 100000, Per: 24 * time.Hour}}}
	b := Bind(p, ScopeSubscription, "mobile:petstore")
	if len(b.Items) != 2 || b.Items[0].Key != "tg:{sub:mobile:petstore}:gold:0" || b.Items[1].Key != "tg:{sub:mobile:petstore}:gold:1" {
		t.Fatalf("items %+v", b.Items)
	}
	if b.Items[0].Interval != 10*time.Millisecond || b.Items[0].Tolerance != 200*time.Millisecond {
		t.Fatalf("GCRA parameters %+v", b.Items[0])
	}
	if hashTag(b.Items[1].Key) != "sub:mobile:petstore" || hashTag("plain") != "plain" || hashTag("a{}b") != "a{}b" {
		t.Fatal("hash tags")
	}
}

// gcraAllows is the most admissions GCRA allows one key within a period
// of length elapsed, the first and the last included. Admissions at
// t1 ≤ … ≤ tk each found the TAT at most τ ahead, and every admission
// moves the TAT on by T, so t1 + (k−1)·T − tk ≤ τ, i.e.
// k ≤ 1 + (τ + elapsed)/T.
func gcraAllows(l Limit, elapsed time.Duration) int64 {
	return 1 + int64((l.Tolerance()+elapsed)/l.Interval())
}

// TestGCRAReachesItsBound: a key asked without pause, every millisecond
// over a period, gets exactly gcraAllows, so the bound the store tests
// check against is GCRA's own, not a looser one.
func TestGCRAReachesItsBound(t *testing.T) {
	it := item("k", perSecond) // T = 100ms, burst 4
	for _, elapsed := range []time.Duration{0, 99 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, time.Second} {
		var tat int64
		start := int64(1_000_000_000_000)
		admitted := int64(0)
		for at := time.Duration(0); at <= elapsed; at += time.Millisecond {
			for {
				next, r := gcra(tat, start+int64(at), it)
				if !r.Allowed {
					break
				}
				tat = next
				admitted++
			}
		}
		if want := gcraAllows(perSecond, elapsed); admitted != want {
			t.Errorf("over %v: admitted %d, gcraAllows says %d", elapsed, admitted, want)
		}
	}
}
