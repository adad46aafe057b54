package controlplane

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/peer"

	"github.com/tollgate/tollgate/internal/resources"
)

// replicas tracks every open stream: which replica it is, what it was
// sent, what it accepted and what it refused. It implements the delta
// server's callbacks.
type replicas struct {
	now     func() time.Time
	metrics *metrics

	mu      sync.Mutex
	streams map[int64]*replica
	// lastNacks outlives streams: a replica that refused a response
	// reopens its stream to resync, and its refusal must stay visible.
	lastNacks map[string]*nack
}

// maxRememberedNodes bounds lastNacks.
const maxRememberedNodes = 4096

type replica struct {
	Node           string            `json:"node"`
	Metadata       map[string]any    `json:"metadata,omitempty"`
	Address        string            `json:"address,omitempty"`
	ConnectedSince time.Time         `json:"connectedSince"`
	Acked          map[string]string `json:"acked"`   // type -> system version last accepted
	Pending        map[string]string `json:"pending"` // type -> system version sent, not yet answered
	LastNack       *nack             `json:"lastNack,omitempty"`

	sent map[string]sentResponse // nonce -> what it carried
}

type nack struct {
	Type    string    `json:"type"`
	Version string    `json:"version"`
	Error   string    `json:"error"`
	At      time.Time `json:"at"`
}

type sentResponse struct{ typ, version string }

func newReplicas(m *metrics, now func() time.Time) *replicas {
	return &replicas{now: now, metrics: m, streams: map[int64]*replica{}, lastNacks: map[string]*nack{}}
}

func (r *replicas) OnDeltaStreamOpen(ctx context.Context, id int64, _ string) error {
	rep := &replica{ConnectedSince: r.now().UTC(), Acked: map[string]string{}, Pending: map[string]string{}, sent: map[string]sentResponse{}}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		rep.Address = p.Addr.String()
	}
	r.mu.Lock()
	r.streams[id] = rep
	r.metrics.connected.Set(float64(len(r.streams)))
	r.mu.Unlock()
	return nil
}

func (r *replicas) OnDeltaStreamClosed(id int64, _ *core.Node) {
	r.mu.Lock()
	delete(r.streams, id)
	r.metrics.connected.Set(float64(len(r.streams)))
	r.mu.Unlock()
}

func (r *replicas) OnStreamDeltaRequest(id int64, req *discovery.DeltaDiscoveryRequest) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := r.streams[id]
	if rep == nil {
		return nil
	}
	if n := req.GetNode(); n != nil && rep.Node == "" {
		rep.Node = n.GetId()
		if md := n.GetMetadata(); md != nil {
			rep.Metadata = md.AsMap()
		}
		rep.LastNack = r.lastNacks[rep.Node]
	}
	nonce := req.GetResponseNonce()
	sent, ok := rep.sent[nonce]
	if nonce == "" || !ok {
		return nil
	}
	delete(rep.sent, nonce)
	typ := resources.ShortName(sent.typ)
	if rep.Pending[typ] == sent.version {
		delete(rep.Pending, typ)
	}
	if st := req.GetErrorDetail(); st != nil {
		rep.LastNack = &nack{Type: typ, Version: sent.version, Error: st.GetMessage(), At: r.now().UTC()}
		if _, known := r.lastNacks[rep.Node]; !known && len(r.lastNacks) >= maxRememberedNodes {
			for node := range r.lastNacks { // forget any one
				delete(r.lastNacks, node)
				break
			}
		}
		r.lastNacks[rep.Node] = rep.LastNack
		r.metrics.nacks.WithLabelValues(typ).Inc()
		return nil
	}
	rep.Acked[typ] = sent.version
	return nil
}

func (r *replicas) OnStreamDeltaResponse(id int64, _ *discovery.DeltaDiscoveryRequest, resp *discovery.DeltaDiscoveryResponse) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := r.streams[id]
	if rep == nil {
		return
	}
	rep.sent[resp.GetNonce()] = sentResponse{typ: resp.GetTypeUrl(), version: resp.GetSystemVersionInfo()}
	rep.Pending[resources.ShortName(resp.GetTypeUrl())] = resp.GetSystemVersionInfo()
	r.metrics.pushes.WithLabelValues(resources.ShortName(resp.GetTypeUrl())).Inc()
}

// State-of-the-world streams are refused (see sotwRefused), so their
// callbacks have nothing to record.
func (r *replicas) OnStreamOpen(context.Context, int64, string) error                         { return nil }
func (r *replicas) OnStreamClosed(int64, *core.Node)                                          {}
func (r *replicas) OnStreamRequest(int64, *discovery.DiscoveryRequest) error                  { return nil }
func (r *replicas) OnFetchRequest(context.Context, *discovery.DiscoveryRequest) error         { return nil }
func (r *replicas) OnFetchResponse(*discovery.DiscoveryRequest, *discovery.DiscoveryResponse) {}
func (r *replicas) OnStreamResponse(context.Context, int64, *discovery.DiscoveryRequest, *discovery.DiscoveryResponse) {
}

// list is every connected replica, by node.
func (r *replicas) list() []replica {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]replica, 0, len(r.streams))
	for _, rep := range r.streams {
		c := *rep
		c.Acked, c.Pending = cloneMap(rep.Acked), cloneMap(rep.Pending)
		if rep.LastNack != nil {
			n := *rep.LastNack
			c.LastNack = &n
		}
		c.sent = nil
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b replica) int {
		if c := strings.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		return a.ConnectedSince.Compare(b.ConnectedSince)
	})
	return out
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// handleList serves GET /api/v1/replicas.
func (r *replicas) handleList(w http.ResponseWriter, _ *http.Request) {
	items := r.list()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		Items []replica `json:"items"`
		Total int       `json:"total"`
	}{items, len(items)})
}
