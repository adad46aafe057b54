package controlplane

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/analytics"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/store"
	"github.com/tollgate/tollgate/internal/usage"
	"github.com/tollgate/tollgate/internal/xdssource"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// reporterTo is a replica's aggregator and reporter, connected to a
// control plane's xDS address as a replica connects.
func reporterTo(t *testing.T, xds string) (*usage.Aggregator, *usage.Reporter) {
	t.Helper()
	conn, err := xdssource.Dial(xds, xdssource.TLS{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	agg := usage.NewAggregator(usage.AggregatorOptions{})
	return agg, usage.NewReporter(usage.ReporterOptions{Source: agg, Sender: usage.NewClient(conn), Node: "r1"})
}

// A store control plane keeps what replicas report, adding reports up.
func TestUsageReportsReachTheStore(t *testing.T) {
	db := filepath.Join(t.TempDir(), "tollgate.db")
	xds, _, _ := startStorePlane(t, config.StoreSource{SQLite: db})
	agg, reporter := reporterTo(t, xds)
	now := time.Now()
	for range 3 {
		agg.Add(analytics.Usage{At: now, Application: "mobile", API: "petstore", Class: analytics.Class2xx, Latency: 2 * time.Millisecond})
	}
	agg.Add(analytics.Usage{At: now, Application: "mobile", API: "petstore", Class: analytics.ClassThrottled})
	ctx := context.Background()
	if err := reporter.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	agg.Add(analytics.Usage{At: now, Application: "mobile", API: "petstore", Class: analytics.Class2xx, Latency: 4 * time.Millisecond})
	if err := reporter.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	st, err := store.Open(ctx, store.Options{SQLite: db, PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	minute := now.Truncate(time.Minute)
	got, err := st.Usage(ctx, store.UsageQuery{Application: "mobile", From: minute, To: minute.Add(time.Minute), Step: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	want := []store.UsageBucket{
		{Start: minute.UTC(), Class: analytics.Class2xx, Requests: 4, LatencySumUS: 10000},
		{Start: minute.UTC(), Class: analytics.ClassThrottled, Requests: 1},
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("stored %+v, want %+v", got, want)
	}
}

// A file source has nowhere to keep usage: reports are accepted, so
// that replicas do not keep them to send again, and dropped.
func TestUsageReportsToAFileSource(t *testing.T) {
	p := startPlane(t, "apis: []\n", 0)
	agg, reporter := reporterTo(t, p.xds)
	agg.Add(analytics.Usage{At: time.Now(), Application: "mobile", API: "petstore", Class: analytics.Class2xx})
	if err := reporter.Flush(context.Background()); err != nil || reporter.Pending() != 0 {
		t.Fatalf("report to a file source: %v, %d rows pending", err, reporter.Pending())
	}
	// And a bad one is refused as by any control plane.
	conn, err := xdssource.Dial(p.xds, xdssource.TLS{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := usage.NewClient(conn).Report(context.Background(), &tollgatev1.UsageReport{
		Rows: []*tollgatev1.UsageRow{{Minute: 61, Class: tollgatev1.StatusClass_STATUS_CLASS_2XX, Requests: 1}}}); err == nil {
		t.Fatal("an unaligned minute was accepted")
	}
}

// The purge deletes what is older than the retention, at start and then
// every interval.
func TestUsagePurge(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(ctx, store.Options{SQLite: filepath.Join(t.TempDir(), "t.db"), PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	add := func(age time.Duration) {
		if err := st.AddUsage(ctx, []store.UsageRow{{Minute: now.Add(-age).Unix(), Application: "a", API: "x", Class: "2xx", Requests: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int64 {
		b, err := st.Usage(ctx, store.UsageQuery{From: now.Add(-48 * time.Hour), To: now.Add(time.Minute), Step: 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, x := range b {
			n += x.Requests
		}
		return n
	}
	add(25 * time.Hour)
	add(time.Hour)
	done := make(chan struct{})
	go func() {
		defer close(done)
		purgeUsage(ctx, st, 24*time.Hour, 10*time.Millisecond, func() time.Time { return now }, slog.New(slog.DiscardHandler))
	}()
	waitCount := func(want int64, what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for count() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d requests left, want %d", what, count(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitCount(1, "at start")
	add(30 * time.Hour) // arrives late, from a replica that was away
	waitCount(1, "at a later round")
	cancel()
	<-done
}
