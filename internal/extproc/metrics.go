package extproc

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of an interceptor call, the values of the result label.
const (
	resultOK          = "ok"          // answered with changes or a direct response
	resultUnchanged   = "unchanged"   // 204, or 200 with nothing to change
	resultTimeout     = "timeout"     // no answer within the timeout
	resultUnreachable = "unreachable" // connection refused, reset, TLS failure…
	resultStatus      = "status"      // an HTTP status other than 200 and 204
	resultInvalid     = "invalid"     // an answer that breaks the contract or Tollgate's checks
	resultTooLarge    = "too_large"   // a body over maxBodyBytes, not sent
	resultSkipped     = "skipped"     // Envoy never sent the body the call needed
)

// metrics are the ext_proc server's collectors. Labels are bounded: api is
// an API id of the config, flow is request or response, result one of the
// constants above, kind pass or intercepted.
type metrics struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	streams  *prometheus.CounterVec

	pass, intercepted prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_interceptor_calls_total",
			Help: "Interceptor service calls, by API, flow (request, response) and result.",
		}, []string{"api", "flow", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tollgate_interceptor_duration_seconds",
			Help:    "Time to an interceptor service's answer, by flow.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"flow"}),
		streams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_extproc_requests_total",
			Help: "Requests seen on the ext_proc front end: pass (nothing to do) or intercepted.",
		}, []string{"kind"}),
	}
	m.pass, m.intercepted = m.streams.WithLabelValues("pass"), m.streams.WithLabelValues("intercepted")
	if reg != nil {
		reg.MustRegister(m.calls, m.duration, m.streams)
	}
	return m
}

func (m *metrics) observeCall(api, flow, result string, took time.Duration) {
	m.calls.WithLabelValues(api, flow, result).Inc()
	if took > 0 {
		m.duration.WithLabelValues(flow).Observe(took.Seconds())
	}
}
