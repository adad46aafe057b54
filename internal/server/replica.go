package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/tollgate/tollgate/internal/analytics"
	"github.com/tollgate/tollgate/internal/authz"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/extproc"
	"github.com/tollgate/tollgate/internal/keys"
	"github.com/tollgate/tollgate/internal/model"
	"github.com/tollgate/tollgate/internal/observe"
	"github.com/tollgate/tollgate/internal/ratelimit"
	"github.com/tollgate/tollgate/internal/xdssource"
)

// replica is one running enforcer: what Run builds, in the order it
// builds it.
type replica struct {
	o       Options
	log     *slog.Logger
	metrics *analytics.Metrics
	store   *model.Store
	cfg     *config.Config
	closers []func()

	adminL      net.Listener
	adminAddr   string
	adminServer *http.Server
	ready       atomic.Bool
	pprof       atomic.Bool                      // admin.pprof, once the config is read
	xdsClient   atomic.Pointer[xdssource.Client] // for GET /controlplane

	jwks        *keys.JWKSManager
	limiter     *ratelimit.Limiter
	warmLimiter func(context.Context) error
	joiner      *analytics.Joiner
	sink        *analytics.Sink
	tracing     *analytics.Tracing
	engine      *authz.Engine
	reloader    *config.Reloader // file source
	xds         *xdssource.Client

	grpcL, httpL, accessLogL net.Listener
	grpcServer               *grpc.Server
	accessLogServer          *grpc.Server // on its own listener, when listen.accessLog says so
	httpServer               *http.Server
	healthServer             *health.Server

	stopAnalytics, stopSink func()
	wg                      sync.WaitGroup
	errs                    chan error
	reloadRequests          chan struct{}
}

// openAdmin opens the admin listener and serves health, readiness and
// metrics on it.
func (r *replica) openAdmin(addr string) error {
	l, err := r.listen("admin", addr)
	if err != nil {
		return err
	}
	r.adminL, r.adminAddr = l, addr
	r.adminServer = &http.Server{
		Handler:           r.adminMux(),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = r.adminServer.Serve(l)
	}()
	r.onClose(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		if err := r.adminServer.Shutdown(ctx); err != nil {
			r.adminServer.Close()
		}
		<-done
	})
	return nil
}

// closeAdmin closes an admin listener opened at the wrong address.
func (r *replica) closeAdmin() {
	r.adminServer.Close()
	r.adminL = nil
}

// build makes everything between the config and the listeners.
func (r *replica) build(ctx context.Context) error {
	cfg, log, metrics := r.cfg, r.log, r.metrics
	// JWKS sources outlive reloads; each snapshot is bound to them before
	// it is published.
	jwksCtx, stopJWKS := context.WithCancel(context.Background())
	r.onClose(stopJWKS)
	r.jwks = keys.NewJWKSManager(jwksCtx, log, metrics.ObserveJWKSRefresh)
	metrics.WatchJWKSAge(func() map[string]time.Time {
		ages := map[string]time.Time{}
		for _, src := range r.jwks.Sources() {
			ages[src.Spec().Issuer] = src.LastSuccess()
		}
		return ages
	})
	limiter, warm, closeLimiter, err := newLimiter(jwksCtx, cfg.RateLimit, metrics, log)
	if err != nil {
		return err
	}
	r.onClose(closeLimiter)
	r.limiter, r.warmLimiter = limiter, warm
	if err := r.buildAnalytics(); err != nil {
		return err
	}
	var tracer authz.Tracer
	if r.tracing != nil {
		tracer = observe.Tracer(r.tracing)
	}
	r.engine = authz.NewEngine(authz.Options{Config: r.store, Logger: log, RateLimiter: limiter, Tracer: tracer,
		TokenCacheEntries: cfg.Limits.TokenCacheEntries,
		Metrics:           observe.Decisions(analytics.Recorder{Metrics: metrics, Joiner: r.joiner})})
	prepare := func(s *model.Snapshot) error { return r.jwks.Bind(s.IssuerList) }
	published := func(*model.Snapshot) { releaseLoadGarbage() }
	if cp := cfg.ControlPlane; cp.Address != "" {
		return r.buildControlPlaneSource(cp, prepare, published)
	}
	if err := prepare(cfg.Snapshot); err != nil {
		return err
	}
	r.store.Swap(cfg.Snapshot)
	r.reloader = config.NewReloader(config.ReloaderOptions{
		Path: r.o.ConfigPath, Store: r.store, Log: log, Observe: metrics.ObserveReload,
		Running: cfg.Bootstrap, Digest: cfg.Digest, Prepare: prepare, Published: published, Loading: loadPace, Loaded: cfg,
	})
	// The config is in the store now; the process need not keep it.
	r.cfg = &config.Config{Bootstrap: cfg.Bootstrap}
	return nil
}

// buildControlPlaneSource wires the xDS client and serves the persisted
// state, if any, until the control plane answers.
func (r *replica) buildControlPlaneSource(cp config.ControlPlaneSettings, prepare func(*model.Snapshot) error, published func(*model.Snapshot)) error {
	client, err := xdssource.New(xdssource.Options{
		Address: cp.Address, TLS: xdssource.TLS(cp.TLS), Node: cp.Node, StateDir: cp.StateDir,
		Metadata: map[string]string{"tollgate_version": r.o.Version},
		Settings: r.cfg.Snapshot.Settings, BaseDir: cp.BaseDir, Store: r.store,
		Prepare: prepare, Garbage: releaseLoadGarbage, Log: r.log.With("source", "controlPlane"),
		Registerer: r.metrics.Registry(),
	})
	if err != nil {
		return err
	}
	r.xds = client
	r.xdsClient.Store(client)
	if _, err := client.LoadState(); err != nil {
		r.log.Error("persisted state not used; waiting for the control plane", "error", err.Error())
	}
	return nil
}

func (r *replica) buildAnalytics() error {
	cfg := r.cfg
	// Analytics: events to their sink, decisions joined with Envoy's access
	// logs. Both run in their own goroutines until the servers have drained.
	analyticsCtx, stopAnalytics := context.WithCancel(context.Background())
	sink, closeSink, err := newSink(cfg.Analytics, r.metrics)
	if err != nil {
		stopAnalytics()
		return err
	}
	joinOpts := analytics.JoinOptions{Sink: sink, Metrics: r.metrics}
	// With a control plane, usage is reported to it; the pipeline tells
	// usage of each request once it is final.
	stopUsage := func() {}
	if cp := cfg.ControlPlane; cp.Address != "" {
		agg, stop, err := r.startUsage(cp)
		if err != nil {
			stopAnalytics()
			closeSink()
			return err
		}
		joinOpts.Usage, stopUsage = agg, stop
	}
	r.joiner = analytics.NewJoiner(joinOpts)
	go r.joiner.Run(analyticsCtx)
	sinkCtx, stopSink := context.WithCancel(context.Background())
	r.sink = sink
	if sink != nil {
		go sink.Run(sinkCtx)
	}
	r.stopAnalytics = func() {
		stopAnalytics()
		r.joiner.Wait()
		stopUsage()
		if sink != nil {
			stopSink()
			sink.Wait()
			closeSink()
		}
	}
	stopped := false
	r.onClose(func() {
		if !stopped {
			stopped = true
			r.stopAnalytics()
		}
	})
	if t := cfg.Tracing; t.OTLPEndpoint != "" {
		if r.tracing, err = analytics.NewTracing(context.Background(), t.OTLPEndpoint, t.SampleRatio, r.o.Version); err != nil {
			return err
		}
		r.log.Info("tracing to an OTLP collector", "endpoint", t.OTLPEndpoint, "sample_ratio", t.SampleRatio)
	}
	return nil
}

// openFrontEnds opens the gRPC, HTTP and access-log listeners and builds
// their servers.
func (r *replica) openFrontEnds() error {
	cfg := r.cfg
	var err error
	if r.grpcL, err = r.listen("grpc", cfg.Listen.GRPC); err != nil {
		return err
	}
	r.onClose(func() { r.grpcL.Close() })
	if r.httpL, err = r.listen("http", cfg.Listen.HTTP); err != nil {
		return err
	}
	r.onClose(func() { r.httpL.Close() })
	if addr := cfg.Listen.AccessLog; addr != "" {
		if r.accessLogL, err = r.listen("accessLog", addr); err != nil {
			return err
		}
		r.onClose(func() { r.accessLogL.Close() })
	}
	r.grpcServer = grpc.NewServer(
		// A fixed pool of stream workers instead of a goroutine per Check:
		// their stacks stay grown, where a fresh goroutine's would be copied
		// to a larger one on every Check (SHA-256 alone needs more than the
		// initial stack).
		grpc.NumStreamWorkers(uint32(max(64, 8*runtime.GOMAXPROCS(0)))),
		// What one connection can make Tollgate hold: messages up to
		// maxRequestBytes (gRPC's default is 4 MiB), so many at once.
		grpc.MaxRecvMsgSize(cfg.Limits.MaxRequestBytes),
		grpc.MaxConcurrentStreams(cfg.Limits.MaxConcurrentStreams),
		// Check requests are read without the generated code's maps and
		// per-header messages (authz.WireCheckRequest).
		grpc.ForceServerCodecV2(authz.Codec()),
		grpc.ChainUnaryInterceptor(r.metrics.GRPC.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(r.metrics.GRPC.StreamServerInterceptor()),
	)
	authz.NewGRPCServer(r.engine).Register(r.grpcServer)
	// Interceptors and removeHeader response policies, on the same port:
	// Envoy's ext_proc filter, after ext_authz (README, "Interceptors").
	extproc.New(extproc.Options{Store: r.store, Logger: r.log.With("frontend", "extproc"),
		Registerer: r.metrics.Registry(), Panicked: func() { r.metrics.ObservePanic("extproc") }}).Register(r.grpcServer)
	accessLog := analytics.NewAccessLogServer(r.joiner, analytics.AccessLogOptions{AllowedPeers: cfg.AccessLogPeers})
	if r.accessLogL == nil {
		accesslogv3.RegisterAccessLogServiceServer(r.grpcServer, accessLog)
	} else {
		r.accessLogServer = grpc.NewServer(grpc.MaxRecvMsgSize(cfg.Limits.MaxRequestBytes),
			grpc.MaxConcurrentStreams(cfg.Limits.MaxConcurrentStreams))
		accesslogv3.RegisterAccessLogServiceServer(r.accessLogServer, accessLog)
	}
	r.healthServer = health.NewServer()
	healthpb.RegisterHealthServer(r.grpcServer, r.healthServer)
	reflection.Register(r.grpcServer)
	r.metrics.GRPC.InitializeMetrics(r.grpcServer)
	r.httpServer = &http.Server{
		Handler:           authz.NewHTTPHandler(r.engine),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelWarn),
	}
	return nil
}

func (r *replica) startServers() {
	r.errs = make(chan error, 3)
	r.goServe("grpc", func() error { return r.grpcServer.Serve(r.grpcL) })
	r.goServe("http", func() error { return r.httpServer.Serve(r.httpL) })
	if r.accessLogServer != nil {
		r.goServe("accessLog", func() error { return r.accessLogServer.Serve(r.accessLogL) })
	}
}

func isStopped(err error) bool { return err == grpc.ErrServerStopped }

func (r *replica) setServing() {
	r.healthServer.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	r.healthServer.SetServingStatus(authv3.Authorization_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	r.ready.Store(true)
}

// drain stops accepting, lets in-flight checks finish (bounded), then
// flushes analytics and traces.
func (r *replica) drain() {
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	stopped := make(chan struct{})
	go func() { r.grpcServer.GracefulStop(); close(stopped) }()
	if err := r.httpServer.Shutdown(shutdownCtx); err != nil {
		r.log.Warn("http front end did not drain in time", "error", err.Error())
	}
	select {
	case <-stopped:
	case <-shutdownCtx.Done():
		r.log.Warn("grpc front end did not drain in time; closing connections")
		r.grpcServer.Stop()
	}
	if r.accessLogServer != nil {
		r.accessLogServer.Stop() // access-log streams never end by themselves
	}
	r.wg.Wait()
	// Nothing decides any more: flush the joins, then the events, then spans.
	r.closeAll()
	r.closers = nil
	if r.tracing != nil {
		flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := r.tracing.Shutdown(flushCtx); err != nil {
			r.log.Warn("flushing traces", "error", err.Error())
		}
		cancel()
	}
}

func (r *replica) adminMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", func(w http.ResponseWriter, req *http.Request) {
		// Off by default: profiles reveal internals and cost CPU while taken.
		if !r.pprof.Load() {
			http.NotFound(w, req)
			return
		}
		switch req.URL.Path {
		case "/debug/pprof/cmdline":
			pprof.Cmdline(w, req)
		case "/debug/pprof/profile":
			pprof.Profile(w, req)
		case "/debug/pprof/symbol":
			pprof.Symbol(w, req)
		case "/debug/pprof/trace":
			pprof.Trace(w, req)
		default:
			pprof.Index(w, req)
		}
	})
	mux.Handle("GET /metrics", r.metrics.Handler())
	// The keys that verify the backend JWTs Tollgate sends upstream.
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "max-age=300")
		if b := r.store.Load().BackendJWT; b != nil && b.Signer != nil {
			_, _ = w.Write(b.Signer.PublicJWKS())
			return
		}
		_, _ = io.WriteString(w, `{"keys":[]}`)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !r.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "not ready\n")
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	// What this replica has from its control plane (404 with a file source).
	mux.HandleFunc("GET /controlplane", func(w http.ResponseWriter, req *http.Request) {
		c := r.xdsClient.Load()
		if c == nil {
			http.NotFound(w, req)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c.Status())
	})
	return mux
}
