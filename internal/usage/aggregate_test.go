package usage

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tollgate/tollgate/internal/analytics"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func req(at time.Time, app, api, class string, latency time.Duration) analytics.Usage {
	return analytics.Usage{At: at, Application: app, API: api, Class: class, Latency: latency}
}

func dropped(m *Metrics, reason string) float64 {
	return testutil.ToFloat64(m.dropped.WithLabelValues(reason))
}

func TestMinuteOf(t *testing.T) {
	for _, tc := range []struct {
		at   time.Time
		want int64
	}{
		{t0, t0.Unix()},
		{t0.Add(59*time.Second + 999*time.Millisecond), t0.Unix()},
		{t0.Add(time.Minute), t0.Unix() + 60},
		{t0.Add(-time.Nanosecond), t0.Unix() - 60},
		{time.Unix(-1, 0), -60},
	} {
		if got := MinuteOf(tc.at); got != tc.want {
			t.Errorf("MinuteOf(%v) = %d, want %d", tc.at, got, tc.want)
		}
	}
}

func TestAggregator(t *testing.T) {
	m := t0.Unix()
	cases := []struct {
		name        string
		maxRows     int
		requests    []analytics.Usage
		want        []Row
		wantDropped float64
		wantRefused float64
	}{
		{
			name: "one row per minute, application, API and class",
			requests: []analytics.Usage{
				req(t0, "mobile", "petstore", analytics.Class2xx, time.Millisecond),
				req(t0.Add(30*time.Second), "mobile", "petstore", analytics.Class2xx, 3*time.Millisecond),
				req(t0.Add(10*time.Second), "mobile", "petstore", analytics.ClassThrottled, 100*time.Microsecond),
				req(t0.Add(time.Minute), "mobile", "petstore", analytics.Class2xx, time.Millisecond),
				req(t0, "", "petstore", analytics.Class4xx, 50*time.Microsecond),
				req(t0, "web", "orders", analytics.Class5xx, 2*time.Second),
			},
			want: []Row{
				{Key{m, "", "petstore", analytics.Class4xx}, Counts{1, 50}},
				{Key{m, "mobile", "petstore", analytics.Class2xx}, Counts{2, 4000}},
				{Key{m, "mobile", "petstore", analytics.ClassThrottled}, Counts{1, 100}},
				{Key{m, "web", "orders", analytics.Class5xx}, Counts{1, 2000000}},
				{Key{m + 60, "mobile", "petstore", analytics.Class2xx}, Counts{1, 1000}},
			},
		},
		{
			name:    "beyond maxRows, new rows are dropped; existing ones still count",
			maxRows: 2,
			requests: []analytics.Usage{
				req(t0, "a", "petstore", analytics.Class2xx, time.Millisecond),
				req(t0, "b", "petstore", analytics.Class2xx, time.Millisecond),
				req(t0, "c", "petstore", analytics.Class2xx, time.Millisecond),
				req(t0, "c", "petstore", analytics.Class2xx, time.Millisecond),
				req(t0, "a", "petstore", analytics.Class2xx, time.Millisecond),
				req(t0.Add(time.Minute), "a", "petstore", analytics.Class2xx, time.Millisecond),
			},
			want: []Row{
				{Key{m, "a", "petstore", analytics.Class2xx}, Counts{2, 2000}},
				{Key{m, "b", "petstore", analytics.Class2xx}, Counts{1, 1000}},
			},
			wantDropped: 3,
		},
		{
			name: "a row the control plane would refuse is dropped",
			requests: []analytics.Usage{
				req(t0, "a", "x", "7xx", 0),
				req(t0, strings.Repeat("a", 257), "x", analytics.Class2xx, 0),
				req(t0, "a", "\xff", analytics.Class2xx, 0),
				req(t0, "a", "x", analytics.Class2xx, 0),
			},
			want:        []Row{{Key{m, "a", "x", analytics.Class2xx}, Counts{1, 0}}},
			wantRefused: 3,
		},
		{
			name:     "a negative latency counts as none",
			requests: []analytics.Usage{req(t0, "a", "x", analytics.Class2xx, -time.Second)},
			want:     []Row{{Key{m, "a", "x", analytics.Class2xx}, Counts{1, 0}}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			metrics := NewMetrics(prometheus.NewRegistry())
			a := NewAggregator(AggregatorOptions{MaxRows: tc.maxRows, Metrics: metrics})
			for _, u := range tc.requests {
				a.Add(u)
			}
			if got := a.Take(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("rows\n got %+v\nwant %+v", got, tc.want)
			}
			if got := dropped(metrics, DroppedMaxRows); got != tc.wantDropped {
				t.Fatalf("dropped %v, want %v", got, tc.wantDropped)
			}
			if got := dropped(metrics, DroppedRefused); got != tc.wantRefused {
				t.Fatalf("refused %v, want %v", got, tc.wantRefused)
			}
			if got := a.Take(); len(got) != 0 {
				t.Fatalf("a second Take: %+v, want nothing", got)
			}
			// Room again once taken.
			a.Add(req(t0, "z", "petstore", analytics.Class2xx, 0))
			if got := a.Take(); len(got) != 1 {
				t.Fatalf("after a Take: %+v, want the new row", got)
			}
		})
	}
}

// RecordUsage only queues: with nothing reading, a full queue drops and
// counts; Run then adds what was queued, and at its end what is left.
func TestAggregatorQueue(t *testing.T) {
	metrics := NewMetrics(prometheus.NewRegistry())
	a := NewAggregator(AggregatorOptions{Buffer: 3, Metrics: metrics})
	for range 5 {
		a.RecordUsage(req(t0, "mobile", "petstore", analytics.Class2xx, time.Millisecond))
	}
	if got := dropped(metrics, DroppedQueueFull); got != 2 {
		t.Fatalf("queue_full %v, want 2", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a.Run(ctx) // stopped before it starts: adds the queue and returns
	a.Wait()
	rows := a.Take()
	if len(rows) != 1 || rows[0].Requests != 3 {
		t.Fatalf("rows %+v, want the three queued", rows)
	}

	b := NewAggregator(AggregatorOptions{Metrics: metrics})
	ctx, cancel = context.WithCancel(context.Background())
	go b.Run(ctx)
	for range 100 {
		b.RecordUsage(req(t0, "mobile", "petstore", analytics.Class2xx, time.Millisecond))
	}
	deadline := time.Now().Add(5 * time.Second)
	var total uint64
	for total < 100 && time.Now().Before(deadline) {
		for _, r := range b.Take() {
			total += r.Requests
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	b.Wait()
	if total != 100 {
		t.Fatalf("%d requests added, want 100", total)
	}
}

func TestMerge(t *testing.T) {
	k := Key{t0.Unix(), "a", "x", analytics.Class2xx}
	got := Merge([]Row{
		{Key{t0.Unix() + 60, "a", "x", analytics.Class2xx}, Counts{1, 1}},
		{k, Counts{2, 20}},
		{k, Counts{3, 30}},
	})
	want := []Row{{k, Counts{5, 50}}, {Key{t0.Unix() + 60, "a", "x", analytics.Class2xx}, Counts{1, 1}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("merged %+v, want %+v", got, want)
	}
}
