package usage

import "github.com/prometheus/client_golang/prometheus"

// Why requests were left out of usage: the values of the reason label.
const (
	// DroppedQueueFull: the aggregator's queue was full.
	DroppedQueueFull = "queue_full"
	// DroppedMaxRows: a new row beyond controlPlane.usage.maxRows.
	DroppedMaxRows = "max_rows"
	// DroppedRetryFull: rows that failed to be sent and found no room in
	// the retry buffer.
	DroppedRetryFull = "retry_full"
	// DroppedRefused: the control plane refused the report as invalid
	// (sending it again cannot help), or the row is one it would refuse.
	DroppedRefused = "refused"
	// DroppedShutdown: rows still unsent when the replica stopped.
	DroppedShutdown = "shutdown"
)

// Metrics are a replica's usage metrics. Labels are fixed sets: no
// application or API id is ever a label value.
type Metrics struct {
	dropped *prometheus.CounterVec
	reports *prometheus.CounterVec
}

// NewMetrics registers the metrics on reg (nil: none registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_usage_dropped_total",
			Help: "Requests left out of the usage reported to the control plane, by reason (queue_full, max_rows, retry_full, refused, shutdown).",
		}, []string{"reason"}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_usage_reports_total",
			Help: "Usage reports sent to the control plane, by result (success, failure: kept to be sent again, refused: dropped).",
		}, []string{"result"}),
	}
	for _, r := range []string{DroppedQueueFull, DroppedMaxRows, DroppedRetryFull, DroppedRefused, DroppedShutdown} {
		m.dropped.WithLabelValues(r)
	}
	for _, r := range []string{"success", "failure", "refused"} {
		m.reports.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.dropped, m.reports)
	}
	return m
}

func (m *Metrics) drop(reason string, requests uint64) {
	if requests > 0 {
		m.dropped.WithLabelValues(reason).Add(float64(requests))
	}
}

func (m *Metrics) report(result string) { m.reports.WithLabelValues(result).Inc() }
