package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
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
	"github.com/tollgate/tollgate/internal/model"
	"github.com/tollgate/tollgate/internal/observe"
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

// releaseLoadGarbage collects once a config is loaded. The collections
// during a load run while the YAML node tree is live, so without one
// after it the heap goal stays at several times the model's size (with
// GOGC=400 and a million keys: 9 GB for 0.25 GB of live data) and RSS
// grows to it under traffic. This collection sets the goal from the
// model alone and returns the parse's pages to the system.
func releaseLoadGarbage() { debug.FreeOSMemory() }

// startupWait bounds how long start-up waits for the first load of the
// issuers' keys, and for the rate-limit store, before reporting ready.
const startupWait = 10 * time.Second

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
		if !errors.As(err, &problems) {
			return fmt.Errorf("cannot start: %w", err) // e.g. no such file
		}
		for _, p := range problems {
			log.Error("config problem", "problem", p.String())
		}
		return fmt.Errorf("cannot start: %s is not valid (%s, logged above)", *path, plural(len(problems), "problem"))
	}
	releaseLoadGarbage()
	if err := checkRuntime(snap); err != nil {
		return fmt.Errorf("cannot start: %w", err)
	}
	setMemoryLimit(snap.Limits, log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return serve(ctx, serveOptions{path: *path, snap: snap, log: log})
}

type serveOptions struct {
	path string
	snap *config.Config
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

	limiter, warmLimiter, closeLimiter, err := newLimiter(jwksCtx, o.snap.RateLimit, metrics, log)
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
		tracer = observe.Tracer(tracing)
		log.Info("tracing to an OTLP collector", "endpoint", t.OTLPEndpoint, "sample_ratio", t.SampleRatio)
	}

	store := model.NewStore(o.snap.Snapshot)
	engine := authz.NewEngine(authz.Options{Config: store, Logger: log, RateLimiter: limiter, Tracer: tracer,
		TokenCacheEntries: o.snap.Limits.TokenCacheEntries,
		Metrics:           observe.Decisions(analytics.Recorder{Metrics: metrics, Joiner: joiner})})
	reloader := config.NewReloader(config.ReloaderOptions{
		Path: o.path, Store: store, Log: log, Observe: metrics.ObserveReload,
		Running: o.snap.Bootstrap, Digest: o.snap.Digest,
		Prepare:   func(s *model.Snapshot) error { return jwks.Bind(s.IssuerList) },
		Published: func(*model.Snapshot) { releaseLoadGarbage() },
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
	var accessLogL net.Listener
	if addr := o.snap.Listen.AccessLog; addr != "" {
		if accessLogL, err = listen("accessLog", addr); err != nil {
			grpcL.Close()
			httpL.Close()
			adminL.Close()
			return err
		}
	}

	grpcServer := grpc.NewServer(
		// A fixed pool of stream workers instead of a goroutine per Check:
		// their stacks stay grown, where a fresh goroutine's would be copied
		// to a larger one on every Check (SHA-256 alone needs more than the
		// initial stack).
		grpc.NumStreamWorkers(uint32(max(64, 8*runtime.GOMAXPROCS(0)))),
		// What one connection can make Tollgate hold: messages up to
		// maxRequestBytes (gRPC's default is 4 MiB), so many at once.
		grpc.MaxRecvMsgSize(o.snap.Limits.MaxRequestBytes),
		grpc.MaxConcurrentStreams(o.snap.Limits.MaxConcurrentStreams),
		// Check requests are read without the generated code's maps and
		// per-header messages (authz.WireCheckRequest).
		grpc.ForceServerCodecV2(authz.Codec()),
		grpc.ChainUnaryInterceptor(metrics.GRPC.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(metrics.GRPC.StreamServerInterceptor()),
	)
	authz.NewGRPCServer(engine).Register(grpcServer)
	accessLog := analytics.NewAccessLogServer(joiner, analytics.AccessLogOptions{AllowedPeers: o.snap.AccessLogPeers})
	var accessLogServer *grpc.Server // on its own listener, when listen.accessLog says so
	if accessLogL == nil {
		accesslogv3.RegisterAccessLogServiceServer(grpcServer, accessLog)
	} else {
		accessLogServer = grpc.NewServer(grpc.MaxRecvMsgSize(o.snap.Limits.MaxRequestBytes),
			grpc.MaxConcurrentStreams(o.snap.Limits.MaxConcurrentStreams))
		accesslogv3.RegisterAccessLogServiceServer(accessLogServer, accessLog)
	}
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
	if accessLogServer != nil {
		goServe("accessLog", func() error { return accessLogServer.Serve(accessLogL) })
	}

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
	// Reloads run beside the signal loop, so that SIGTERM is honoured at
	// once even while a large config compiles; SIGHUPs that arrive during
	// a reload make one more.
	reloadRequests := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-watchCtx.Done():
				return
			case <-reloadRequests:
				log.Info("SIGHUP: reloading config")
				_ = reloader.Reload(true)
			}
		}
	}()

	// Ready once every issuer's keys have had their first load and the
	// rate-limit store answers with its script loaded (bounded: an
	// identity provider or a Redis that is down must not keep the replica
	// out for good; failureMode and the local fallback take over).
	loadCtx, loaded := context.WithTimeout(ctx, startupWait)
	warmed := make(chan struct{})
	go func() {
		defer close(warmed)
		if err := warmLimiter(loadCtx); err != nil {
			log.Warn("rate-limit store not warmed up before ready", "error", err.Error())
		}
	}()
	jwks.WaitLoaded(loadCtx)
	<-warmed
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
			select {
			case reloadRequests <- struct{}{}:
			default: // one is already waiting
			}
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
	if accessLogServer != nil {
		accessLogServer.Stop() // access-log streams never end by themselves
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
		return analytics.NewSinkWithOptions(os.Stdout, sinkOptions(metrics)), func() {}, nil
	}
	file := &lumberjack.Logger{Filename: a.Events, MaxSize: a.FileMaxMB, MaxBackups: a.FileBackups}
	if _, err := file.Write(nil); err != nil {
		return nil, nil, fmt.Errorf("analytics events file: %w", err)
	}
	return analytics.NewSinkWithOptions(file, sinkOptions(metrics)), func() { _ = file.Close() }, nil
}

func sinkOptions(metrics *analytics.Metrics) analytics.SinkOptions {
	return analytics.SinkOptions{Buffer: 8192, Dropped: metrics.SinkDropped, WriteFailed: metrics.SinkWriteFailed}
}

// checkRuntime makes the checks of what serve needs from the config that
// compiling cannot make — the events file can be written — so that
// validate never passes a config serve cannot start with.
func checkRuntime(snap *config.Config) error {
	if path := snap.Analytics.Events; path != "" && path != "stdout" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if errors.Is(err, os.ErrNotExist) {
			// Not there yet: its directory must take a new file.
			var tmp *os.File
			if tmp, err = os.CreateTemp(filepath.Dir(path), ".tollgate-check-*"); err == nil {
				tmp.Close()
				err = os.Remove(tmp.Name())
			}
		} else if err == nil {
			err = f.Close()
		}
		if err != nil {
			return fmt.Errorf("analytics.events: %w", err)
		}
	}
	return nil
}

// setMemoryLimit gives the Go runtime a memory limit unless GOMEMLIMIT
// says otherwise: with limits.memoryLimit auto, 90% of the container's
// (cgroup) limit, so the garbage collector works harder before the kernel
// kills the pod.
func setMemoryLimit(l config.LimitSettings, log *slog.Logger) {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return
	}
	switch l.MemoryLimit {
	case "off":
	case "auto":
		limit, err := memlimit.Set(memlimit.WithRatio(0.9), memlimit.WithProvider(memlimit.FromCgroup))
		if err == nil && limit > 0 && limit < math.MaxInt64 {
			log.Info("memory limit follows the container's", "gomemlimit_bytes", limit)
		}
	default:
		debug.SetMemoryLimit(l.MemoryLimitBytes)
		log.Info("memory limit", "gomemlimit_bytes", l.MemoryLimitBytes)
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// newLimiter builds the rate limiter the config asks for: the memory store,
// or Redis with a local memory fallback for outages. warm connects to the
// store before the first decision.
func newLimiter(ctx context.Context, rl config.RateLimitSettings, metrics *analytics.Metrics, log *slog.Logger) (
	limiter *ratelimit.Limiter, warm func(context.Context) error, closeFn func(), err error) {
	opts := ratelimit.LimiterOptions{
		StoreName:     rl.Store,
		Failure:       rl.FailureMode,
		FallbackShare: rl.FallbackShare,
		Observer:      metrics,
		Log:           log,
	}
	closeFn = func() {}
	warm = func(context.Context) error { return nil }
	switch rl.Store {
	case "redis":
		ratelimit.SetRedisLogger(log)
		redisStore, err := ratelimit.NewRedisStore(rl.Redis)
		if err != nil {
			return nil, nil, nil, err
		}
		opts.Store = redisStore
		warm = redisStore.WarmUp
		opts.Fallback = ratelimit.NewMemoryStore(ratelimit.MemoryOptions{MaxKeys: rl.MemoryMaxKeys, OnEvict: metrics.ObserveRateLimitEvictions})
		go opts.Fallback.SweepEvery(ctx, 30*time.Second)
		closeFn = func() { _ = redisStore.Close() }
		log.Info("rate limits in Redis", "addrs", rl.Redis.Addrs, "timeout", rl.Redis.Timeout.String())
	default:
		memory := ratelimit.NewMemoryStore(ratelimit.MemoryOptions{MaxKeys: rl.MemoryMaxKeys, OnEvict: metrics.ObserveRateLimitEvictions})
		opts.Store = memory
		go memory.SweepEvery(ctx, 30*time.Second)
	}
	return ratelimit.NewLimiter(ctx, opts), warm, closeFn, nil
}

func adminMux(metrics *analytics.Metrics, store *model.Store, ready *atomic.Bool, profiling bool) *http.ServeMux {
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
