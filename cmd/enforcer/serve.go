package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/tollgate/tollgate/internal/server"
)

// defaultGCPercent replaces Go's GOGC=100 unless GOGC is set. Tollgate's
// live heap is small (the config and bounded caches), so letting it grow
// four times before a collection costs little memory and saves much of
// the CPU a Check would otherwise spend on garbage collection (measured
// with `make bench`). Set GOMEMLIMIT as well in containers.
const defaultGCPercent = 400

func serveCommand(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	level := logLevelFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return usageError{"serve: --config is required"}
	}
	log, err := newLogger(*level, stderr, "serve")
	if err != nil {
		return err
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return server.Run(ctx, server.Options{ConfigPath: *path, Log: log, Version: version})
}

func logLevelFlag(fs *flag.FlagSet) *string {
	return fs.String("log-level", envOr("TOLLGATE_LOG_LEVEL", "info"), "debug, info, warn or error (default $TOLLGATE_LOG_LEVEL or info)")
}

func newLogger(level string, w io.Writer, command string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Sprintf("%s: bad --log-level %q", command, level)}
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl})), nil
}

func envOr(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}
