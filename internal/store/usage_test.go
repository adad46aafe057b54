package store

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"
)

func TestUsage(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	m := func(minutes int) int64 { return t0.Add(time.Duration(minutes) * time.Minute).Unix() }
	for name, newStore := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := newStore(t)
			add := func(rows ...UsageRow) {
				t.Helper()
				if err := s.AddUsage(ctx, rows); err != nil {
					t.Fatal(err)
				}
			}
			query := func(q UsageQuery) []UsageBucket {
				t.Helper()
				b, err := s.Usage(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			add(
				UsageRow{m(0), "mobile", "petstore", "2xx", 10, 1000},
				UsageRow{m(0), "mobile", "petstore", "2xx", 5, 500}, // the same key, in one report
				UsageRow{m(0), "mobile", "petstore", "throttled", 2, 20},
				UsageRow{m(1), "mobile", "orders", "5xx", 1, 90000},
				UsageRow{m(7), "", "petstore", "4xx", 3, 30},
			)
			add(UsageRow{m(0), "mobile", "petstore", "2xx", 1, 100}) // a later report adds
			add()

			got := query(UsageQuery{From: t0, To: t0.Add(time.Hour), Step: time.Minute})
			want := []UsageBucket{
				{t0, "2xx", 16, 1600},
				{t0, "throttled", 2, 20},
				{t0.Add(time.Minute), "5xx", 1, 90000},
				{t0.Add(7 * time.Minute), "4xx", 3, 30},
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("per minute\n got %+v\nwant %+v", got, want)
			}
			got = query(UsageQuery{Application: "mobile", From: t0, To: t0.Add(10 * time.Minute), Step: 5 * time.Minute})
			want = []UsageBucket{{t0, "2xx", 16, 1600}, {t0, "5xx", 1, 90000}, {t0, "throttled", 2, 20}}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("mobile in 5m buckets\n got %+v\nwant %+v", got, want)
			}
			got = query(UsageQuery{API: "petstore", From: t0.Add(time.Minute), To: t0.Add(8 * time.Minute), Step: time.Minute})
			want = []UsageBucket{{t0.Add(7 * time.Minute), "4xx", 3, 30}}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("petstore from minute 1\n got %+v\nwant %+v", got, want)
			}
			if got := query(UsageQuery{Application: "mobile", API: "orders", From: t0, To: t0.Add(time.Minute), Step: time.Minute}); len(got) != 0 {
				t.Fatalf("[from, to) holds minute 1: %+v", got)
			}
			for _, bad := range []UsageQuery{
				{From: t0.Add(time.Second), To: t0.Add(time.Hour), Step: time.Minute},
				{From: t0, To: t0, Step: time.Minute},
				{From: t0, To: t0.Add(time.Hour), Step: 90 * time.Second},
			} {
				if _, err := s.Usage(ctx, bad); err == nil {
					t.Errorf("query %+v: no error", bad)
				}
			}

			n, err := s.PurgeUsage(ctx, t0.Add(time.Minute))
			if err != nil || n != 2 {
				t.Fatalf("purge: %d rows, %v; want the 2 of minute 0", n, err)
			}
			if got := query(UsageQuery{From: t0, To: t0.Add(time.Hour), Step: time.Hour}); len(got) != 2 || got[0].Requests != 3 || got[1].Requests != 1 {
				t.Fatalf("after the purge: %+v", got)
			}
		})
	}
}

// Control planes adding to the same rows at once, as several do on one
// PostgreSQL database: every addition counts, and none deadlocks.
func TestUsageConcurrentAdds(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for name, newStore := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := newStore(t)
			var rows []UsageRow
			for i := range 1200 { // more than one INSERT's worth
				rows = append(rows, UsageRow{t0.Unix() + int64(i%20)*60, fmt.Sprintf("app-%d", i%30), "petstore", "2xx", 1, 10})
			}
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for w := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// Each writer in its own order: the store sorts.
					mine := append([]UsageRow(nil), rows...)
					for i := range mine {
						j := (i*7 + w*13) % len(mine)
						mine[i], mine[j] = mine[j], mine[i]
					}
					errs <- s.AddUsage(ctx, mine)
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.Usage(ctx, UsageQuery{From: t0, To: t0.Add(time.Hour), Step: time.Hour})
			if err != nil || len(got) != 1 || got[0].Requests != 8*1200 || got[0].LatencySumUS != 8*1200*10 {
				t.Fatalf("total %+v, %v; want %d requests", got, err, 8*1200)
			}
		})
	}
}
