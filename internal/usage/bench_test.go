package usage

import (
	"context"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/analytics"
)

// BenchmarkRecordDecision is what usage reporting adds to each decision:
// the decision recorded without usage (metrics only) against the same
// with an aggregator taking it. No events are wanted in either, as on a
// replica without an events file.
func BenchmarkRecordDecision(b *testing.B) {
	d := analytics.Decision{Allowed: true, API: "petstore-v1", Application: "mobile", Elapsed: 40 * time.Microsecond}
	for _, bc := range []struct {
		name  string
		usage bool
	}{{"without usage", false}, {"with usage", true}} {
		b.Run(bc.name, func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			m := analytics.NewMetrics()
			o := analytics.JoinOptions{Metrics: m}
			if bc.usage {
				agg := NewAggregator(AggregatorOptions{})
				go agg.Run(ctx)
				o.Usage = agg
			}
			j := analytics.NewJoiner(o)
			go j.Run(ctx)
			r := analytics.Recorder{Metrics: m, Joiner: j}
			b.ReportAllocs()
			for b.Loop() {
				r.ObserveDecision(d)
			}
		})
	}
}
