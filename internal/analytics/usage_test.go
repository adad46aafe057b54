package analytics

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestUsageOf(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 30, 0, time.UTC)
	decided := func(allowed bool, status int) *Event {
		d := Decision{API: "petstore", Application: "mobile", Allowed: allowed, Status: status, Elapsed: 250 * time.Microsecond}
		if !allowed {
			d.Code = "900901"
		}
		return eventOf(d, at)
	}
	timed := func(status int) *Upstream {
		return &Upstream{Status: status, Backend: 20 * time.Millisecond, Total: 25 * time.Millisecond, HasTiming: true}
	}
	cases := []struct {
		name    string
		e       *Event
		u       *Upstream
		class   string
		latency time.Duration
	}{
		{"allowed, no access log", decided(true, 0), nil, Class2xx, 250 * time.Microsecond},
		{"upstream 200", decided(true, 0), timed(200), Class2xx, 25 * time.Millisecond},
		{"upstream 101 upgrade", decided(true, 0), timed(101), Class2xx, 25 * time.Millisecond},
		{"upstream 304", decided(true, 0), timed(304), Class3xx, 25 * time.Millisecond},
		{"upstream 404", decided(true, 0), timed(404), Class4xx, 25 * time.Millisecond},
		{"upstream 429 is the upstream's, not throttled", decided(true, 0), timed(429), Class4xx, 25 * time.Millisecond},
		{"upstream 503", decided(true, 0), timed(503), Class5xx, 25 * time.Millisecond},
		{"no upstream answer", decided(true, 0), &Upstream{Status: 0}, Class5xx, 250 * time.Microsecond},
		{"denied 401", decided(false, 401), nil, Class4xx, 250 * time.Microsecond},
		{"denied 403", decided(false, 403), nil, Class4xx, 250 * time.Microsecond},
		{"denied 429: throttled", decided(false, 429), nil, ClassThrottled, 250 * time.Microsecond},
		{"denied 503", decided(false, 503), nil, Class5xx, 250 * time.Microsecond},
		{"denied, status unknown", decided(false, 0), nil, Class4xx, 250 * time.Microsecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.u == nil {
				// Final at once, without an event: the same usage.
				d := Decision{API: "petstore", Application: "mobile", Allowed: tc.e.Decision == "allow", Status: tc.e.status, Elapsed: 250 * time.Microsecond}
				if got, want := usageOfDecision(d, at), (Usage{At: at, API: "petstore", Application: "mobile", Class: tc.class, Latency: tc.latency}); got != want {
					t.Fatalf("from the decision: %+v, want %+v", got, want)
				}
			}
			got := usageOf(tc.e, tc.u)
			want := Usage{At: at, API: "petstore", Application: "mobile", Class: tc.class, Latency: tc.latency}
			if got != want {
				t.Fatalf("usage %+v, want %+v", got, want)
			}
		})
	}
}

// usageLog records what a Joiner reports as usage.
type usageLog struct {
	mu   sync.Mutex
	seen []Usage
}

func (l *usageLog) RecordUsage(u Usage) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen = append(l.seen, u)
}

func (l *usageLog) all() []Usage {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Usage(nil), l.seen...)
}

// Usage gets every request once it is final, with or without a sink:
// denials and unjoinable allows at once (without an event when none is
// wanted), joined allows with the upstream's status and total latency,
// expired ones without.
func TestJoinerReportsUsage(t *testing.T) {
	log := &usageLog{}
	m := NewMetrics()
	j := NewJoiner(JoinOptions{Usage: log, Metrics: m, Window: 500 * time.Millisecond})
	if j.Wants() {
		t.Fatal("a joiner with usage, no sink and no access log wants events: usage needs none")
	}
	ctx, cancel := context.WithCancel(context.Background())
	go j.Run(ctx)
	t.Cleanup(func() { cancel(); j.Wait() })

	r := Recorder{Metrics: m, Joiner: j}
	r.ObserveDecision(Decision{API: "petstore", Application: "mobile", Allowed: true, RequestID: "a", Elapsed: time.Millisecond})
	r.ObserveDecision(Decision{API: "petstore", Application: "mobile", Code: "900803", Status: 429, RequestID: "b", Elapsed: time.Millisecond})
	waitUntil(t, "the first two", func() bool { return len(log.all()) == 2 })

	j.streamConnected()
	r.ObserveDecision(Decision{API: "petstore", Application: "mobile", Allowed: true, RequestID: "joined", Elapsed: time.Millisecond})
	r.ObserveDecision(Decision{API: "petstore", Allowed: true, RequestID: "expires", Elapsed: time.Millisecond})
	waitUntil(t, "two waiting", func() bool { return j.Pending() == 2 })
	j.AccessLog(Upstream{RequestID: "joined", Status: 502, Total: 40 * time.Millisecond, HasTiming: true})
	waitUntil(t, "all four", func() bool { return len(log.all()) == 4 })

	got := log.all()
	want := []struct {
		app, class string
		latency    time.Duration
	}{
		{"mobile", Class2xx, time.Millisecond},
		{"mobile", ClassThrottled, time.Millisecond},
		{"mobile", Class5xx, 40 * time.Millisecond},
		{"", Class2xx, time.Millisecond},
	}
	for i, w := range want {
		if u := got[i]; u.Application != w.app || u.Class != w.class || u.Latency != w.latency || u.API != "petstore" || u.At.IsZero() {
			t.Errorf("usage %d: %+v, want %+v", i, u, w)
		}
	}
}

// discardUsage takes usage as an aggregator does, into a channel.
type discardUsage chan Usage

func (d discardUsage) RecordUsage(u Usage) {
	select {
	case d <- u:
	default:
	}
}

// Usage without events (no sink, no access-log stream) builds nothing
// per decision: recording one allocates no more than the metrics do.
func TestUsageWithoutEventsAllocatesNothing(t *testing.T) {
	m := NewMetrics()
	r := Recorder{Metrics: m, Joiner: NewJoiner(JoinOptions{Usage: make(discardUsage, 1), Metrics: m})}
	d := Decision{Frontend: FrontendGRPC, API: "petstore", Application: "mobile", Allowed: true, Elapsed: time.Millisecond}
	metricsOnly := testing.AllocsPerRun(1000, func() { m.ObserveDecision(d) })
	if got := testing.AllocsPerRun(1000, func() { r.ObserveDecision(d) }); got > metricsOnly {
		t.Fatalf("%v allocations a decision with usage, %v without", got, metricsOnly)
	}
}
