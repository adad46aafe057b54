package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/tollgate/tollgate/internal/analytics"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/model"
)

// Options configure Run.
type Options struct {
	ConfigPath string
	Log        *slog.Logger
	Version    string
	// Listening, if set, is told each listener's role and address once it
	// is open (tests listen on port 0).
	Listening func(role, addr string)
	// Signals, if set, receives SIGHUP-style reload requests instead of
	// the process's own SIGHUP (tests).
	Signals <-chan os.Signal
}

// shutdownGrace bounds how long in-flight checks may take to finish after
// SIGTERM; Kubernetes' default grace period is 30s.
const shutdownGrace = 20 * time.Second

// startupWait bounds how long start-up waits for the first load of the
// issuers' keys, and for the rate-limit store, before reporting ready.
const startupWait = 10 * time.Second

// releaseLoadGarbage collects once a config or state is loaded. The
// collections during a load run while the parse's garbage is live, so
// without one after it the heap goal stays at several times the model's
// size and RSS grows to it under traffic. This collection sets the goal
// from the model alone and returns the parse's pages to the system.
func releaseLoadGarbage() { debug.FreeOSMemory() }

// loadGCPercent is the collector's pace while a config file loads: its
// garbage (the YAML tree) is most of the heap then, and at Go's default
// pace RSS reaches more than twice the live heap (2.2x with 10,000 APIs).
const loadGCPercent = 50

// loadPace sets the collector's pace for a load, unless GOGC is set;
// done restores it.
func loadPace() (done func()) {
	if _, set := os.LookupEnv("GOGC"); set {
		return func() {}
	}
	prev := debug.SetGCPercent(loadGCPercent)
	return func() { debug.SetGCPercent(prev) }
}

// Run runs a replica until ctx is done, then drains it. A SIGTERM while
// the config loads stops at once.
func Run(ctx context.Context, o Options) error {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	r := &replica{o: o, log: o.Log, metrics: analytics.NewMetrics(), store: model.NewStore(denyAll())}
	defer r.closeAll()

	// Liveness first: the admin listener opens before the config is
	// parsed when its address can be read on its own.
	data, err := os.ReadFile(o.ConfigPath)
	if err != nil {
		return fmt.Errorf("cannot start: reading config: %w", err)
	}
	if addr, ok := config.PeekAdmin(data, os.LookupEnv); ok {
		if err := r.openAdmin(addr); err != nil {
			return err
		}
	}
	data = nil
	cfg, err := r.load(ctx)
	if err != nil || cfg == nil {
		return err // nil: stopped while loading
	}
	r.cfg = cfg
	r.pprof.Store(cfg.PProf)
	if r.adminL != nil && r.adminAddr != cfg.Listen.Admin {
		r.log.Warn("listen.admin read differently once the whole config was parsed; moving the admin listener",
			"early", r.adminAddr, "configured", cfg.Listen.Admin)
		r.closeAdmin()
	}
	if r.adminL == nil {
		if err := r.openAdmin(cfg.Listen.Admin); err != nil {
			return err
		}
	}
	if err := r.build(ctx); err != nil {
		return err
	}
	if err := r.openFrontEnds(); err != nil {
		return err
	}
	return r.serve(ctx)
}

// load compiles the config file beside the signal loop, so that a
// SIGTERM during a long load is honoured at once (cfg nil, err nil).
func (r *replica) load(ctx context.Context) (*config.Config, error) {
	type result struct {
		cfg *config.Config
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer loadPace()()
		cfg, err := config.Load(r.o.ConfigPath)
		done <- result{cfg, err}
	}()
	var res result
	select {
	case <-ctx.Done():
		r.log.Info("stopped while loading the config")
		return nil, nil
	case res = <-done:
	}
	if res.err != nil {
		var problems config.Problems
		if !errors.As(res.err, &problems) {
			return nil, fmt.Errorf("cannot start: %w", res.err) // e.g. no such file
		}
		for _, p := range problems {
			r.log.Error("config problem", "problem", p.String())
		}
		return nil, fmt.Errorf("cannot start: %s is not valid (%s, logged above)", r.o.ConfigPath, plural(len(problems), "problem"))
	}
	releaseLoadGarbage()
	if err := CheckRuntime(res.cfg); err != nil {
		return nil, fmt.Errorf("cannot start: %w", err)
	}
	setMemoryLimit(res.cfg.Limits, r.log)
	return res.cfg, nil
}

// denyAll is served until a state is loaded: no APIs, and unknown
// requests denied whatever unmatched says.
func denyAll() *model.Snapshot {
	snap, _ := model.Compile(model.Input{})
	snap.Version = "none"
	return snap
}

// serve runs until ctx is done or a server fails, then drains.
func (r *replica) serve(ctx context.Context) error {
	r.startServers()
	stopBackground := r.startBackground(ctx)
	r.awaitReady(ctx)

	hup := r.o.Signals
	if hup == nil {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGHUP)
		defer signal.Stop(ch)
		hup = ch
	}
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-hup:
			select {
			case r.reloadRequests <- struct{}{}:
			default: // one is already waiting
			}
		case runErr = <-r.errs:
			r.log.Error("server failed; shutting down", "error", runErr.Error())
			break loop
		}
	}
	r.log.Info("shutting down")
	r.ready.Store(false)
	r.healthServer.Shutdown()
	stopBackground()
	r.drain()
	r.log.Info("stopped")
	return runErr
}

// startBackground starts the config watch and reload worker (file
// source) or the control-plane client, and returns what stops them.
func (r *replica) startBackground(ctx context.Context) (stop func()) {
	bgCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	r.reloadRequests = make(chan struct{}, 1)
	onReload := func() {
		r.log.Info("SIGHUP: reloading config")
		_ = r.reloader.Reload(true)
	}
	if r.xds != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.xds.Run(bgCtx)
		}()
		// SIGHUP has nothing to reload: resources come from the control
		// plane and the bootstrap needs a restart.
		onReload = func() {
			r.log.Info("SIGHUP ignored: resources come from the control plane; bootstrap changes need a restart")
		}
	} else {
		go func() {
			if err := r.reloader.Watch(bgCtx); err != nil {
				r.log.Error("config watch stopped; SIGHUP still reloads", "error", err.Error())
			}
		}()
	}
	// Reloads run beside the signal loop, so that SIGTERM is honoured at
	// once even while a large config compiles; SIGHUPs that arrive during
	// a reload make one more.
	go func() {
		for {
			select {
			case <-bgCtx.Done():
				return
			case <-r.reloadRequests:
				onReload()
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// awaitReady reports ready once a state is served, every issuer's keys
// have had their first load and the rate-limit store answers with its
// script loaded (the last two bounded: an identity provider or a Redis
// that is down must not keep the replica out for good; failureMode and
// the local fallback take over). A replica waiting for its control plane
// with no persisted state stays not ready.
func (r *replica) awaitReady(ctx context.Context) {
	go func() {
		if r.xds != nil {
			select {
			case <-ctx.Done():
				return
			case <-r.xds.Loaded():
			}
		}
		loadCtx, loaded := context.WithTimeout(ctx, startupWait)
		defer loaded()
		warmed := make(chan struct{})
		go func() {
			defer close(warmed)
			if err := r.warmLimiter(loadCtx); err != nil {
				r.log.Warn("rate-limit store not warmed up before ready", "error", err.Error())
			}
		}()
		r.jwks.WaitLoaded(loadCtx)
		<-warmed
		if ctx.Err() != nil {
			return
		}
		r.setServing()
		snap := r.store.Load()
		r.log.Info("tollgate started", "version", r.o.Version, "config", r.o.ConfigPath, "resources", snap.Version,
			"apis", len(snap.Catalog.APIs()), "applications", len(snap.Applications))
	}()
}

// goServe runs a server in the background; its failure ends Run.
func (r *replica) goServe(name string, fn func() error) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := fn(); err != nil && !errors.Is(err, http.ErrServerClosed) && !isStopped(err) {
			r.errs <- fmt.Errorf("%s server: %w", name, err)
		}
	}()
}

func (r *replica) listen(role, addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listener: %w", role, err)
	}
	r.log.Info("listening", "role", role, "addr", l.Addr().String())
	if r.o.Listening != nil {
		r.o.Listening(role, l.Addr().String())
	}
	return l, nil
}

// closeAll closes whatever was opened, on every way out of Run.
func (r *replica) closeAll() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
}

func (r *replica) onClose(f func()) { r.closers = append(r.closers, f) }

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}
