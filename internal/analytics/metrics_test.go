package analytics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tollgate/tollgate/internal/authz"
	"github.com/tollgate/tollgate/internal/catalog"
)

func TestObserveDecision(t *testing.T) {
	m := NewMetrics()
	api := &catalog.API{ID: "petstore"}
	m.ObserveDecision(&authz.Request{Frontend: authz.FrontendGRPC}, &authz.Decision{Allowed: true, API: api}, time.Millisecond)
	m.ObserveDecision(&authz.Request{Frontend: authz.FrontendHTTP}, &authz.Decision{Denial: authz.Denial{Status: 404, Code: "404"}}, time.Millisecond)
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
