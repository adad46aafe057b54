package analytics

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestObserveDecision(t *testing.T) {
	m := NewMetrics()
	m.ObserveDecision(Decision{Frontend: FrontendGRPC, Allowed: true, API: "petstore", Elapsed: time.Millisecond})
	m.ObserveDecision(Decision{Frontend: FrontendHTTP, Code: "404", Elapsed: time.Millisecond})
	m.ObserveReload(false)

	cases := []struct {
		labels []string
		want   float64
	}{
		{[]string{"petstore", "allow", AllowCode}, 1},
		{[]string{"", "deny", "404"}, 1},
	}
	for _, tc := range cases {
		if got := testutil.ToFloat64(m.decisions.WithLabelValues(tc.labels...)); got != tc.want {
			t.Errorf("decisions%v = %v, want %v", tc.labels, got, tc.want)
		}
	}
	if got := testutil.ToFloat64(m.reloads.WithLabelValues("failure")); got != 1 {
		t.Errorf("reload failures = %v", got)
	}
	if got := testutil.CollectAndCount(m.duration); got != 2 {
		t.Errorf("duration series = %d, want one per front end", got)
	}
	// Every metric family the registry exposes passes the linter.
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestHardeningMetrics(t *testing.T) {
	cases := []struct {
		name    string
		observe func(*Metrics)
		metric  func(*Metrics) prometheus.Collector
		want    float64
	}{
		{"panic on gRPC", func(m *Metrics) { m.ObservePanic("grpc") },
			func(m *Metrics) prometheus.Collector { return m.panics.WithLabelValues("grpc") }, 1},
		{"panic on HTTP", func(m *Metrics) { m.ObservePanic("http"); m.ObservePanic("http") },
			func(m *Metrics) prometheus.Collector { return m.panics.WithLabelValues("http") }, 2},
		{"panic on an unknown front end", func(m *Metrics) { m.ObservePanic("websocket") },
			func(m *Metrics) prometheus.Collector { return m.panics.WithLabelValues("other") }, 1},
		{"evictions", func(m *Metrics) {
			m.ObserveRateLimitEvictions(3)
			m.ObserveRateLimitEvictions(0)
			m.ObserveRateLimitEvictions(-1) // ignored: a counter cannot go down
		}, func(m *Metrics) prometheus.Collector { return m.evictions }, 3},
		{"write errors", func(m *Metrics) { m.SinkWriteFailed(errors.New("disk full")) },
			func(m *Metrics) prometheus.Collector { return m.writeErrors }, 1},
	}
	for _, tc := range cases {
		m := NewMetrics()
		tc.observe(m)
		if got := testutil.ToFloat64(tc.metric(m)); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}

	// Both front ends' panic series exist from the start, for alerts.
	if got := testutil.CollectAndCount(NewMetrics().panics); got != 2 {
		t.Errorf("panic series before any panic: %d, want 2", got)
	}
}
