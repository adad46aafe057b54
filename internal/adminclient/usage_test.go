package adminclient

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/store"
)

func TestUsageCommand(t *testing.T) {
	server, st := startAPIOver(t)
	run(t, server, "", "apps", "create", "--id", "mobile", "--name", "Mobile")
	now := time.Now().UTC().Truncate(time.Minute)
	if err := st.AddUsage(context.Background(), []store.UsageRow{
		{Minute: now.Unix(), Application: "mobile", API: "petstore", Class: "2xx", Requests: 9, LatencySumUS: 9000},
		{Minute: now.Unix(), Application: "mobile", API: "petstore", Class: "throttled", Requests: 1},
		{Minute: now.Add(-30 * time.Minute).Unix(), Application: "mobile", API: "orders", Class: "5xx", Requests: 2, LatencySumUS: 1000},
	}); err != nil {
		t.Fatal(err)
	}

	out := run(t, server, "", "usage", "--application", "mobile", "--api", "petstore")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1+60+1 || !strings.HasPrefix(lines[0], "START") || !strings.Contains(lines[0], "THROTTLED") {
		t.Fatalf("a header, 60 minutes and the totals:\n%s", out)
	}
	if total := strings.Fields(lines[len(lines)-1]); strings.Join(total, " ") != "TOTAL 10 0 1 0.9" {
		t.Fatalf("totals %q", total)
	}
	if !strings.Contains(strings.Join(strings.Fields(out), " "), now.Format(time.RFC3339)+" 10 0 1 0.9 ") {
		t.Fatalf("no row for this minute:\n%s", out)
	}

	var u struct {
		Step    string `json:"step"`
		Buckets []any  `json:"buckets"`
		Totals  struct {
			Requests, Errors int64
		} `json:"totals"`
	}
	if err := json.Unmarshal([]byte(run(t, server, "", "--json", "usage", "--app", "mobile", "--since", "2h", "--step", "1h")), &u); err != nil {
		t.Fatal(err)
	}
	if u.Step != "1h" || len(u.Buckets) != 2 || u.Totals.Requests != 12 || u.Totals.Errors != 2 {
		t.Fatalf("--json: %+v", u)
	}

	for _, bad := range [][]string{{"usage", "--since", "soon"}, {"usage", "--since", "-1h"}, {"usage", "extra"}} {
		if _, err := tryRun(server, "", bad...); ExitCode(err) != 2 {
			t.Errorf("admin %v: %v, want a usage error", bad, err)
		}
	}
	if _, err := tryRun(server, "", "usage", "--step", "2m"); err == nil || ExitCode(err) != 1 || !strings.Contains(err.Error(), "400") {
		t.Errorf("a step the API refuses: %v", err)
	}
}
