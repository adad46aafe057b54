package controlplane

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the control plane's, prefix tollgate_controlplane_. Labels
// are kinds of resource, never replica names, so they stay bounded.
type metrics struct {
	registry  *prometheus.Registry
	connected prometheus.Gauge
	nacks     *prometheus.CounterVec
	pushes    *prometheus.CounterVec
	loads     *prometheus.CounterVec
	resources *prometheus.GaugeVec
	version   prometheus.Gauge
	updated   prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tollgate_controlplane_replicas_connected",
			Help: "Replica streams open now."}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tollgate_controlplane_nacks_total",
			Help: "Responses a replica refused, by kind of resource."}, []string{"type"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tollgate_controlplane_responses_total",
			Help: "Delta xDS responses sent, by kind of resource."}, []string{"type"}),
		loads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tollgate_controlplane_source_loads_total",
			Help: "Loads of the resource source, by result."}, []string{"result"}),
		resources: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tollgate_controlplane_resources",
			Help: "Resources served, by kind."}, []string{"type"}),
		version: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tollgate_controlplane_version",
			Help: "Changes applied since the control plane started (the counter in the system version)."}),
		updated: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tollgate_controlplane_last_change_timestamp_seconds",
			Help: "When the served resources last changed."}),
	}
	m.loads.WithLabelValues("success")
	m.loads.WithLabelValues("failure")
	m.registry.MustRegister(m.connected, m.nacks, m.pushes, m.loads, m.resources, m.version, m.updated,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}
