package xdssource

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate/tollgate/internal/model"
	"github.com/tollgate/tollgate/internal/resources"
)

// TLS names the PEM files of a replica's connection to its control
// plane: the CA that signed the control plane's certificate, and this
// replica's own certificate and key (when the control plane asks for one).
type TLS struct {
	CAFile, CertFile, KeyFile string
}

// Options configure a Client.
type Options struct {
	Address  string
	TLS      TLS // zero: plaintext (the caller allows that on loopback only)
	Node     string
	Metadata map[string]string
	StateDir string // "": nothing persisted
	// Settings and BaseDir are the replica's own: how the model is
	// compiled whatever the control plane sends.
	Settings model.Settings
	BaseDir  string
	Store    *model.Store
	// Prepare, if set, runs on a valid snapshot before it is published (it
	// binds the JWKS sources); an error refuses the response.
	Prepare func(*model.Snapshot) error
	// Garbage, if set, runs after work that leaves much garbage behind:
	// a snapshot compiled whole, a large change of API keys, a state
	// written whole (the server returns that memory to the system at once).
	Garbage    func()
	Log        *slog.Logger
	Registerer prometheus.Registerer // nil: no metrics
	Now        func() time.Time
	// Backoff bounds the wait before reconnecting (defaults 250ms, 30s;
	// each wait is drawn at random up to the current bound).
	BackoffBase, BackoffMax time.Duration
	// ResyncAfterNack is the first wait before a stream that refused a
	// response is reopened (default 10s, doubling to 5m while the refusals
	// go on).
	ResyncAfterNack time.Duration
}

// Client keeps a model.Store in step with a control plane.
type Client struct {
	o       Options
	conn    *grpc.ClientConn
	metrics *clientMetrics

	mu   sync.Mutex // guards what Status and the state writer read
	held held       // every kind; API keys only until compiled (see held)
	// otherVersions are the API keys' versions that last's index does not
	// keep (see otherKeyVersions).
	otherVersions otherKeyVersions
	versions      map[string]string // type -> system version last applied
	status        Status
	loaded        chan struct{} // closed once a state is served
	once          sync.Once

	dirty   chan struct{}   // the state changed and is not written yet
	state   *stateStore     // nil without a state directory
	journal []record        // applied, not yet written; guarded by mu
	last    *model.Snapshot // published last by this client; guarded by mu
}

// Status is what the replica knows of its control plane, for the admin
// listener and logs.
type Status struct {
	Address        string            `json:"address"`
	Node           string            `json:"node"`
	Connected      bool              `json:"connected"`
	ConnectedSince time.Time         `json:"connectedSince,omitzero"`
	Synced         bool              `json:"synced"` // every kind received since connecting
	LastUpdate     time.Time         `json:"lastUpdate,omitzero"`
	Source         string            `json:"source"` // none | state | controlPlane
	Versions       map[string]string `json:"versions"`
	Resources      map[string]int    `json:"resources"`
	Held           int               `json:"held"`                // waiting for something they refer to
	LastError      string            `json:"lastError,omitempty"` // why the last stream ended
	LastNack       *Nack             `json:"lastNack,omitempty"`
}

// Nack is the last response this replica refused.
type Nack struct {
	Type    string    `json:"type"`
	Version string    `json:"version"`
	Error   string    `json:"error"`
	At      time.Time `json:"at"`
}

// New prepares a client; nothing connects until Run.
func New(o Options) (*Client, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = 250 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 30 * time.Second
	}
	if o.ResyncAfterNack <= 0 {
		o.ResyncAfterNack = 10 * time.Second
	}
	conn, err := Dial(o.Address, o.TLS)
	if err != nil {
		return nil, err
	}
	c := &Client{
		o: o, conn: conn, held: held{}, otherVersions: otherKeyVersions{}, versions: map[string]string{},
		loaded: make(chan struct{}), dirty: make(chan struct{}, 1),
		status: Status{Address: o.Address, Node: o.Node, Source: "none"},
	}
	for _, t := range resources.Types {
		c.held[t] = map[string]entry{}
	}
	if o.StateDir != "" {
		c.state = &stateStore{dir: o.StateDir}
	}
	c.metrics = newClientMetrics(o.Registerer, c)
	return c, nil
}

// Dial prepares a connection to the control plane at address, with the
// replica's TLS settings; it connects on first use. Other services of
// the control plane (usage reports) reach it the same way.
func Dial(address string, t TLS) (*grpc.ClientConn, error) {
	creds, err := transportCredentials(address, t)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(address,
		grpc.WithTransportCredentials(creds),
		// Large initial syncs come in pieces of about 1 MiB; this bound only
		// guards against a peer that ignores that.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
	)
	if err != nil {
		return nil, fmt.Errorf("control plane %s: %w", address, err)
	}
	return conn, nil
}

func transportCredentials(address string, t TLS) (credentials.TransportCredentials, error) {
	if t == (TLS{}) {
		return insecure.NewCredentials(), nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if host, _, err := net.SplitHostPort(address); err == nil {
		cfg.ServerName = host
	}
	pem, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, fmt.Errorf("controlPlane.tls.caFile: %w", err)
	}
	cfg.RootCAs = x509.NewCertPool()
	if !cfg.RootCAs.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("controlPlane.tls.caFile: no PEM certificate in %s", t.CAFile)
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("controlPlane.tls: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(cfg), nil
}

// Loaded is closed once a state is served: the persisted one, or the
// first complete sync.
func (c *Client) Loaded() <-chan struct{} { return c.loaded }

// Status is a copy of the client's status.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.status
	s.Versions = make(map[string]string, len(c.versions))
	s.Resources = make(map[string]int, len(c.held))
	for t, v := range c.versions {
		s.Versions[resources.ShortName(t)] = v
	}
	for t, byName := range c.held {
		s.Resources[resources.ShortName(t)] = len(byName)
	}
	s.Resources[resources.ShortName(resources.ApiKey)] = keysOf(c.last).Len()
	if c.status.LastNack != nil {
		n := *c.status.LastNack
		s.LastNack = &n
	}
	return s
}

// LoadState serves the state persisted in the state directory, if there
// is one. A damaged or invalid state is reported and left unused: the
// replica then waits for the control plane.
func (c *Client) LoadState() (bool, error) {
	if c.state == nil {
		return false, nil
	}
	data, recs, err := c.state.load()
	var h held
	var snap *model.Snapshot
	other := otherKeyVersions{}
	if err == nil && data != nil {
		h, snap, err = c.fromState(data, recs, other)
	}
	if err != nil || data == nil {
		// Unused: the control plane sends everything, and the next state
		// is written from that alone.
		c.state.lost = err != nil
		return false, wrapState(err)
	}
	snap.Version = "state"
	n := h.count() + snap.APIKeys.Len()
	c.publish(snap, func() {
		c.held, c.otherVersions = h, other
		c.status.Source = "state"
	})
	c.garbage()
	c.once.Do(func() { close(c.loaded) })
	c.o.Log.Info("serving the persisted state until the control plane answers",
		"state_dir", c.o.StateDir, "resources", n)
	return true, nil
}

// fromState compiles a state file and its journal records: every kind
// but API keys as messages, then the keys straight into the index, the
// state's and then each record's (a persisted state is complete).
func (c *Client) fromState(data []byte, recs []record, other otherKeyVersions) (held, *model.Snapshot, error) {
	h, err := decodeHeld(data, recs, false)
	if err != nil {
		return nil, nil, err
	}
	snap, err := c.compile(h, compiled{}, true)
	if err != nil {
		return nil, nil, err
	}
	b := newKeyBatch(snap.Applications)
	err = eachStateField(data, func(t string, raw []byte) error {
		if t != resources.ApiKey {
			return nil
		}
		return b.stored(raw)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("API key: %w", err)
	}
	apply := func(b *keyBatch) {
		snap = model.ApplyAPIKeys(snap, b.set, b.removed)
		other.change(b)
	}
	apply(b)
	for _, r := range recs {
		if r.typeURL != resources.ApiKey {
			continue
		}
		b := newKeyBatch(snap.Applications)
		for raw := range r.set.all() {
			if err := b.stored(raw); err != nil {
				return nil, nil, fmt.Errorf("journal record: API key: %w", err)
			}
		}
		for _, name := range r.removed {
			if d, ok := digestOf(name); ok {
				b.removed = append(b.removed, d)
			}
		}
		apply(b)
	}
	return h, snap, nil
}

// Run follows the control plane until ctx is done, reconnecting with
// jittered backoff, and writes the applied state to the state directory
// in the background.
func (c *Client) Run(ctx context.Context) {
	defer c.conn.Close()
	var writer sync.WaitGroup
	writer.Add(1)
	go func() {
		defer writer.Done()
		c.writeStates(ctx)
	}()
	defer writer.Wait()

	bound := c.o.BackoffBase
	resync := c.o.ResyncAfterNack
	for ctx.Err() == nil {
		start := c.o.Now()
		nacked, err := c.session(ctx, resync)
		if ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		c.status.LastError = errString(err)
		c.mu.Unlock()
		var wait time.Duration
		switch {
		case nacked:
			// Reopen to be sent what was refused again, with what travelled
			// with it; keep backing off while the refusals go on.
			wait = resync
			resync = min(2*resync, 5*time.Minute)
		default:
			if c.o.Now().Sub(start) > c.o.BackoffMax {
				bound = c.o.BackoffBase // it had been up for a while
			}
			wait = time.Duration(rand.Int64N(int64(bound)) + 1)
			bound = min(2*bound, c.o.BackoffMax)
			c.o.Log.Warn("control plane unreachable; serving the last state", "address", c.o.Address,
				"error", errString(err), "retry_in", wait.Round(time.Millisecond).String())
		}
		if !nacked {
			resync = c.o.ResyncAfterNack
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func wrapState(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("state: %w", err)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// errResync ends a stream so that it is reopened after a refusal.
var errResync = errors.New("resync after a refused response")

// session runs one stream. nacked reports that it ended to resync after
// a refusal.
func (c *Client) session(ctx context.Context, resyncAfter time.Duration) (nacked bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(c.conn).DeltaAggregatedResources(ctx)
	if err != nil {
		return false, err
	}
	defer c.setConnected(false)
	c.mu.Lock()
	initial := make([]*discovery.DeltaDiscoveryRequest, 0, len(resources.Types))
	for _, t := range resources.Types {
		versions := c.held.versions(t)
		if t == resources.ApiKey {
			versions = keyVersionsByName(keysOf(c.last), c.otherVersions)
		}
		initial = append(initial, &discovery.DeltaDiscoveryRequest{TypeUrl: t, InitialResourceVersions: versions})
	}
	c.mu.Unlock()
	initial[0].Node = c.node()
	for _, req := range initial {
		if err := stream.Send(req); err != nil {
			return false, err
		}
	}
	c.setConnected(true)
	pieces := newPending()
	synced := map[string]bool{}
	var resync <-chan time.Time
	received := make(chan *discovery.DeltaDiscoveryResponse)
	recvErr := make(chan error, 1)
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case received <- resp:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case err := <-recvErr:
			return false, err
		case <-resync:
			return true, errResync
		case resp := <-received:
			if isPiece(resp) {
				// Acknowledged before it is decoded, so that the control plane
				// sends the next piece meanwhile: a large sync then takes the
				// time of the slower side rather than of both. A piece only
				// stages; its response is applied, or refused, at its end.
				if err := stream.Send(ack(resp)); err != nil {
					return false, err
				}
				c.stage(resp, pieces)
				continue
			}
			reply, refused := c.handle(resp, pieces)
			if err := stream.Send(reply); err != nil {
				return false, err
			}
			if refused && resync == nil {
				resync = time.After(resyncAfter)
			}
			if !refused {
				synced[resp.GetTypeUrl()] = true
				if len(synced) == len(resources.Types) {
					c.markSynced()
				}
			}
		}
	}
}

func (c *Client) node() *core.Node {
	md := map[string]any{}
	for k, v := range c.o.Metadata {
		md[k] = v
	}
	n := &core.Node{Id: c.o.Node, UserAgentName: "tollgate"}
	if s, err := structpb.NewStruct(md); err == nil && len(md) > 0 {
		n.Metadata = s
	}
	return n
}

func (c *Client) setConnected(up bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status.Connected = up
	c.status.Synced = false
	if up {
		c.status.ConnectedSince = c.o.Now().UTC()
	}
	c.metrics.connected(up)
}

func (c *Client) markSynced() {
	c.mu.Lock()
	first := !c.status.Synced
	c.status.Synced = true
	c.mu.Unlock()
	if !first || c.isLoaded() {
		return
	}
	c.o.Log.Info("in step with the control plane", "address", c.o.Address)
	// A replica with nothing persisted is ready once it has it all, and
	// from then on unmatched: allow applies.
	c.once.Do(func() { close(c.loaded) })
	if c.o.Settings.UnmatchedAllow {
		c.mu.Lock()
		h := c.held
		c.mu.Unlock()
		if snap, err := c.compile(h, reusable(c.last, ""), true); err == nil {
			snap.Version = c.o.Store.Load().Version
			c.publish(snap, func() {})
			c.garbage()
		}
	}
}

func (c *Client) isLoaded() bool {
	select {
	case <-c.loaded:
		return true
	default:
		return false
	}
}
