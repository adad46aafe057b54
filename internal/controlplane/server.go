package controlplane

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/model"
	"github.com/tollgate/tollgate/internal/portal"
	"github.com/tollgate/tollgate/internal/usage"
)

// Options configure a control plane.
type Options struct {
	Config *config.ControlPlaneConfig
	Log    *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// ChunkBytes bounds the resources in one response (default
	// DefaultChunkBytes).
	ChunkBytes int
	// Listening, if set, is told each listener's address once it is open
	// (tests use port 0).
	Listening func(role, addr string)
	// PollInterval is how often a directory source is checked for changes
	// (default 1s); a file source is watched.
	PollInterval time.Duration
	// UsagePurgeInterval is how often usage past its retention is deleted
	// from a store (default 1h).
	UsagePurgeInterval time.Duration
}

// MaxRequestBytes bounds one message from a replica (its initial
// versions); replicas outside loopback authenticate with their
// certificate first.
const MaxRequestBytes = 512 << 20

// shutdownGrace bounds how long the API listener drains.
const shutdownGrace = 5 * time.Second

// Run serves until ctx is done. The first load of the source must
// succeed; later loads that fail keep what is served.
func Run(ctx context.Context, o Options) error {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ChunkBytes <= 0 {
		o.ChunkBytes = DefaultChunkBytes
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.UsagePurgeInterval <= 0 {
		o.UsagePurgeInterval = time.Hour
	}
	log := o.Log
	m := newMetrics()
	// The start time leads every version, so versions keep increasing
	// across restarts; the counter after it counts changes since.
	prefix := o.Now().UTC().Format("20060102T150405.000Z") + "/"
	cs := newCaches(prefix, o.ChunkBytes)
	var (
		src   resourceSource
		admin *adminAPI
		// Usage reports are kept in a store; a file source has nowhere to
		// keep them and accepts them, so that replicas do not send them again.
		usageSink = usage.Discard
		purge     func(context.Context)
	)
	if store := o.Config.Source.Store; store.Set() {
		st, handler, err := openStore(ctx, o, cs, m)
		if err != nil {
			return fmt.Errorf("cannot start: %w", err)
		}
		defer st.st.Close()
		src, admin = st, handler
		usageSink = storeUsage{st.st}
		retention := cmp.Or(o.Config.Usage.Retention, config.DefaultUsageRetention)
		purge = func(ctx context.Context) { purgeUsage(ctx, st.st, retention, o.UsagePurgeInterval, o.Now, log) }
	} else {
		fileSrc := &source{path: o.Config.Source.File, caches: cs, metrics: m, log: log, now: o.Now, poll: o.PollInterval}
		if err := fileSrc.load(); err != nil {
			return fmt.Errorf("cannot start: %w", err)
		}
		src = fileSrc
	}
	var devPortal http.Handler
	if admin != nil && o.Config.Portal.Enabled {
		pt, err := portal.New(ctx, portal.Options{Settings: o.Config.Portal, Admin: admin, Log: log, Now: o.Now,
			Secure: o.Config.TLS.Enabled() || !loopbackListener(o.Config.Listen.API)})
		if err != nil {
			return fmt.Errorf("cannot start: %w", err)
		}
		devPortal = pt
	}

	grpcOpts := []grpc.ServerOption{
		// A replica that reconnects names every resource it holds, with its
		// version, in its first request: about 135 bytes a resource, so a
		// million keys make a 135 MB message. gRPC's 4 MiB default would
		// refuse it and force a full resend.
		grpc.MaxRecvMsgSize(MaxRequestBytes),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	if o.Config.TLS.Enabled() {
		creds, err := serverTLS(o.Config.TLS)
		if err != nil {
			return fmt.Errorf("cannot start: %w", err)
		}
		grpcOpts = append(grpcOpts, grpc.Creds(creds))
	}
	reps := newReplicas(m, o.Now)
	xds := serverv3.NewServer(ctx, cs.mux, reps)
	grpcServer := grpc.NewServer(grpcOpts...)
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(grpcServer, deltaOnly{xds})
	// Usage reports arrive on the xDS listener, under its TLS and
	// client-certificate rules.
	usage.Register(grpcServer, usage.NewReceiver(usage.ReceiverOptions{Sink: usageSink, Log: log, Now: o.Now}))

	xdsL, err := net.Listen("tcp", o.Config.Listen.XDS)
	if err != nil {
		return fmt.Errorf("xds listener: %w", err)
	}
	apiL, err := net.Listen("tcp", o.Config.Listen.API)
	if err != nil {
		xdsL.Close()
		return fmt.Errorf("api listener: %w", err)
	}
	if o.Config.Source.Store.Set() && o.Config.TLS.Enabled() {
		// Bearer tokens cross this listener: it gets the control plane's
		// certificate too (client certificates are for replicas only).
		cert, err := tls.LoadX509KeyPair(o.Config.TLS.CertFile, o.Config.TLS.KeyFile)
		if err != nil {
			xdsL.Close()
			apiL.Close()
			return fmt.Errorf("api listener: %w", err)
		}
		apiL = tls.NewListener(apiL, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	for _, l := range []struct {
		role string
		l    net.Listener
	}{{"xds", xdsL}, {"api", apiL}} {
		log.Info("listening", "role", l.role, "addr", l.l.Addr().String())
		if o.Listening != nil {
			o.Listening(l.role, l.l.Addr().String())
		}
	}
	var ready atomic.Bool
	apiServer := &http.Server{
		Handler:           apiMux(m, reps, src, admin, devPortal, &ready),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(3)
	go func() {
		defer wg.Done()
		if err := grpcServer.Serve(xdsL); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			errs <- fmt.Errorf("xds server: %w", err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := apiServer.Serve(apiL); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("api server: %w", err)
		}
	}()
	watchCtx, stopWatch := context.WithCancel(ctx)
	go func() {
		defer wg.Done()
		src.watch(watchCtx)
	}()
	if purge != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			purge(watchCtx)
		}()
	}
	ready.Store(true)
	log.Info("control plane started", "source", src.status().Source, "resources", cs.total())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errs:
		log.Error("server failed; shutting down", "error", runErr.Error())
	}
	log.Info("shutting down")
	ready.Store(false)
	stopWatch()
	// Replica streams never end by themselves; replicas reconnect to
	// another control plane or keep serving what they have.
	grpcServer.Stop()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := apiServer.Shutdown(shutdownCtx); err != nil {
		apiServer.Close()
	}
	wg.Wait()
	log.Info("stopped")
	return runErr
}

// deltaOnly serves Delta xDS and refuses state-of-the-world streams: for
// kinds other than listeners and clusters, go-control-plane's linear
// cache cannot tell a state-of-the-world client that a resource was
// removed, and a revoked key that stays on a replica is not acceptable.
type deltaOnly struct{ serverv3.Server }

func (deltaOnly) StreamAggregatedResources(discoverygrpc.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	return status.Error(codes.Unimplemented, "Tollgate's control plane serves Delta xDS only (DeltaAggregatedResources)")
}

// serverTLS builds the xDS listener's TLS: the control plane's
// certificate, and with caFile, replicas must present a certificate it
// signed.
func serverTLS(files config.TLSFiles) (credentials.TransportCredentials, error) {
	cert, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if files.CAFile != "" {
		pem, err := os.ReadFile(files.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.caFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.caFile: no PEM certificate in %s", files.CAFile)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return credentials.NewTLS(cfg), nil
}

// resourceSource is where the served resources come from: a file or
// directory, or the store.
type resourceSource interface {
	watch(ctx context.Context)
	status() sourceStatus
}

// apiMux serves the API listener. With a store, admin is the admin API,
// and the replicas listing and status need its authentication too.
func apiMux(m *metrics, reps *replicas, src resourceSource, admin *adminAPI, devPortal http.Handler, ready *atomic.Bool) *http.ServeMux {
	mux := http.NewServeMux()
	var replicasList, status http.Handler = http.HandlerFunc(reps.handleList), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(src.status())
	})
	if admin != nil {
		replicasList, status = admin.Authorized(replicasList), admin.Authorized(status)
		mux.Handle("/api/v1/", admin)
	}
	if devPortal != nil {
		mux.Handle("/portal/", devPortal)
	}
	mux.Handle("GET /api/v1/replicas", replicasList)
	mux.Handle("GET /api/v1/status", status)
	mux.Handle("GET /metrics", m.handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "not ready\n")
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	return mux
}

// loopbackListener says whether the API listens on this machine only:
// the portal's cookies may then go without Secure over plain HTTP.
func loopbackListener(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && model.IsLoopback(host)
}
