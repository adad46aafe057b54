package admin

import (
	"context"
	"encoding/json"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/store"
)

// addUsage stores rows as a replica's report would.
func addUsage(t *testing.T, a *testAPI, rows ...store.UsageRow) {
	t.Helper()
	if err := a.st.AddUsage(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
}

// driveUsage is the usage part of the document's flow: alice reads her
// application's usage, bob cannot, publishers read anyone's.
func driveUsage(t *testing.T, a *testAPI) {
	now := time.Now().UTC().Truncate(time.Minute)
	addUsage(t, a, store.UsageRow{Minute: now.Unix(), Application: "alice-app", API: "petstore", Class: "2xx", Requests: 3, LatencySumUS: 3000})
	a.must(t, 200, aliceToken, "GET", "/api/v1/usage?application=alice-app", nil)
	a.must(t, 200, aliceToken, "GET", "/api/v1/usage?application=alice-app&api=petstore&from="+url.QueryEscape(now.Add(-24*time.Hour).Format(time.RFC3339))+"&step=1h", nil)
	a.must(t, 404, bobToken, "GET", "/api/v1/usage?application=alice-app", nil)
	a.must(t, 400, aliceToken, "GET", "/api/v1/usage", nil)
	a.must(t, 200, publisherToken, "GET", "/api/v1/usage?api=petstore&step=5m", nil)
	a.must(t, 200, adminToken, "GET", "/api/v1/usage?to="+url.QueryEscape(now.Format(time.RFC3339))+"&step=1d", nil)
	a.must(t, 400, adminToken, "GET", "/api/v1/usage?step=2m", nil)
	a.must(t, 401, "", "GET", "/api/v1/usage", nil)
}

type usageJSON struct {
	From, To, Step, Application, API string
	Buckets                          []struct {
		Start                       string
		Requests, Errors, Throttled int64
		LatencyAvgMs                float64
	}
	Totals struct {
		Requests, Errors, Throttled int64
		LatencyAvgMs                float64
	}
}

// Every bucket is there, zeros included; errors are 4xx and 5xx,
// throttled apart; the filters select; developers see only their own.
func TestUsageRoute(t *testing.T) {
	backendsOf(t, func(t *testing.T, a *testAPI) {
		seed(t, a)
		a.must(t, 201, bobToken, "POST", "/api/v1/applications", map[string]any{"id": "bob-app"})
		t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
		m := func(min int) int64 { return t0.Add(time.Duration(min) * time.Minute).Unix() }
		addUsage(t, a,
			store.UsageRow{Minute: m(0), Application: "alice-app", API: "petstore", Class: "2xx", Requests: 8, LatencySumUS: 16000},
			store.UsageRow{Minute: m(0), Application: "alice-app", API: "petstore", Class: "4xx", Requests: 1, LatencySumUS: 500},
			store.UsageRow{Minute: m(0), Application: "alice-app", API: "petstore", Class: "throttled", Requests: 2, LatencySumUS: 100},
			store.UsageRow{Minute: m(2), Application: "alice-app", API: "petstore", Class: "5xx", Requests: 1, LatencySumUS: 30000},
			store.UsageRow{Minute: m(2), Application: "alice-app", API: "orders", Class: "3xx", Requests: 4, LatencySumUS: 4000},
			store.UsageRow{Minute: m(1), Application: "bob-app", API: "petstore", Class: "2xx", Requests: 100, LatencySumUS: 100},
			store.UsageRow{Minute: m(1), Application: "", API: "petstore", Class: "4xx", Requests: 7, LatencySumUS: 70},
		)
		get := func(token, query string) usageJSON {
			t.Helper()
			var u usageJSON
			if err := json.Unmarshal(a.must(t, 200, token, "GET", "/api/v1/usage?"+query, nil).body, &u); err != nil {
				t.Fatal(err)
			}
			return u
		}
		window := "&from=2026-12-01T10:00:00Z&to=2026-12-01T10:04:00Z"

		u := get(aliceToken, "application=alice-app&api=petstore"+window)
		if u.From != "2026-12-01T10:00:00Z" || u.To != "2026-12-01T10:04:00Z" || u.Step != "1m" || u.Application != "alice-app" || u.API != "petstore" {
			t.Fatalf("range %+v", u)
		}
		if len(u.Buckets) != 4 {
			t.Fatalf("%d buckets, want 4 (zeros filled)", len(u.Buckets))
		}
		b := u.Buckets
		if b[0].Start != "2026-12-01T10:00:00Z" || b[0].Requests != 11 || b[0].Errors != 1 || b[0].Throttled != 2 || b[0].LatencyAvgMs != 1.509 {
			t.Errorf("minute 0: %+v", b[0])
		}
		if b[1].Start != "2026-12-01T10:01:00Z" || b[1].Requests != 0 || b[1].LatencyAvgMs != 0 {
			t.Errorf("minute 1 (bob's and anonymous requests only): %+v", b[1])
		}
		if b[2].Requests != 1 || b[2].Errors != 1 || b[2].LatencyAvgMs != 30 || b[3].Requests != 0 {
			t.Errorf("minutes 2 and 3: %+v %+v", b[2], b[3])
		}
		if tot := u.Totals; tot.Requests != 12 || tot.Errors != 2 || tot.Throttled != 2 || tot.LatencyAvgMs != 3.883 {
			t.Errorf("totals %+v", tot)
		}

		// Every API of alice's, in one bucket; from and to move to whole steps.
		u = get(aliceToken, "application=alice-app&from=2026-12-01T10:00:30Z&to=2026-12-01T10:03:00.5Z&step=5m")
		if u.From != "2026-12-01T10:00:00Z" || u.To != "2026-12-01T10:05:00Z" || len(u.Buckets) != 1 || u.Totals.Requests != 16 {
			t.Fatalf("5m over alice's APIs: %+v", u)
		}
		// A publisher, everyone's, and only petstore's (the anonymous caller's too).
		if u := get(publisherToken, "step=1h"+window); len(u.Buckets) != 1 || u.Totals.Requests != 123 || u.Application != "" {
			t.Fatalf("everyone's: %+v", u)
		}
		if u := get(adminToken, "api=petstore"+window); u.Totals.Requests != 119 || u.Totals.Errors != 9 {
			t.Fatalf("petstore's: %+v", u.Totals)
		}

		// Developers: their own application only, as if others' did not exist.
		for _, q := range []string{"application=alice-app", "application=nope", "application=alice-app&api=petstore"} {
			if r := a.must(t, 404, bobToken, "GET", "/api/v1/usage?"+q, nil); !strings.Contains(string(r.body), `"notFound"`) {
				t.Fatalf("bob, %s: %s", q, r.body)
			}
		}
		a.must(t, 400, bobToken, "GET", "/api/v1/usage?api=petstore", nil)
		if u := get(bobToken, "application=bob-app"+window); u.Totals.Requests != 100 {
			t.Fatalf("bob's own: %+v", u.Totals)
		}

		// The default range is the hour up to now, by the minute.
		if u := get(adminToken, ""); len(u.Buckets) != 60 || u.Step != "1m" {
			t.Fatalf("default range: %d buckets of %s", len(u.Buckets), u.Step)
		}
	})
}

func TestParseUsageQuery(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 30, 20, 0, time.UTC)
	cases := []struct {
		query        string
		from, to     string // "" when refused
		step         time.Duration
		refusedAbout string
	}{
		{query: "", from: "2026-12-01T09:31:00Z", to: "2026-12-01T10:31:00Z", step: time.Minute},
		{query: "step=1h", from: "2026-12-01T10:00:00Z", to: "2026-12-01T11:00:00Z", step: time.Hour},
		{query: "step=1d", from: "2026-12-01T00:00:00Z", to: "2026-12-02T00:00:00Z", step: 24 * time.Hour},
		{query: "step=15m&from=2026-12-01T08:07:00Z", from: "2026-12-01T08:00:00Z", to: "2026-12-01T10:45:00Z", step: 15 * time.Minute},
		{query: "from=2026-12-01T10:00:00%2B01:00&to=2026-12-01T10:00:00Z", from: "2026-12-01T09:00:00Z", to: "2026-12-01T10:00:00Z", step: time.Minute},
		{query: "from=2026-11-30T10:30:00Z&to=2026-12-01T10:30:00Z", from: "2026-11-30T10:30:00Z", to: "2026-12-01T10:30:00Z", step: time.Minute},
		{query: "from=2026-11-30T10:29:00Z&to=2026-12-01T10:30:00Z", refusedAbout: "at most 1440"},
		{query: "from=2022-12-01T00:00:00Z&step=1d", refusedAbout: "at most 1440"},
		{query: "step=30s", refusedAbout: "step"},
		{query: "from=yesterday", refusedAbout: "from"},
		{query: "to=2026-12-01", refusedAbout: "to"},
		{query: "from=1969-12-31T23:00:00Z", refusedAbout: "from 1970"},
		{query: "from=2026-12-01T10:00:00Z&to=2026-12-01T10:00:00Z", refusedAbout: "after"},
		{query: "from=2026-12-01T11:00:00Z", refusedAbout: "after"},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			q, _ := url.ParseQuery(tc.query)
			r, err := parseUsageQuery(q, now)
			if tc.refusedAbout != "" {
				if err == nil || !strings.Contains(err.Error(), tc.refusedAbout) {
					t.Fatalf("error %v, want one about %q", err, tc.refusedAbout)
				}
				if e, ok := err.(*Error); !ok || e.Status != 400 || e.Code != CodeInvalid {
					t.Fatalf("error %#v, want a 400 invalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := [3]any{r.from.Format(time.RFC3339), r.to.Format(time.RFC3339), r.step}
			if want := [3]any{tc.from, tc.to, tc.step}; !reflect.DeepEqual(got, want) {
				t.Fatalf("range %v, want %v", got, want)
			}
		})
	}
}

// FuzzUsageQuery: any query string is a range of whole steps within the
// bound, or a 400.
func FuzzUsageQuery(f *testing.F) {
	for _, s := range []string{"", "step=1d&from=2026-01-01T00:00:00Z", "from=2026-12-01T10:00:00.999999999-23:59&to=2026-12-01T10:00:01Z", "step=1h&to=9999-12-31T23:59:59Z"} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 1, 10, 30, 20, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		r, err := parseUsageQuery(q, now)
		if err != nil {
			if e, ok := err.(*Error); !ok || e.Status != 400 {
				t.Fatalf("error %#v, want a 400", err)
			}
			return
		}
		n := r.to.Sub(r.from) / r.step
		if !r.to.After(r.from) || r.from.Unix()%int64(r.step/time.Second) != 0 || r.to.Sub(r.from)%r.step != 0 || n > maxUsageBuckets || r.from.Unix() < 0 {
			t.Fatalf("%q: range %v to %v by %v", raw, r.from, r.to, r.step)
		}
	})
}
