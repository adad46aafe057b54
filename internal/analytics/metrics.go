package analytics

import (
	"net/http"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AllowCode is the code label of allowed decisions in
// tollgate_decisions_total; denies carry their code (README, "The decision").
const AllowCode = "200"

// Metrics owns Tollgate's Prometheus registry (README, "Metrics"). Label values
// come from config (API ids) or fixed sets (codes), never from request
// data, so the number of series stays bounded.
type Metrics struct {
	registry  *prometheus.Registry
	decisions *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	reloads   *prometheus.CounterVec
	jwks      *prometheus.CounterVec
	limits    *prometheus.CounterVec

	upstreamRequests *prometheus.CounterVec
	upstreamDuration *prometheus.HistogramVec
	analyticsDropped *prometheus.CounterVec
	accessLogEntries *prometheus.CounterVec
	store            *prometheus.HistogramVec
	fallback         prometheus.Gauge
	evictions        prometheus.Counter
	panics           *prometheus.CounterVec
	accessLogStreams prometheus.Gauge
	accessLogRefused prometheus.Counter
	writeErrors      prometheus.Counter
	// GRPC provides grpc_server_* metrics through server interceptors.
	GRPC *grpcprom.ServerMetrics
}

// NewMetrics registers every collector on a fresh registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_decisions_total",
			Help: "Decisions by API id (empty when no API matched), decision and code (" + AllowCode + " for allow).",
		}, []string{"api", "decision", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:                            "tollgate_decision_duration_seconds",
			Help:                            "Time from receiving a check to having its response ready, by front end.",
			Buckets:                         []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3},
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  160,
			NativeHistogramMinResetDuration: time.Hour,
		}, []string{"frontend"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_config_reloads_total",
			Help: "Config reloads by result (success or failure; a failed reload keeps the running config).",
		}, []string{"result"}),
		jwks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_jwks_refresh_total",
			Help: "JWK Set loads by issuer name and result (success or failure; a failure keeps the last good keys).",
		}, []string{"issuer", "result"}),
		limits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_ratelimit_total",
			Help: "Rate-limit policy outcomes by policy and result (allowed, limited, or error when the store could not answer).",
		}, []string{"policy", "result"}),
		store: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:                            "tollgate_ratelimit_store_duration_seconds",
			Help:                            "Time the rate-limit store took for one decision, by store.",
			Buckets:                         []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3},
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  160,
			NativeHistogramMinResetDuration: time.Hour,
		}, []string{"store"}),
		fallback: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tollgate_ratelimit_fallback",
			Help: "1 while Redis is unreachable and limits are enforced from this replica's memory.",
		}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_ratelimit_evictions_total",
			Help: "Live rate-limit keys evicted from the memory store because it was full (keys of the same limit are then held to the evicted state, never looser).",
		}),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_panics_total",
			Help: "Checks whose decision panicked and were answered with a deny, by front end.",
		}, []string{"frontend"}),
		upstreamRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_upstream_requests_total",
			Help: "Upstream responses reported by Envoy's access log, joined with their decision, by API and status class.",
		}, []string{"api", "status_class"}),
		upstreamDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:                            "tollgate_upstream_duration_seconds",
			Help:                            "Backend time (first request byte sent to last response byte received) from Envoy's access log, by API.",
			Buckets:                         prometheus.ExponentialBuckets(0.001, 2.5, 12),
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  160,
			NativeHistogramMinResetDuration: time.Hour,
		}, []string{"api"}),
		analyticsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_analytics_dropped_total",
			Help: "Analytics events dropped rather than delay a decision, by reason.",
		}, []string{"reason"}),
		accessLogEntries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_accesslog_entries_total",
			Help: "Envoy access-log entries received, by result: joined with a decision, unmatched (not kept), or dropped.",
		}, []string{"result"}),
		accessLogStreams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tollgate_accesslog_streams",
			Help: "Envoy access-log streams connected now.",
		}),
		accessLogRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_accesslog_refused_total",
			Help: "Access-log streams refused because their peer address is not allowed.",
		}),
		writeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_analytics_write_errors_total",
			Help: "Failed writes of analytics events to their output (the lines being written are lost).",
		}),
		GRPC: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
			grpcprom.WithHistogramBuckets([]float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3}),
		)),
	}
	m.registry.MustRegister(
		m.decisions, m.duration, m.reloads, m.jwks, m.limits, m.store, m.fallback, m.GRPC,
		m.upstreamRequests, m.upstreamDuration, m.analyticsDropped, m.accessLogEntries,
		m.evictions, m.panics, m.accessLogStreams, m.accessLogRefused, m.writeErrors,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// Both results exist from the start, so rate() and alerts work before
	// the first reload.
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	for _, f := range []string{FrontendGRPC, FrontendHTTP} {
		m.duration.WithLabelValues(f)
		m.panics.WithLabelValues(f)
	}
	return m
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// Registry is the registry collectors are registered on.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// ObserveDecision counts a decision and its duration.
func (m *Metrics) ObserveDecision(d Decision) {
	decision, code := "allow", AllowCode
	if !d.Allowed {
		decision, code = "deny", d.Code
	}
	m.decisions.WithLabelValues(d.API, decision, code).Inc()
	m.duration.WithLabelValues(d.Frontend).Observe(d.Elapsed.Seconds())
}

// observeUpstream records a joined access-log entry.
func (m *Metrics) observeUpstream(api string, u Upstream) {
	m.upstreamRequests.WithLabelValues(api, statusClass(u.Status)).Inc()
	if u.HasTiming {
		m.upstreamDuration.WithLabelValues(api).Observe(u.Backend.Seconds())
	}
}

func statusClass(code int) string {
	if code >= 100 && code < 600 {
		return string(rune('0'+code/100)) + "xx"
	}
	return "other" // 0: no response (reset, timeout)
}

// SinkDropped counts an event the sink had no room for.
func (m *Metrics) SinkDropped() { m.analyticsDropped.WithLabelValues("sink_full").Inc() }

// SinkWriteFailed counts a failed write of analytics events.
func (m *Metrics) SinkWriteFailed(error) { m.writeErrors.Inc() }

// ObservePanic counts a check whose decision panicked and was answered
// with a deny. frontend is FrontendGRPC or FrontendHTTP;
// anything else is counted as "other", so the label stays a fixed set.
func (m *Metrics) ObservePanic(frontend string) {
	if frontend != FrontendGRPC && frontend != FrontendHTTP {
		frontend = "other"
	}
	m.panics.WithLabelValues(frontend).Inc()
}

// ObserveRateLimitEvictions counts n rate-limit memory-store entries
// evicted because the store was full.
func (m *Metrics) ObserveRateLimitEvictions(n int) {
	if n > 0 {
		m.evictions.Add(float64(n))
	}
}

// ObserveRateLimit counts one policy's result: allowed, limited or error.
func (m *Metrics) ObserveRateLimit(policy, result string) {
	m.limits.WithLabelValues(policy, result).Inc()
}

// ObserveStore implements ratelimit.Observer.
func (m *Metrics) ObserveStore(store string, took time.Duration, _ error) {
	m.store.WithLabelValues(store).Observe(took.Seconds())
}

// ObserveFallback implements ratelimit.Observer.
func (m *Metrics) ObserveFallback(active bool) {
	if active {
		m.fallback.Set(1)
	} else {
		m.fallback.Set(0)
	}
}

// ObserveJWKSRefresh counts a JWK Set load.
func (m *Metrics) ObserveJWKSRefresh(issuer string, ok bool) {
	result := "success"
	if !ok {
		result = "failure"
	}
	m.jwks.WithLabelValues(issuer, result).Inc()
}

// WatchJWKSAge exports tollgate_jwks_age_seconds{issuer}: the time since
// each issuer's keys were last loaded successfully, read at scrape time
// from lastSuccess (issuer name -> time; zero before the first success,
// which is not exported).
func (m *Metrics) WatchJWKSAge(lastSuccess func() map[string]time.Time) {
	m.registry.MustRegister(&jwksAgeCollector{lastSuccess: lastSuccess})
}

var jwksAgeDesc = prometheus.NewDesc("tollgate_jwks_age_seconds",
	"Seconds since the issuer's JWK Set was last loaded successfully.", []string{"issuer"}, nil)

type jwksAgeCollector struct {
	lastSuccess func() map[string]time.Time
}

func (c *jwksAgeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- jwksAgeDesc }

func (c *jwksAgeCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for issuer, at := range c.lastSuccess() {
		if !at.IsZero() {
			ch <- prometheus.MustNewConstMetric(jwksAgeDesc, prometheus.GaugeValue, now.Sub(at).Seconds(), issuer)
		}
	}
}

// ObserveReload counts a config reload.
func (m *Metrics) ObserveReload(ok bool) {
	if ok {
		m.reloads.WithLabelValues("success").Inc()
	} else {
		m.reloads.WithLabelValues("failure").Inc()
	}
}
