package controlplane

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/analytics"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/server"
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

// runReplica runs an enforcer in process on cfg and returns its HTTP
// front end's address.
func runReplica(t *testing.T, cfg string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "replica.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addrs := make(chan [2]string, 8)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Options{ConfigPath: path, Listening: func(role, addr string) { addrs <- [2]string{role, addr} }})
	}()
	t.Cleanup(func() { cancel(); <-done })
	for {
		select {
		case a := <-addrs:
			if a[0] == "http" {
				return a[1]
			}
		case err := <-done:
			t.Fatalf("replica stopped: %v", err)
		case <-time.After(20 * time.Second):
			t.Fatal("the replica did not listen")
		}
	}
}

// A replica reports what it decided to its control plane, which answers
// it at GET /api/v1/usage: the caller's application and API, 2xx and
// throttled apart, unidentified callers under no application.
func TestReplicaUsageReachesTheAdminAPI(t *testing.T) {
	xds, api, _ := startStorePlane(t, config.StoreSource{SQLite: filepath.Join(t.TempDir(), "tollgate.db")})
	call(t, api, "POST", "/api/v1/policies", map[string]any{"name": "tiny", "limits": []any{map[string]any{"requests": 1, "per": "60s"}}}, 201)
	call(t, api, "POST", "/api/v1/apis", map[string]any{"id": "petstore", "basePath": "/petstore", "security": []string{"apiKey"},
		"operations": []any{map[string]any{"path": "/pets", "methods": []string{"GET"}}}}, 201)
	call(t, api, "PATCH", "/api/v1/apis/petstore", map[string]any{"state": "published"}, 200)
	call(t, api, "POST", "/api/v1/applications", map[string]any{"id": "mobile", "name": "Mobile"}, 201)
	call(t, api, "POST", "/api/v1/subscriptions", map[string]any{"application": "mobile", "api": "petstore", "tier": "tiny"}, 201)
	key, _ := call(t, api, "POST", "/api/v1/applications/mobile/keys", map[string]any{"name": "ci"}, 201)["key"].(string)

	front := runReplica(t, fmt.Sprintf("listen: {grpc: \"127.0.0.1:0\", http: \"127.0.0.1:0\", admin: \"127.0.0.1:0\"}\n"+
		"controlPlane: {address: %q, node: r1, stateDir: %q, usage: {interval: 100ms}}\n", xds, t.TempDir()))
	status := func(withKey bool) int {
		req, _ := http.NewRequest("GET", "http://"+front+"/petstore/pets", nil)
		if withKey {
			req.Header.Set("apikey", key)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		res.Body.Close()
		return res.StatusCode
	}
	// Until the API and the key arrive, the request is unmatched (404) or
	// the key unknown (401), with no application; the first answer after
	// that is the one request the tier allows.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := status(true)
		if got == 200 {
			break
		}
		if got != 404 && got != 401 && got != 0 || time.Now().After(deadline) {
			t.Fatalf("the key: %d, want 200 within 10s", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := status(true); got != 429 {
		t.Fatalf("the second request: %d, want 429", got)
	}
	if got := status(false); got != 401 {
		t.Fatalf("no key: %d, want 401", got)
	}

	type totals struct{ Requests, Errors, Throttled float64 }
	read := func(query string) totals {
		u := call(t, api, "GET", "/api/v1/usage?"+query, nil, 200)
		tot, _ := u["totals"].(map[string]any)
		num := func(k string) float64 { f, _ := tot[k].(float64); return f }
		return totals{num("requests"), num("errors"), num("throttled")}
	}
	deadline = time.Now().Add(10 * time.Second)
	for read("application=mobile&api=petstore") != (totals{Requests: 2, Throttled: 1}) {
		if time.Now().After(deadline) {
			t.Fatalf("mobile's usage %+v, want 2 requests, 1 throttled, within 10s", read("application=mobile&api=petstore"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for all := read("api=petstore"); all.Errors < 1 || all.Requests != all.Errors+2; all = read("api=petstore") {
		if time.Now().After(deadline) {
			t.Fatalf("petstore's usage %+v: the unidentified 401s are missing", all)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
