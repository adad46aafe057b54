package analytics

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestDashboardUsesRealMetrics checks that every metric the Grafana
// dashboard queries is one Tollgate exports, so a renamed metric cannot
// leave an empty panel behind.
func TestDashboardUsesRealMetrics(t *testing.T) {
	data, err := os.ReadFile("../../deploy/grafana/tollgate.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}

	// Give every collector a series, then list what is exported.
	m := NewMetrics()
	m.ObserveDecision(Decision{Frontend: FrontendGRPC, Allowed: true, API: "petstore", Elapsed: time.Millisecond})
	m.ObserveRateLimit("gold", "allowed")
	m.ObserveStore("redis", time.Millisecond, nil)
	m.ObserveFallback(false)
	m.ObserveJWKSRefresh("idp", true)
	m.WatchJWKSAge(func() map[string]time.Time { return map[string]time.Time{"idp": time.Now()} })
	m.observeUpstream("petstore", Upstream{Status: 200, Backend: time.Millisecond, HasTiming: true})
	m.SinkDropped()
	m.SinkWriteFailed(nil)
	m.ObserveRateLimitEvictions(1)
	m.ObservePanic("grpc")
	m.accessLogEntries.WithLabelValues("joined").Inc()
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	m.GRPC.InitializeMetrics(srv)
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range families {
		name := f.GetName()
		exported[name] = true
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			exported[name+suffix] = true
		}
	}

	metric := regexp.MustCompile(`\b(tollgate_[a-z_]+|grpc_server_[a-z_]+|process_[a-z_]+|go_[a-z_]+)\b`)
	queries := 0
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			queries++
			names := metric.FindAllString(target.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q queries no Tollgate metric: %s", p.Title, target.Expr)
			}
			for _, n := range names {
				if !exported[n] {
					t.Errorf("panel %q uses %s, which Tollgate does not export", p.Title, n)
				}
			}
			if strings.Count(target.Expr, "(") != strings.Count(target.Expr, ")") {
				t.Errorf("panel %q: unbalanced parentheses in %s", p.Title, target.Expr)
			}
		}
	}
	if dash.Title != "Tollgate" || queries < 20 {
		t.Fatalf("dashboard %q has %d queries", dash.Title, queries)
	}
}
