package usage

import (
	"context"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/tollgate/tollgate/internal/analytics"
)

// Defaults of a replica's usage (controlPlane.usage).
const (
	DefaultMaxRows = 10000
	defaultBuffer  = 8192
)

// AggregatorOptions configure an Aggregator.
type AggregatorOptions struct {
	// MaxRows bounds the distinct rows held until the next report
	// (default DefaultMaxRows): requests that would need a new row
	// beyond it are dropped and counted.
	MaxRows int
	// Buffer bounds the requests queued for the aggregator's goroutine
	// (default 8192); beyond it they are dropped and counted.
	Buffer  int
	Metrics *Metrics // nil: counted nowhere
}

// Aggregator adds requests up into rows. RecordUsage only queues: it is
// called on the request path. Run adds the queue into the rows, and Take
// hands them to the reporter.
type Aggregator struct {
	in      chan analytics.Usage
	maxRows int
	metrics *Metrics
	done    chan struct{}

	mu      sync.Mutex // between Run and Take; never on the request path
	pending batch
}

// NewAggregator returns an aggregator; Run must be started.
func NewAggregator(o AggregatorOptions) *Aggregator {
	if o.MaxRows <= 0 {
		o.MaxRows = DefaultMaxRows
	}
	if o.Buffer <= 0 {
		o.Buffer = defaultBuffer
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	return &Aggregator{in: make(chan analytics.Usage, o.Buffer), maxRows: o.MaxRows, metrics: o.Metrics,
		done: make(chan struct{}), pending: batch{}}
}

// RecordUsage implements analytics.UsageRecorder: it queues u, or drops
// and counts it when the queue is full.
func (a *Aggregator) RecordUsage(u analytics.Usage) {
	select {
	case a.in <- u:
	default:
		a.metrics.drop(DroppedQueueFull, 1)
	}
}

// Run adds queued requests into rows until ctx is done, then adds what
// is still queued and returns.
func (a *Aggregator) Run(ctx context.Context) {
	defer close(a.done)
	for {
		select {
		case u := <-a.in:
			a.Add(u)
		case <-ctx.Done():
			for {
				select {
				case u := <-a.in:
					a.Add(u)
				default:
					return
				}
			}
		}
	}
}

// Wait returns once Run has returned.
func (a *Aggregator) Wait() { <-a.done }

// Add adds one request to its row at once (Run calls it for each queued
// request; tests call it directly). A new row takes copies of the ids,
// so that it keeps nothing else alive.
func (a *Aggregator) Add(u analytics.Usage) {
	k := Key{Minute: MinuteOf(u.At), Application: u.Application, API: u.API, Class: u.Class}
	c := Counts{Requests: 1, LatencySumUS: uint64(max(u.Latency.Microseconds(), 0))}
	a.mu.Lock()
	have, found := a.pending[k]
	if !found {
		switch {
		case !validKey(k):
			// The control plane would refuse the whole report for it.
			a.mu.Unlock()
			a.metrics.drop(DroppedRefused, 1)
			return
		case len(a.pending) >= a.maxRows:
			a.mu.Unlock()
			a.metrics.drop(DroppedMaxRows, 1)
			return
		}
		k.Application, k.API = strings.Clone(k.Application), strings.Clone(k.API)
	}
	a.pending[k] = Counts{Requests: have.Requests + c.Requests, LatencySumUS: have.LatencySumUS + c.LatencySumUS}
	a.mu.Unlock()
}

// validKey reports whether a row is one a control plane takes: ids are
// config ids or cut to 256 bytes by the pipeline, so this never fails
// unless something upstream of usage changed.
func validKey(k Key) bool {
	_, class := classes[k.Class]
	return class && len(k.Application) <= maxIDBytes && len(k.API) <= maxIDBytes &&
		utf8.ValidString(k.Application) && utf8.ValidString(k.API)
}

// Take returns the rows added since the last Take, in key order, and
// starts afresh.
func (a *Aggregator) Take() []Row {
	a.mu.Lock()
	b := a.pending
	a.pending = batch{}
	a.mu.Unlock()
	return b.rows()
}
