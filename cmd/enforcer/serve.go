package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/tollgate/tollgate/internal/analytics"
	"github.com/tollgate/tollgate/internal/authz"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/keys"
	"github.com/tollgate/tollgate/internal/ratelimit"
)

// shutdownGrace bounds how long in-flight checks may take to finish after
// SIGTERM; Kubernetes' default grace period is 30s.
const shutdownGrace = 20 * time.Second

// defaultGCPercent replaces Go's GOGC=100 unless GOGC is set. Tollgate's
// live heap is small (the config and bounded caches), so letting it grow
// four times before a collection costs little memory and saves much of
// the CPU a Check would otherwise spend on garbage collection (measured
// with `make bench`). Set GOMEMLIMIT as well in containers.
const defaultGCPercent = 400

// jwksStartupWait bounds how long start-up waits for the first load of the
// issuers' keys before reporting ready.
const jwksStartupWait = 10 * time.Second

func serveCommand(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	level := fs.String("log-level", envOr("TOLLGATE_LOG_LEVEL", "info"), "debug, info, warn or error (default $TOLLGATE_LOG_LEVEL or info)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return usageError{"serve: --config is required"}
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return usageError{fmt.Sprintf("serve: bad --log-level %q", *level)}
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}

	snap, err := config.Load(*path)
	if err != nil {
		var problems config.Problems
		if errors.As(err, &problems) {
			for _, p := range problems {
				log.Error("config problem", "problem", p.String())
			}
		}
		return fmt.Errorf("cannot start: %s is not valid", *path)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return serve(ctx, serveOptions{path: *path, snap: snap, log: log})
}

type serveOptions struct {
	path string
	snap *config.Snapshot
	log  *slog.Logger
}

// serve runs the three listeners until ctx is cancelled, then drains them.
func serve(ctx context.Context, o serveOptions) error {
	log := o.log
	metrics := analytics.NewMetrics()

	// JWKS sources outlive config reloads; each snapshot is bound to them
	// before it is published.
	jwksCtx, stopJWKS := context.WithCancel(context.Background())
	defer stopJWKS()
	jwks := keys.NewJWKSManager(jwksCtx, log, metrics.ObserveJWKSRefresh)
	if err := jwks.Bind(o.snap.IssuerList); err != nil {
		return err
	}
	metrics.WatchJWKSAge(func() map[string]time.Time {
		ages := map[string]time.Time{}
		for _, src := range jwks.Sources() {
			ages[src.Spec().Issuer] = src.LastSuccess()
		}
		return ages
	})

	limiter, closeLimiter, err := newLimiter(jwksCtx, o.snap.RateLimit, metrics, log)
	if err != nil {
		return err
	}
	defer closeLimiter()

	// Analytics: events to their sink, decisions joined with Envoy's access
	// logs. Both run in their own goroutines until the servers have drained.
	analyticsCtx, stopAnalytics := context.WithCancel(context.Background())
	defer stopAnalytics()
	sink, closeSink, err := newSink(o.snap.Analytics, metrics)
	if err != nil {
		return err
	}
	joiner := analytics.NewJoiner(analytics.JoinOptions{Sink: sink, Metrics: metrics})
	go joiner.Run(analyticsCtx)
	sinkCtx, stopSink := context.WithCancel(context.Background())
	defer stopSink()
	if sink != nil {
		go sink.Run(sinkCtx)
	}

	var tracer authz.Tracer
	var tracing *analytics.Tracing
	if t := o.snap.Tracing; t.OTLPEndpoint != "" {
		if tracing, err = analytics.NewTracing(context.Background(), t.OTLPEndpoint, t.SampleRatio, version); err != nil {
			return err
		}
		tracer = tracing
		log.Info("tracing to an OTLP collector", "endpoint", t.OTLPEndpoint, "sample_ratio", t.SampleRatio)
	}

	store := config.NewStore(o.snap)
	engine := authz.NewEngine(authz.Options{Config: store, Logger: log, RateLimiter: limiter, Tracer: tracer,
		Metrics: analytics.Recorder{Metrics: metrics, Joiner: joiner}})
	reloader := config.NewReloader(config.ReloaderOptions{
		Path: o.path, Store: store, Log: log, Observe: metrics.ObserveReload,
		Prepare: func(s *config.Snapshot) error {
			if !reflect.DeepEqual(s.RateLimit, o.snap.RateLimit) || s.Analytics != o.snap.Analytics || s.Tracing != o.snap.Tracing || s.PProf != o.snap.PProf {
				log.Warn("rateLimit store, analytics, tracing or admin.pprof settings changed in the config; they take effect after a restart")
			}
			return jwks.Bind(s.IssuerList)
		},
	})

	listen := func(role, addr string) (net.Listener, error) {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("%s listener: %w", role, err)
		}
		log.Info("listening", "role", role, "addr", l.Addr().String())
		return l, nil
	}
	grpcL, err := listen("grpc", o.snap.Listen.GRPC)
	if err != nil {
		return err
	}
	httpL, err := listen("http", o.snap.Listen.HTTP)
	if err != nil {
		grpcL.Close()
		return err
	}
	adminL, err := listen("admin", o.snap.Listen.Admin)
	if err != nil {
		grpcL.Close()
		httpL.Close()
		return err
	}

	grpcServer := grpc.NewServer(
		// A fixed pool of stream workers instead of a goroutine per Check:
		// their stacks stay grown, where a fresh goroutine's would be copied
		// to a larger one on every Check (SHA-256 alone needs more than the
		// initial stack).
		grpc.NumStreamWorkers(uint32(max(64, 8*runtime.GOMAXPROCS(0)))),
		// Check requests are read without the generated code's maps and
		// per-header messages (authz.WireCheckRequest).
		grpc.ForceServerCodecV2(authz.Codec()),
		grpc.ChainUnaryInterceptor(metrics.GRPC.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(metrics.GRPC.StreamServerInterceptor()),
	)
	authz.NewGRPCServer(engine).Register(grpcServer)
	accesslogv3.RegisterAccessLogServiceServer(grpcServer, analytics.NewAccessLogServer(joiner, analytics.AccessLogOptions{}))
	healthServer := health.NewServer()
	healthpb.RegisterHealthServer(grpcServer, healthServer)
	reflection.Register(grpcServer)
	metrics.GRPC.InitializeMetrics(grpcServer)

	httpServer := &http.Server{
		Handler:           authz.NewHTTPHandler(engine),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	var ready atomic.Bool
	adminServer := &http.Server{
		Handler:           adminMux(metrics, store, &ready, o.snap.PProf),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	var wg sync.WaitGroup
	errs := make(chan error, 3)
	goServe := func(name string, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) {
				errs <- fmt.Errorf("%s server: %w", name, err)
			}
		}()
	}
	goServe("grpc", func() error { return grpcServer.Serve(grpcL) })
	goServe("http", func() error { return httpServer.Serve(httpL) })
	goServe("admin", func() error { return adminServer.Serve(adminL) })

	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go func() {
		if err := reloader.Watch(watchCtx); err != nil {
			log.Error("config watch stopped; SIGHUP still reloads", "error", err.Error())
		}
	}()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	// Ready once every issuer's keys have had their first load (bounded:
	// an identity provider that is down must not keep API keys out).
	loadCtx, loaded := context.WithTimeout(ctx, jwksStartupWait)
	jwks.WaitLoaded(loadCtx)
	loaded()
	healthServer.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthServer.SetServingStatus(authv3.Authorization_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	ready.Store(true)
	log.Info("tollgate started", "version", version, "config", o.path,
		"apis", len(o.snap.Catalog.APIs()), "applications", len(o.snap.Applications))

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-hup:
			log.Info("SIGHUP: reloading config")
			_ = reloader.Reload(true)
		case runErr = <-errs:
			log.Error("server failed; shutting down", "error", runErr.Error())
			break loop
		}
	}

	// Drain: report not-ready so load balancers and Envoy health checks
	// move away, stop accepting, let in-flight checks finish.
	log.Info("shutting down")
	ready.Store(false)
	healthServer.Shutdown()
	stopWatch()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	stopped := make(chan struct{})
	go func() { grpcServer.GracefulStop(); close(stopped) }()
	if err := httpServer.Shutdown(shutdownCtx); err != nil {
		log.Warn("http front end did not drain in time", "error", err.Error())
	}
	select {
	case <-stopped:
	case <-shutdownCtx.Done():
		log.Warn("grpc front end did not drain in time; closing connections")
		grpcServer.Stop()
	}
	if err := adminServer.Shutdown(shutdownCtx); err != nil {
		adminServer.Close()
	}
	wg.Wait()
	// Nothing decides any more: flush the joins, then the events, then spans.
	stopAnalytics()
	joiner.Wait()
	if sink != nil {
		stopSink()
		sink.Wait()
		closeSink()
	}
	if tracing != nil {
		flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := tracing.Shutdown(flushCtx); err != nil {
			log.Warn("flushing traces", "error", err.Error())
		}
		cancel()
	}
	log.Info("stopped")
	return runErr
}

// newSink opens the analytics event destination: none, stdout, or a file
// rotated by size.
func newSink(a config.AnalyticsSettings, metrics *analytics.Metrics) (*analytics.Sink, func(), error) {
	switch a.Events {
	case "":
		return nil, func() {}, nil
	case "stdout":
		return analytics.NewSink(os.Stdout, 8192, metrics.SinkDropped), func() {}, nil
	}
	file := &lumberjack.Logger{Filename: a.Events, MaxSize: a.FileMaxMB, MaxBackups: a.FileBackups}
	if _, err := file.Write(nil); err != nil {
		return nil, nil, fmt.Errorf("analytics events file: %w", err)
	}
	return analytics.NewSink(file, 8192, metrics.SinkDropped), func() { _ = file.Close() }, nil
}

// newLimiter builds the rate limiter the config asks for: the memory store,
// or Redis with a local memory fallback for outages.
func newLimiter(ctx context.Context, rl config.RateLimitSettings, metrics *analytics.Metrics, log *slog.Logger) (*ratelimit.Limiter, func(), error) {
	opts := ratelimit.LimiterOptions{
		StoreName:     rl.Store,
		Failure:       rl.FailureMode,
		FallbackShare: rl.FallbackShare,
		Observer:      metrics,
		Log:           log,
	}
	closeFn := func() {}
	switch rl.Store {
	case "redis":
		redisStore, err := ratelimit.NewRedisStore(rl.Redis)
		if err != nil {
			return nil, nil, err
		}
		opts.Store = redisStore
		opts.Fallback = ratelimit.NewMemoryStore(ratelimit.MemoryOptions{})
		go opts.Fallback.SweepEvery(ctx, 30*time.Second)
		closeFn = func() { _ = redisStore.Close() }
		log.Info("rate limits in Redis", "addrs", rl.Redis.Addrs, "timeout", rl.Redis.Timeout.String())
	default:
		memory := ratelimit.NewMemoryStore(ratelimit.MemoryOptions{})
		opts.Store = memory
		go memory.SweepEvery(ctx, 30*time.Second)
	}
	return ratelimit.NewLimiter(ctx, opts), closeFn, nil
}

func adminMux(metrics *analytics.Metrics, store *config.Store, ready *atomic.Bool, profiling bool) *http.ServeMux {
	mux := http.NewServeMux()
	if profiling {
		// Off by default: profiles reveal internals and cost CPU while taken.
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("GET /metrics", metrics.Handler())
	// The keys that verify the backend JWTs Tollgate sends upstream.
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "max-age=300")
		if b := store.Load().BackendJWT; b != nil && b.Signer != nil {
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
		if !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "not ready\n")
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	return mux
}

func envOr(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}
