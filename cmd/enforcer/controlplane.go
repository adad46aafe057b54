package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/controlplane"
)

func controlPlaneCommand(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("controlplane", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", os.Getenv("TOLLGATE_CONTROLPLANE_CONFIG"), "control-plane config file (default $TOLLGATE_CONTROLPLANE_CONFIG)")
	level := logLevelFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return usageError{"controlplane: --config is required"}
	}
	log, err := newLogger(*level, stderr, "controlplane")
	if err != nil {
		return err
	}
	cfg, err := config.LoadControlPlane(*path)
	if err != nil {
		var problems config.Problems
		if errors.As(err, &problems) {
			for _, p := range problems {
				log.Error("config problem", "problem", p.String())
			}
			return fmt.Errorf("cannot start: %s is not valid (%s, logged above)", *path, plural(len(problems), "problem"))
		}
		return fmt.Errorf("cannot start: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return controlplane.Run(ctx, controlplane.Options{Config: cfg, Log: log})
}
