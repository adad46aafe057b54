package config

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// ReloaderOptions configure a Reloader.
type ReloaderOptions struct {
	Path  string
	Store *Store
	Log   *slog.Logger
	// Observe is told the result of every reload attempt (for metrics).
	Observe func(ok bool)
	// Debounce groups the burst of events one save or ConfigMap update
	// makes into one reload. Default 100ms.
	Debounce time.Duration
}

// Reloader keeps a Store in step with its file: on a change of the file
// (including the symlink swap a Kubernetes ConfigMap volume performs) and
// on request (SIGHUP), the file is compiled and, if valid, swapped in.
// An invalid file leaves the running config in place.
type Reloader struct {
	opts ReloaderOptions
	mu   sync.Mutex // serialises reloads; never taken on the request path
}

// NewReloader returns a reloader.
func NewReloader(o ReloaderOptions) *Reloader {
	if o.Debounce <= 0 {
		o.Debounce = 100 * time.Millisecond
	}
	if o.Observe == nil {
		o.Observe = func(bool) {}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Reloader{opts: o}
}

// Reload reads the file and swaps it in if valid. Unless force is set, a
// file whose bytes are unchanged is not reloaded (and not counted).
func (r *Reloader) Reload(force bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	data, err := os.ReadFile(r.opts.Path)
	if err != nil {
		return r.failed(fmt.Errorf("reading config: %w", err))
	}
	cur := r.opts.Store.Load()
	if !force && sha256.Sum256(data) == cur.Digest {
		return nil
	}
	snap, err := Compile(data, os.LookupEnv)
	if err != nil {
		return r.failed(err)
	}
	snap.Source = r.opts.Path
	if snap.Listen != cur.Listen {
		r.opts.Log.Warn("listen addresses changed in the config; they take effect after a restart",
			"running", cur.Listen, "configured", snap.Listen)
		snap.Listen = cur.Listen
	}
	r.opts.Store.Swap(snap)
	r.opts.Observe(true)
	r.opts.Log.Info("config reloaded", "path", r.opts.Path, "digest", hex.EncodeToString(snap.Digest[:6]),
		"apis", len(snap.Catalog.APIs()), "applications", len(snap.Applications), "api_keys", snap.APIKeys.Len())
	return nil
}

func (r *Reloader) failed(err error) error {
	r.opts.Observe(false)
	r.opts.Log.Error("config reload failed; keeping the running config", "path", r.opts.Path, "error", err.Error())
	return err
}

// Watch reloads on file changes until ctx is done. It watches the file's
// directory, not the file: editors and ConfigMap updates replace files
// and symlinks, which a watch on the file itself would lose.
func (r *Reloader) Watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching config: %w", err)
	}
	defer w.Close()
	watched := map[string]bool{}
	watchDirs := func() {
		dirs := []string{filepath.Dir(r.opts.Path)}
		if real, err := filepath.EvalSymlinks(r.opts.Path); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
		for _, d := range dirs {
			if watched[d] {
				continue
			}
			if err := w.Add(d); err != nil {
				r.opts.Log.Warn("cannot watch config directory", "dir", d, "error", err.Error())
				continue
			}
			watched[d] = true
		}
	}
	watchDirs()

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				delete(watched, ev.Name) // a watched directory may have gone
			}
			timer.Reset(r.opts.Debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			r.opts.Log.Warn("config watch error", "error", err.Error())
		case <-timer.C:
			_ = r.Reload(false) // failures are logged and counted
			watchDirs()
		}
	}
}
