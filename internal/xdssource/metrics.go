package xdssource

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/internal/resources"
)

// clientMetrics are the replica's view of its control plane, prefix
// tollgate_controlplane_. Versions are in GET /controlplane on the admin
// listener and in the logs, not in labels.
type clientMetrics struct {
	up         prometheus.Gauge
	lastUpdate prometheus.Gauge
	updates    *prometheus.CounterVec
}

func newClientMetrics(reg prometheus.Registerer, c *Client) *clientMetrics {
	m := &clientMetrics{
		up: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tollgate_controlplane_connected",
			Help: "1 while a stream to the control plane is open."}),
		lastUpdate: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tollgate_controlplane_last_update_timestamp_seconds",
			Help: "When the served resources last changed (from the control plane or the persisted state)."}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tollgate_controlplane_updates_total",
			Help: "Responses from the control plane, by kind and result (applied, refused: NACKed)."}, []string{"type", "result"}),
	}
	for _, t := range resources.Types {
		m.updates.WithLabelValues(resources.ShortName(t), "applied")
		m.updates.WithLabelValues(resources.ShortName(t), "refused")
	}
	if reg == nil {
		return m
	}
	held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tollgate_controlplane_held_resources",
		Help: "Resources held back until something they refer to arrives."}, func() float64 { return float64(c.Status().Held) })
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tollgate_controlplane_last_update_age_seconds",
		Help: "Seconds since the served resources last changed."}, func() float64 {
		s := c.Status()
		if s.LastUpdate.IsZero() {
			return 0
		}
		return c.o.Now().Sub(s.LastUpdate).Seconds()
	})
	reg.MustRegister(m.up, m.lastUpdate, m.updates, held, age)
	return m
}

func (m *clientMetrics) connected(up bool) {
	if up {
		m.up.Set(1)
	} else {
		m.up.Set(0)
	}
}

func (m *clientMetrics) update(at time.Time) { m.lastUpdate.Set(float64(at.UnixNano()) / 1e9) }
func (m *clientMetrics) applied(t string) {
	m.updates.WithLabelValues(resources.ShortName(t), "applied").Inc()
}
func (m *clientMetrics) refused(t string) {
	m.updates.WithLabelValues(resources.ShortName(t), "refused").Inc()
}
