package analytics

import (
	"context"
	"slices"
	"sync/atomic"
	"time"
)

// Upstream is what Envoy's access log says about a request after the
// upstream answered.
type Upstream struct {
	RequestID string
	Status    int
	Backend   time.Duration // upstream processing: first byte sent to last byte received
	Total     time.Duration // until the last byte went to the client
	HasTiming bool
}

// JoinOptions configure a Joiner.
type JoinOptions struct {
	Sink *Sink // nil: no events, only the upstream metrics
	// Usage, if set, is told of every request once it is final, beside
	// the sink (usage reported to a control plane).
	Usage           UsageRecorder
	Metrics         *Metrics
	Window          time.Duration // how long an allowed decision waits for its access log; default 10s
	MaxPending      int           // bound on decisions waiting; default 65536
	MaxPendingBytes int           // bound on their estimated size (strings plus a fixed overhead); default 16 MiB
	Buffer          int           // bound on queued decisions and entries; default 8192
}

// Joiner matches decisions with Envoy's access-log entries by request id.
// One goroutine (Run) owns the map of decisions waiting for their entry;
// the request path and the access-log stream only queue work for it, and
// drop (and count) when the queue is full. Entries without a waiting
// decision are counted, never kept, so unknown ids cannot grow memory.
// The waiting decisions are bounded by number and by estimated bytes; to
// stay within both, the oldest go out early, without upstream data.
type Joiner struct {
	o         JoinOptions
	decisions chan *Event
	entries   chan Upstream
	// streams counts connected access-log streams: while there is none,
	// no entry can come, so allowed decisions go straight to the sink
	// instead of waiting.
	streams atomic.Int64

	// Owned by Run.
	pending      map[string]*waiting
	pendingBytes int
	queue        []*waiting // in arrival order, so in deadline order
	pendingGauge atomic.Int64
	done         chan struct{}
}

// waiting is a decision waiting for its access log. Once it is taken out
// of pending, event is nil, and the queue's reference to it is stale.
type waiting struct {
	event    *Event
	size     int
	deadline time.Time
}

// pendingOverhead estimates what a waiting decision costs besides its
// strings: the Event, its waiting record, map entry and queue slot.
const pendingOverhead = 512

// pendingSize estimates the memory a waiting event holds.
func pendingSize(e *Event) int {
	return pendingOverhead + len(e.RequestID) + len(e.Frontend) + len(e.API) + len(e.APIVersion) +
		len(e.Operation) + len(e.Method) + len(e.Host) + len(e.Path) + len(e.Application) + len(e.Subject) +
		len(e.CredentialType) + len(e.KeyID) + len(e.ClientIP) + len(e.UserAgent) + len(e.Decision) + len(e.Code)
}

// NewJoiner returns a joiner; Run must be started.
func NewJoiner(o JoinOptions) *Joiner {
	if o.Window <= 0 {
		o.Window = 10 * time.Second
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 1 << 16
	}
	if o.MaxPendingBytes <= 0 {
		o.MaxPendingBytes = 16 << 20
	}
	if o.Buffer <= 0 {
		o.Buffer = 8192
	}
	return &Joiner{o: o, decisions: make(chan *Event, o.Buffer), entries: make(chan Upstream, o.Buffer),
		pending: map[string]*waiting{}, done: make(chan struct{})}
}

// Wants reports whether decisions are needed as events: for the sink,
// or to join with access logs. When not, no event is even built (usage
// takes decisions as they are: see Recorder.ObserveDecision).
func (j *Joiner) Wants() bool { return j.o.Sink != nil || j.streams.Load() > 0 }

// streamConnected and streamClosed bracket an access-log stream.
func (j *Joiner) streamConnected() {
	j.streams.Add(1)
	j.o.Metrics.accessLogStreams.Inc()
}

func (j *Joiner) streamClosed() {
	j.streams.Add(-1)
	j.o.Metrics.accessLogStreams.Dec()
}

// Decided queues a decision's event. Denials, and allows that cannot be
// joined, are final at once; the others wait for their access log.
func (j *Joiner) Decided(e *Event) {
	if e.Decision != "allow" || e.RequestID == "" || j.streams.Load() == 0 {
		j.emit(e, nil)
		return
	}
	select {
	case j.decisions <- e:
	default:
		j.o.Metrics.analyticsDropped.WithLabelValues("join_queue_full").Inc()
		j.emit(e, nil)
	}
}

// AccessLog queues an access-log entry.
func (j *Joiner) AccessLog(u Upstream) {
	select {
	case j.entries <- u:
	default:
		j.o.Metrics.accessLogEntries.WithLabelValues("dropped").Inc()
	}
}

// Pending returns how many decisions wait for their access log (for
// tests; only meaningful from the Run goroutine's point of view).
func (j *Joiner) Pending() int { return int(j.pendingGauge.Load()) }

// Wait returns once Run has returned.
func (j *Joiner) Wait() { <-j.done }

// Run joins until ctx is done; then the decisions still waiting go to the
// sink without upstream data.
func (j *Joiner) Run(ctx context.Context) {
	defer close(j.done)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			j.expire(time.Now().Add(j.o.Window)) // flush everything still waiting
			return
		case e := <-j.decisions:
			j.add(e, time.Now())
		case u := <-j.entries:
			j.join(u)
		case now := <-tick.C:
			j.expire(now)
		}
		j.pendingGauge.Store(int64(len(j.pending)))
	}
}

// add makes e wait for its access log until now plus the window, making
// room first by emitting the oldest waiting decisions early.
func (j *Joiner) add(e *Event, now time.Time) {
	if old := j.pending[e.RequestID]; old != nil { // a retried request id: keep the latest
		j.emit(j.take(old), nil)
	}
	size := pendingSize(e)
	if size > j.o.MaxPendingBytes { // cannot wait at all
		j.o.Metrics.analyticsDropped.WithLabelValues("join_full").Inc()
		j.emit(e, nil)
		return
	}
	for len(j.pending) >= j.o.MaxPending || j.pendingBytes+size > j.o.MaxPendingBytes {
		if !j.evictOldest() {
			break
		}
	}
	w := &waiting{event: e, size: size, deadline: now.Add(j.o.Window)}
	j.pending[e.RequestID] = w
	j.pendingBytes += size
	j.queue = append(j.queue, w)
	// Joined decisions leave stale records in the queue until their
	// deadline; dropping them once they outnumber the live ones keeps the
	// queue within twice the pending bound whatever the request rate.
	if len(j.queue) > 2*len(j.pending)+64 {
		j.queue = slices.DeleteFunc(j.queue, func(w *waiting) bool { return w.event == nil })
	}
}

// take removes w from the pending decisions and returns its event.
func (j *Joiner) take(w *waiting) *Event {
	e := w.event
	delete(j.pending, e.RequestID)
	j.pendingBytes -= w.size
	w.event = nil
	return e
}

func (j *Joiner) join(u Upstream) {
	w := j.pending[u.RequestID]
	if w == nil {
		j.o.Metrics.accessLogEntries.WithLabelValues("unmatched").Inc()
		return
	}
	e := j.take(w)
	j.o.Metrics.accessLogEntries.WithLabelValues("joined").Inc()
	j.o.Metrics.observeUpstream(e.API, u)
	j.emit(e, &u)
}

// expire emits, without upstream data, the decisions whose window has
// passed, and drops queue records of decisions already taken.
func (j *Joiner) expire(now time.Time) {
	n := 0
	for n < len(j.queue) && !j.queue[n].deadline.After(now) {
		if w := j.queue[n]; w.event != nil {
			j.emit(j.take(w), nil)
		}
		n++
	}
	j.queue = slices.Delete(j.queue, 0, n)
}

// evictOldest emits the oldest waiting decision without upstream data,
// and reports false if none was waiting.
func (j *Joiner) evictOldest() bool {
	for len(j.queue) > 0 {
		w := j.queue[0]
		j.queue[0] = nil // the array's head is not reused; do not let it pin w
		j.queue = j.queue[1:]
		if w.event != nil {
			j.o.Metrics.analyticsDropped.WithLabelValues("join_full").Inc()
			j.emit(j.take(w), nil)
			return true
		}
	}
	return false
}

// emit hands a final event, completed with its access-log entry if u is
// set, to usage and to the sink. Both only queue: emit runs on the
// request path for denials.
func (j *Joiner) emit(e *Event, u *Upstream) {
	if j.o.Usage != nil {
		j.o.Usage.RecordUsage(usageOf(e, u))
	}
	if j.o.Sink == nil {
		return
	}
	if u != nil {
		e.UpstreamStatus = u.Status
		if u.HasTiming {
			backend, total := ms(u.Backend), ms(u.Total)
			e.Latency.BackendMS, e.Latency.TotalMS = &backend, &total
		}
	}
	j.o.Sink.Emit(e)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
