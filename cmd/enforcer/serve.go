package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/tollgate/tollgate/internal/server"
)

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
