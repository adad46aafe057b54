package usage

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tollgate/tollgate/internal/analytics"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// fakeSender answers reports with err, or keeps them.
type fakeSender struct {
	mu      sync.Mutex
	err     error
	reports []*tollgatev1.UsageReport
}

func (f *fakeSender) Report(_ context.Context, in *tollgatev1.UsageReport, _ ...grpc.CallOption) (*tollgatev1.UsageReportAck, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	f.reports = append(f.reports, in)
	return &tollgatev1.UsageReportAck{Rows: uint32(len(in.GetRows()))}, nil
}

func (f *fakeSender) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// requests are the requests reported, by application.
func (f *fakeSender) requests() map[string]uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]uint64{}
	for _, r := range f.reports {
		for _, row := range r.GetRows() {
			out[row.GetApplication()] += row.GetRequests()
		}
	}
	return out
}

func TestReporterRetries(t *testing.T) {
	metrics := NewMetrics(prometheus.NewRegistry())
	agg := NewAggregator(AggregatorOptions{Metrics: metrics})
	sender := &fakeSender{}
	r := NewReporter(ReporterOptions{Source: agg, Sender: sender, Node: "r1", MaxRetryRows: 3, Metrics: metrics})
	ctx := context.Background()
	add := func(app string, n int) {
		for range n {
			agg.Add(req(t0, app, "petstore", analytics.Class2xx, time.Millisecond))
		}
	}

	// The control plane is away: rows wait, merged with what follows.
	sender.fail(status.Error(codes.Unavailable, "away"))
	add("a", 2)
	add("b", 1)
	if err := r.Flush(ctx); err == nil {
		t.Fatal("a failed report: no error")
	}
	add("a", 3)
	add("c", 1)
	add("d", 4) // a fourth row: no room in the retry buffer
	_ = r.Flush(ctx)
	if r.Pending() != 3 {
		t.Fatalf("%d rows waiting, want 3 (the bound)", r.Pending())
	}
	if got := dropped(metrics, DroppedRetryFull); got != 4 {
		t.Fatalf("retry_full %v, want the 4 requests of d", got)
	}
	if got := testutil.ToFloat64(metrics.reports.WithLabelValues("failure")); got != 2 {
		t.Fatalf("failed reports %v, want 2", got)
	}

	// Back: everything that waited goes, once.
	sender.fail(nil)
	add("a", 1)
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := sender.requests(), map[string]uint64{"a": 6, "b": 1, "c": 1}; !equalCounts(got, want) {
		t.Fatalf("reported %v, want %v", got, want)
	}
	if r.Pending() != 0 {
		t.Fatalf("%d rows still waiting", r.Pending())
	}
	if node := sender.reports[0].GetNode(); node != "r1" {
		t.Fatalf("node %q", node)
	}

	// A refused report is not sent again.
	sender.fail(status.Error(codes.InvalidArgument, "no"))
	add("e", 2)
	_ = r.Flush(ctx)
	if r.Pending() != 0 || dropped(metrics, DroppedRefused) != 2 {
		t.Fatalf("after a refusal: %d waiting, %v refused", r.Pending(), dropped(metrics, DroppedRefused))
	}
}

// More rows than a report holds travel in several, oldest first.
func TestReporterSplitsReports(t *testing.T) {
	agg := NewAggregator(AggregatorOptions{MaxRows: 3 * MaxReportRows})
	for i := range MaxReportRows + 5 {
		agg.Add(req(t0.Add(time.Duration(i)*time.Minute), "a", "x", analytics.Class2xx, 0))
	}
	sender := &fakeSender{}
	r := NewReporter(ReporterOptions{Source: agg, Sender: sender, MaxRetryRows: 3 * MaxReportRows})
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(sender.reports) != 2 || len(sender.reports[0].GetRows()) != MaxReportRows || len(sender.reports[1].GetRows()) != 5 {
		t.Fatalf("%d reports", len(sender.reports))
	}
	if first := sender.reports[0].GetRows()[0].GetMinute(); first != t0.Unix() {
		t.Fatalf("the first report starts at minute %d, want the oldest", first)
	}
}

// Run reports every interval, and once more as it stops.
func TestReporterRun(t *testing.T) {
	agg := NewAggregator(AggregatorOptions{})
	sender := &fakeSender{}
	r := NewReporter(ReporterOptions{Source: agg, Sender: sender, Interval: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	agg.Add(req(t0, "a", "x", analytics.Class2xx, 0))
	deadline := time.Now().Add(5 * time.Second)
	for sender.requests()["a"] != 1 {
		if time.Now().After(deadline) {
			t.Fatal("no report within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	agg.Add(req(t0, "b", "x", analytics.Class2xx, 0))
	cancel()
	<-done
	if got := sender.requests()["b"]; got != 1 {
		t.Fatalf("the last report: b %d, want 1", got)
	}

	// Stopping while the control plane is away: what is left is counted.
	metrics := NewMetrics(prometheus.NewRegistry())
	sender.fail(errors.New("away"))
	r = NewReporter(ReporterOptions{Source: agg, Sender: sender, Interval: time.Hour, FinalTimeout: time.Second, Metrics: metrics})
	agg.Add(req(t0, "c", "x", analytics.Class2xx, 0))
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	r.Run(ctx)
	if got := dropped(metrics, DroppedShutdown); got != 1 {
		t.Fatalf("shutdown drops %v, want 1", got)
	}
}

func equalCounts(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
