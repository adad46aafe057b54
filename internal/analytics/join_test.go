package analytics

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
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

	j.AccessLog(Upstream{RequestID: "nobody"}) // a stream is connected now
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
	j.AccessLog(Upstream{RequestID: "x"})
	waitUntil(t, "the stream", func() bool { return j.Wants() })

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
			testutil.ToFloat64(p.m.accessLogEntries.WithLabelValues("dropped")) >= 10001
	})
	if j.Pending() != 0 {
		t.Fatalf("%d entries kept for unknown ids", j.Pending())
	}

	// More waiting decisions than the bound: the oldest goes out early.
	pp := newPipeline(t, JoinOptions{Window: time.Hour, MaxPending: 3})
	pp.joiner.AccessLog(Upstream{RequestID: "x"})
	waitUntil(t, "the stream", func() bool { return pp.joiner.Wants() })
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

// stalled is a writer that blocks until released.
type stalled struct{ release chan struct{} }

func (s stalled) Write(p []byte) (int, error) { <-s.release; return len(p), nil }

func TestSinkNeverBlocks(t *testing.T) {
	m := NewMetrics()
	w := stalled{release: make(chan struct{})}
	sink := NewSink(w, 16, m.SinkDropped)
	ctx, cancel := context.WithCancel(context.Background())
	go sink.Run(ctx)

	done := make(chan struct{})
	go func() {
		for i := range 1000 {
			sink.Emit(event(string(rune(i)), "deny"))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Emit blocked behind a stalled writer")
	}
	dropped := testutil.ToFloat64(m.analyticsDropped.WithLabelValues("sink_full"))
	if dropped < 1000-16-1-64 { // the buffer, the one being written, bufio's share
		t.Fatalf("dropped %v of 1000 with a stalled writer", dropped)
	}
	close(w.release)
	cancel()
	sink.Wait()
}

// TestEventSchema pins the JSON field names: they may be added to, never
// renamed.
func TestEventSchema(t *testing.T) {
	backend, total := 1.5, 2.5
	e := Event{Timestamp: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), RequestID: "r", Frontend: "grpc", API: "a",
		APIVersion: "v1", Operation: "/x", Method: "GET", Host: "h", Path: "/x", Application: "app", Subject: "s",
		CredentialType: "jwt", ClientIP: "10.0.0.1", UserAgent: "ua", Decision: "allow", Code: "200", UpstreamStatus: 200,
		Latency: Latency{EnforcerMS: 0.1, BackendMS: &backend, TotalMS: &total}}
	data, _ := json.Marshal(e)
	want := `{"timestamp":"2026-11-25T12:00:00Z","request_id":"r","frontend":"grpc","api":"a","api_version":"v1",` +
		`"operation":"/x","method":"GET","host":"h","path":"/x","application":"app","subject":"s","credential_type":"jwt",` +
		`"client_ip":"10.0.0.1","user_agent":"ua","decision":"allow","code":"200","upstream_status":200,` +
		`"latency":{"enforcer_ms":0.1,"backend_ms":1.5,"total_ms":2.5}}`
	if string(data) != want {
		t.Fatalf("schema changed:\n got %s\nwant %s", data, want)
	}
}

var _ io.Writer = (*lines)(nil)
