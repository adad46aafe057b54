package analytics

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// lines is a concurrency-safe writer that records JSON lines.
type lines struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lines) events(t *testing.T) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(l.buf.String()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not a JSON line: %q", sc.Text())
		}
		out = append(out, m)
	}
	return out
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type pipeline struct {
	m      *Metrics
	out    *lines
	joiner *Joiner
	cancel func()
}

func newPipeline(t *testing.T, o JoinOptions) *pipeline {
	p := &pipeline{m: NewMetrics(), out: &lines{}}
	sink := NewSink(p.out, 1024, p.m.SinkDropped)
	o.Sink, o.Metrics = sink, p.m
	p.joiner = NewJoiner(o)
	ctx, cancel := context.WithCancel(context.Background())
	sinkCtx, stopSink := context.WithCancel(context.Background())
	go p.joiner.Run(ctx)
	go sink.Run(sinkCtx)
	p.cancel = func() { cancel(); p.joiner.Wait(); stopSink(); sink.Wait() }
	t.Cleanup(p.cancel)
	return p
}

func event(id, decision string) *Event {
	code := AllowCode
	if decision == "deny" {
		code = "900901"
	}
	return &Event{Timestamp: time.Now(), RequestID: id, API: "petstore", Method: "GET", Path: "/pets",
		Decision: decision, Code: code, Latency: Latency{EnforcerMS: 0.05}}
}

func TestJoin(t *testing.T) {
	p := newPipeline(t, JoinOptions{Window: time.Hour})
	j := p.joiner

	// Before any access-log stream, allows are written at once.
	j.Decided(event("early", "allow"))
	waitUntil(t, "the early event", func() bool { return len(p.out.events(t)) == 1 })

	j.streamConnected()
	j.AccessLog(Upstream{RequestID: "nobody"})
	waitUntil(t, "the unmatched entry", func() bool {
		return testutil.ToFloat64(p.m.accessLogEntries.WithLabelValues("unmatched")) == 1
	})
	j.Decided(event("r1", "allow"))
	j.Decided(event("r2", "deny")) // denials never wait
	waitUntil(t, "the denial", func() bool { return len(p.out.events(t)) == 2 })
	waitUntil(t, "r1 to wait", func() bool { return j.Pending() == 1 })

	j.AccessLog(Upstream{RequestID: "r1", Status: 503, Backend: 12 * time.Millisecond, Total: 15 * time.Millisecond, HasTiming: true})
	waitUntil(t, "the joined event", func() bool { return len(p.out.events(t)) == 3 })
	joined := p.out.events(t)[2]
	lat := joined["latency"].(map[string]any)
	if joined["request_id"] != "r1" || joined["upstream_status"] != 503.0 || lat["backend_ms"] != 12.0 || lat["total_ms"] != 15.0 || lat["enforcer_ms"] != 0.05 {
		t.Fatalf("joined event %v", joined)
	}
	if got := testutil.ToFloat64(p.m.upstreamRequests.WithLabelValues("petstore", "5xx")); got != 1 {
		t.Fatalf("upstream 5xx count %v", got)
	}
	if got := testutil.CollectAndCount(p.m.upstreamDuration); got != 1 {
		t.Fatalf("upstream duration series %d", got)
	}
}

func TestJoinExpiresAndBounds(t *testing.T) {
	p := newPipeline(t, JoinOptions{Window: 50 * time.Millisecond, MaxPending: 3})
	j := p.joiner
	j.streamConnected()

	// An allowed decision whose access log never comes is written after the window.
	j.Decided(event("lonely", "allow"))
	waitUntil(t, "the expired event", func() bool { return len(p.out.events(t)) == 1 })
	if e := p.out.events(t)[0]; e["upstream_status"] != nil {
		t.Fatalf("expired event has upstream data: %v", e)
	}

	// A burst of entries for unknown requests keeps nothing.
	for i := range 10000 {
		j.AccessLog(Upstream{RequestID: "unknown-" + string(rune('a'+i%26)) + time.Now().String()})
	}
	waitUntil(t, "the burst to be counted", func() bool {
		return testutil.ToFloat64(p.m.accessLogEntries.WithLabelValues("unmatched"))+
			testutil.ToFloat64(p.m.accessLogEntries.WithLabelValues("dropped")) >= 10000
	})
	if j.Pending() != 0 {
		t.Fatalf("%d entries kept for unknown ids", j.Pending())
	}

	// More waiting decisions than the bound: the oldest goes out early.
	pp := newPipeline(t, JoinOptions{Window: time.Hour, MaxPending: 3})
	pp.joiner.streamConnected()
	for _, id := range []string{"a", "b", "c", "d"} {
		pp.joiner.Decided(event(id, "allow"))
	}
	waitUntil(t, "the eviction", func() bool { return len(pp.out.events(t)) == 1 })
	if pp.out.events(t)[0]["request_id"] != "a" || pp.joiner.Pending() != 3 {
		t.Fatalf("evicted %v, pending %d", pp.out.events(t)[0]["request_id"], pp.joiner.Pending())
	}
	if testutil.ToFloat64(pp.m.analyticsDropped.WithLabelValues("join_full")) != 1 {
		t.Fatal("eviction not counted")
	}
}

// drain empties ch and returns the request ids it held.
func drain(ch chan *Event) []string {
	var ids []string
	for len(ch) > 0 {
		ids = append(ids, (<-ch).RequestID)
	}
	return ids
}

// TestJoinWaitsOnlyWhileAStreamIsConnected follows the count of connected
// access-log streams: with none, no access log can come, so allowed
// decisions go straight to the sink.
func TestJoinWaitsOnlyWhileAStreamIsConnected(t *testing.T) {
	m := NewMetrics()
	sink := NewSink(io.Discard, 16, m.SinkDropped) // not run: its queue is read here
	j := NewJoiner(JoinOptions{Sink: sink, Metrics: m})
	noChange := func() {}
	steps := []struct {
		name        string
		change      func()
		wantWaiting bool
		wantStreams float64
	}{
		{"before any stream", noChange, false, 0},
		{"one stream", j.streamConnected, true, 1},
		{"two streams", j.streamConnected, true, 2},
		{"one of two closed", j.streamClosed, true, 1},
		{"all closed", j.streamClosed, false, 0},
		{"reconnected", j.streamConnected, true, 1},
	}
	for _, step := range steps {
		step.change()
		j.Decided(event(step.name, "allow"))
		waiting, written := drain(j.decisions), drain(sink.events)
		if step.wantWaiting && (len(waiting) != 1 || len(written) != 0) {
			t.Errorf("%s: waiting %v, written %v; want it to wait", step.name, waiting, written)
		}
		if !step.wantWaiting && (len(waiting) != 0 || len(written) != 1) {
			t.Errorf("%s: waiting %v, written %v; want it written", step.name, waiting, written)
		}
		if got := testutil.ToFloat64(m.accessLogStreams); got != step.wantStreams {
			t.Errorf("%s: streams gauge %v, want %v", step.name, got, step.wantStreams)
		}
		if !j.Wants() {
			t.Errorf("%s: a joiner with a sink must want decisions", step.name)
		}
	}

	// Without a sink, decisions are wanted only to join them.
	bare := NewJoiner(JoinOptions{Metrics: m})
	if bare.Wants() {
		t.Error("no sink and no stream, yet decisions are wanted")
	}
	bare.streamConnected()
	if !bare.Wants() {
		t.Error("a stream is connected, yet decisions are not wanted")
	}
}

// TestJoinBoundsPendingBytes drives the Run goroutine's side directly:
// the estimated size of waiting decisions stays within MaxPendingBytes,
// the oldest going out early (without upstream data) to make room.
func TestJoinBoundsPendingBytes(t *testing.T) {
	m := NewMetrics()
	sink := NewSink(io.Discard, 64, m.SinkDropped) // not run: its queue is read here
	unit := pendingSize(event("a", "allow"))
	j := NewJoiner(JoinOptions{Sink: sink, Metrics: m, MaxPendingBytes: 3 * unit, Window: time.Hour})
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	sized := func(id string, size int) *Event { // an event of about size bytes
		e := event(id, "allow")
		e.UserAgent = strings.Repeat("u", size-pendingSize(e))
		return e
	}
	steps := []struct {
		name        string
		add         *Event
		wantEvicted []string
		wantPending int
	}{
		{"fits", event("a", "allow"), nil, 1},
		{"fits too", event("b", "allow"), nil, 2},
		{"fills the budget", event("c", "allow"), nil, 3},
		{"one over", event("d", "allow"), []string{"a"}, 3},
		{"twice the size", sized("e", 2*unit), []string{"b", "c"}, 2},
		{"the whole budget", sized("f", 3*unit), []string{"d", "e"}, 1},
		{"larger than the budget", sized("g", 3*unit+1), []string{"g"}, 1},
	}
	evictions := 0
	for _, step := range steps {
		j.add(step.add, now)
		evicted := drain(sink.events)
		evictions += len(evicted)
		if !slices.Equal(evicted, step.wantEvicted) || len(j.pending) != step.wantPending {
			t.Errorf("%s: evicted %v, pending %d; want %v, %d", step.name, evicted, len(j.pending), step.wantEvicted, step.wantPending)
		}
		if j.pendingBytes > j.o.MaxPendingBytes {
			t.Errorf("%s: %d bytes pending, budget %d", step.name, j.pendingBytes, j.o.MaxPendingBytes)
		}
	}
	if got := testutil.ToFloat64(m.analyticsDropped.WithLabelValues("join_full")); got != float64(evictions) {
		t.Errorf("join_full %v, want %d", got, evictions)
	}

	// Joining and expiring give the bytes back.
	j.join(Upstream{RequestID: "f", Status: 200})
	if j.pendingBytes != 0 || len(j.pending) != 0 {
		t.Errorf("after the join: %d bytes in %d decisions pending", j.pendingBytes, len(j.pending))
	}
	j.add(event("h", "allow"), now)
	j.expire(now.Add(time.Hour))
	if j.pendingBytes != 0 || len(j.pending) != 0 || len(j.queue) != 0 {
		t.Errorf("after expiry: %d bytes, %d pending, %d queued", j.pendingBytes, len(j.pending), len(j.queue))
	}
}

// TestJoinQueueStaysBounded: decisions joined before their deadline leave
// stale queue records behind, which must not pile up with the request rate.
func TestJoinQueueStaysBounded(t *testing.T) {
	m := NewMetrics()
	j := NewJoiner(JoinOptions{Metrics: m, Window: time.Hour})
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	j.add(event("never-joined", "allow"), now)
	for i := range 10000 {
		id := fmt.Sprintf("r%d", i)
		j.add(event(id, "allow"), now)
		j.join(Upstream{RequestID: id})
	}
	if len(j.pending) != 1 || len(j.queue) > 2*len(j.pending)+64 {
		t.Fatalf("%d pending, %d queue records", len(j.pending), len(j.queue))
	}
	if got := testutil.ToFloat64(m.accessLogEntries.WithLabelValues("joined")); got != 10000 {
		t.Fatalf("joined %v", got)
	}
}

// flaky is a writer whose first failures writes fail.
type flaky struct {
	failures int
	lines
}

func (f *flaky) Write(p []byte) (int, error) {
	f.mu.Lock()
	fail := f.failures > 0
	f.failures--
	f.mu.Unlock()
	if fail {
		return 0, errors.New("disk full")
	}
	return f.lines.Write(p)
}

func TestSinkCountsWriteErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := NewMetrics()
		out := &flaky{failures: 1}
		sink := NewSinkWithOptions(out, SinkOptions{Buffer: 16, Dropped: m.SinkDropped, WriteFailed: m.SinkWriteFailed})
		ctx, cancel := context.WithCancel(context.Background())
		go sink.Run(ctx)
		defer func() { cancel(); sink.Wait() }()

		sink.Emit(event("lost", "deny"))
		synctest.Wait() // written and flushed: the flush failed
		if got := testutil.ToFloat64(m.writeErrors); got != 1 {
			t.Fatalf("write errors %v, want 1", got)
		}
		// The output recovered: writing resumes.
		sink.Emit(event("kept", "deny"))
		synctest.Wait()
		events := out.events(t)
		if len(events) != 1 || events[0]["request_id"] != "kept" {
			t.Fatalf("written after the failure: %v", events)
		}
		if got := testutil.ToFloat64(m.writeErrors); got != 1 {
			t.Fatalf("write errors %v after recovering, want 1", got)
		}
	})
}

// stalled is a writer that blocks until released.
type stalled struct{ release chan struct{} }

func (s stalled) Write(p []byte) (int, error) { <-s.release; return len(p), nil }

func TestSinkNeverBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := NewMetrics()
		w := stalled{release: make(chan struct{})}
		sink := NewSink(w, 16, m.SinkDropped)
		ctx, cancel := context.WithCancel(context.Background())
		go sink.Run(ctx)

		sink.Emit(event("first", "deny"))
		synctest.Wait() // the sink is stuck flushing it
		// Were Emit to block, the bubble would deadlock and fail the test.
		for i := range 1000 {
			sink.Emit(event(fmt.Sprint(i), "deny"))
		}
		if dropped := testutil.ToFloat64(m.analyticsDropped.WithLabelValues("sink_full")); dropped != 1000-16 {
			t.Fatalf("dropped %v of 1000 with a stalled writer and room for 16", dropped)
		}
		close(w.release)
		cancel()
		sink.Wait()
	})
}

// TestEventSchema pins the JSON field names: they may be added to, never
// renamed.
func TestEventSchema(t *testing.T) {
	backend, total := 1.5, 2.5
	e := Event{Timestamp: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), RequestID: "r", Frontend: "grpc", API: "a",
		APIVersion: "v1", Operation: "/x", Method: "GET", Host: "h", Path: "/x", Application: "app", Subject: "s",
		CredentialType: "apiKey", KeyID: "k3y1d0000042", ClientIP: "10.0.0.1", UserAgent: "ua", Decision: "allow", Code: "200",
		UpstreamStatus: 200, Latency: Latency{EnforcerMS: 0.1, BackendMS: &backend, TotalMS: &total}}
	data, _ := json.Marshal(e)
	want := `{"timestamp":"2026-11-25T12:00:00Z","request_id":"r","frontend":"grpc","api":"a","api_version":"v1",` +
		`"operation":"/x","method":"GET","host":"h","path":"/x","application":"app","subject":"s","credential_type":"apiKey",` +
		`"key_id":"k3y1d0000042",` +
		`"client_ip":"10.0.0.1","user_agent":"ua","decision":"allow","code":"200","upstream_status":200,` +
		`"latency":{"enforcer_ms":0.1,"backend_ms":1.5,"total_ms":2.5}}`
	if string(data) != want {
		t.Fatalf("schema changed:\n got %s\nwant %s", data, want)
	}
}

var _ io.Writer = (*lines)(nil)
