package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/tollgate/tollgate/internal/analytics"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/ratelimit"
)

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

// CheckRuntime makes the checks of what serve needs from the config that
// compiling cannot make — the events file can be written — so that
// validate never passes a config serve cannot start with.
func CheckRuntime(snap *config.Config) error {
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
// kills the pod. The collector's pace stays Go's default (GOGC=100, a
// heap goal of twice the live heap) unless GOGC is set: a larger GOGC
// saves little CPU per Check and lets RSS run to several times the live
// heap after a large load.
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
