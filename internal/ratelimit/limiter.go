package ratelimit

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// Outcome of a Limiter decision.
type Outcome uint8

const (
	Admitted    Outcome = iota
	Refused             // a limit refused the request
	Unavailable         // the store could not answer and failureMode is closed
	FailedOpen          // the store could not answer and failureMode is open: admitted unchecked
)

// FailureMode says what to do when the store cannot answer.
type FailureMode uint8

const (
	FailOpen   FailureMode = iota // admit
	FailClosed                    // refuse with 503
)

// Observer receives the limiter's events. Implementations must not block.
type Observer interface {
	ObserveStore(store string, took time.Duration, err error)
	ObserveFallback(active bool)
}

type nopObserver struct{}

func (nopObserver) ObserveStore(string, time.Duration, error) {}
func (nopObserver) ObserveFallback(bool)                      {}

// pinger is a store that can tell whether it is reachable.
type pinger interface {
	Ping(ctx context.Context) error
}

// LimiterOptions configure a Limiter.
type LimiterOptions struct {
	Store     Store
	StoreName string // for metrics: "memory" or "redis"
	Failure   FailureMode
	// Fallback takes over after FailuresToFallback consecutive store
	// errors, until a probe finds the store again. Nil: no fallback.
	Fallback           *MemoryStore
	FallbackShare      float64 // share of each limit enforced locally meanwhile; default 1
	FailuresToFallback int     // default 3
	ProbeEvery         time.Duration
	Observer           Observer
	Log                *slog.Logger
}

// Limiter applies a store with its failure policy. It never waits longer
// than the store's own timeout: on error it answers at once, by
// failureMode or from the local fallback.
type Limiter struct {
	o          LimiterOptions
	failures   atomic.Int32
	inFallback atomic.Bool
	ctx        context.Context // ends the probe
}

// NewLimiter returns a limiter; ctx bounds its background probe.
func NewLimiter(ctx context.Context, o LimiterOptions) *Limiter {
	if o.FallbackShare <= 0 || o.FallbackShare > 1 {
		o.FallbackShare = 1
	}
	if o.FailuresToFallback <= 0 {
		o.FailuresToFallback = 3
	}
	if o.ProbeEvery <= 0 {
		o.ProbeEvery = 500 * time.Millisecond
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Limiter{o: o, ctx: ctx}
}

// InFallback reports whether the local fallback is in use.
func (l *Limiter) InFallback() bool { return l.inFallback.Load() }

// Admit evaluates items, filling results.
func (l *Limiter) Admit(ctx context.Context, items []Item, results []Result) Outcome {
	if l.inFallback.Load() {
		return l.admitLocally(ctx, items, results)
	}
	start := time.Now()
	allowed, err := l.o.Store.Admit(ctx, items, results)
	l.o.Observer.ObserveStore(l.o.StoreName, time.Since(start), err)
	if err == nil {
		l.failures.Store(0)
		if allowed {
			return Admitted
		}
		return Refused
	}
	if n := l.failures.Add(1); l.o.Fallback != nil && int(n) >= l.o.FailuresToFallback {
		l.startFallback(err)
		return l.admitLocally(ctx, items, results)
	}
	clear(results[:len(items)])
	if l.o.Failure == FailClosed {
		return Unavailable
	}
	return FailedOpen
}

// admitLocally applies the fallback store, each limit scaled to this
// replica's share: share×requests per period, share×burst (a longer
// emission interval over the same tolerance time).
func (l *Limiter) admitLocally(ctx context.Context, items []Item, results []Result) Outcome {
	scaled := items
	if l.o.FallbackShare != 1 {
		var buf [16]Item
		scaled = append(buf[:0], items...)
		for i := range scaled {
			scaled[i].Interval = time.Duration(float64(scaled[i].Interval) / l.o.FallbackShare)
		}
	}
	if ok, _ := l.o.Fallback.Admit(ctx, scaled, results); ok {
		return Admitted
	}
	return Refused
}

// startFallback switches to the local store and probes the real one until
// it answers again.
func (l *Limiter) startFallback(cause error) {
	if !l.inFallback.CompareAndSwap(false, true) {
		return
	}
	l.o.Log.Warn("rate-limit store unreachable; limiting locally until it answers",
		"store", l.o.StoreName, "error", cause.Error(), "share", l.o.FallbackShare)
	l.o.Observer.ObserveFallback(true)
	p, ok := l.o.Store.(pinger)
	if !ok {
		return
	}
	go func() {
		t := time.NewTicker(l.o.ProbeEvery)
		defer t.Stop()
		for {
			select {
			case <-l.ctx.Done():
				return
			case <-t.C:
				if err := p.Ping(l.ctx); err != nil {
					continue
				}
				l.failures.Store(0)
				l.inFallback.Store(false)
				l.o.Observer.ObserveFallback(false)
				l.o.Log.Info("rate-limit store answers again", "store", l.o.StoreName)
				return
			}
		}
	}()
}
