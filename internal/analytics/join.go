package analytics

import (
	"context"
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
	Sink       *Sink // nil: no events, only the upstream metrics
	Metrics    *Metrics
	Window     time.Duration // how long an allowed decision waits for its access log; default 10s
	MaxPending int           // bound on decisions waiting; default 65536
	Buffer     int           // bound on queued decisions and entries; default 8192
}

// Joiner matches decisions with Envoy's access-log entries by request id.
// One goroutine (Run) owns the map of decisions waiting for their entry;
// the request path and the access-log stream only queue work for it, and
// drop (and count) when the queue is full. Entries without a waiting
// decision are counted, never kept, so unknown ids cannot grow memory.
type Joiner struct {
	o         JoinOptions
	decisions chan *Event
	entries   chan Upstream
	// alsSeen is set once an access-log stream connects: until then
	// allowed decisions go straight to the sink instead of waiting.
	alsSeen atomic.Bool

	pending      map[string]*Event
	queue        []pendingID // in arrival order, so in deadline order
	pendingGauge atomic.Int64
	done         chan struct{}
}

type pendingID struct {
	id       string
	event    *Event
	deadline time.Time
}

// NewJoiner returns a joiner; Run must be started.
func NewJoiner(o JoinOptions) *Joiner {
	if o.Window <= 0 {
		o.Window = 10 * time.Second
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 1 << 16
	}
	if o.Buffer <= 0 {
		o.Buffer = 8192
	}
	return &Joiner{o: o, decisions: make(chan *Event, o.Buffer), entries: make(chan Upstream, o.Buffer),
		pending: map[string]*Event{}, done: make(chan struct{})}
}

// Wants reports whether decisions are needed at all: for events, or to
// join with access logs. When not, no event is even built.
func (j *Joiner) Wants() bool { return j.o.Sink != nil || j.alsSeen.Load() }

// Decided queues a decision's event. Denials, and allows that cannot be
// joined, go to the sink at once; the others wait for their access log.
func (j *Joiner) Decided(e *Event) {
	if e.Decision != "allow" || e.RequestID == "" || !j.alsSeen.Load() {
		if j.o.Sink != nil {
			j.o.Sink.Emit(e)
		}
		return
	}
	select {
	case j.decisions <- e:
	default:
		j.o.Metrics.analyticsDropped.WithLabelValues("join_queue_full").Inc()
		if j.o.Sink != nil {
			j.o.Sink.Emit(e)
		}
	}
}

// AccessLog queues an access-log entry.
func (j *Joiner) AccessLog(u Upstream) {
	j.alsSeen.Store(true)
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
			j.add(e)
		case u := <-j.entries:
			j.join(u)
		case now := <-tick.C:
			j.expire(now)
		}
		j.pendingGauge.Store(int64(len(j.pending)))
	}
}

func (j *Joiner) add(e *Event) {
	if len(j.pending) >= j.o.MaxPending {
		j.evictOldest()
	}
	if old := j.pending[e.RequestID]; old != nil { // a retried request id: keep the latest
		j.emit(old, nil)
	}
	j.pending[e.RequestID] = e
	j.queue = append(j.queue, pendingID{id: e.RequestID, event: e, deadline: time.Now().Add(j.o.Window)})
}

func (j *Joiner) join(u Upstream) {
	e := j.pending[u.RequestID]
	if e == nil {
		j.o.Metrics.accessLogEntries.WithLabelValues("unmatched").Inc()
		return
	}
	delete(j.pending, u.RequestID)
	j.o.Metrics.accessLogEntries.WithLabelValues("joined").Inc()
	j.o.Metrics.observeUpstream(e.API, u)
	j.emit(e, &u)
}

// expire emits, without upstream data, the decisions whose window has
// passed, and drops queue entries of decisions already joined.
func (j *Joiner) expire(now time.Time) {
	n := 0
	for n < len(j.queue) && !j.queue[n].deadline.After(now) {
		p := j.queue[n]
		if j.pending[p.id] == p.event {
			delete(j.pending, p.id)
			j.emit(p.event, nil)
		}
		n++
	}
	if n > 0 {
		j.queue = append(j.queue[:0], j.queue[n:]...)
	}
}

func (j *Joiner) evictOldest() {
	for len(j.queue) > 0 {
		p := j.queue[0]
		j.queue = j.queue[1:]
		if j.pending[p.id] == p.event {
			delete(j.pending, p.id)
			j.o.Metrics.analyticsDropped.WithLabelValues("join_full").Inc()
			j.emit(p.event, nil)
			return
		}
	}
}

func (j *Joiner) emit(e *Event, u *Upstream) {
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
