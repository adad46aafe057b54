package config

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/filewatch"
	"github.com/tollgate/tollgate/internal/model"
)

// ReloaderOptions configure a Reloader.
type ReloaderOptions struct {
	Path  string
	Store *model.Store
	// Running is the bootstrap the process started with; a file whose
	// bootstrap differs is still loaded, with a warning that those
	// settings wait for a restart.
	Running Bootstrap
	// Digest is the digest of the file the running snapshot came from.
	Digest [sha256.Size]byte
	// Loaded, if set, is the config the running snapshot came from: a
	// reload then applies only what the file changes (see Reload).
	Loaded *Config
	Log    *slog.Logger
	// Observe is told the result of every reload attempt (for metrics).
	Observe func(ok bool)
	// Debounce groups the burst of events one atomic save (rename into
	// place) or ConfigMap update makes into one reload. Default 100ms.
	Debounce time.Duration
	// Settle is how long a file written in place must stay quiet (no
	// events, size and modification time unchanged) before it is
	// reloaded, so that a half-written file is not loaded. Default 2s.
	Settle time.Duration
	// Prepare, if set, runs on a valid new snapshot before it is
	// published (it binds the JWKS sources); an error keeps the old one.
	Prepare func(*model.Snapshot) error
	// Published, if set, runs after a new snapshot is swapped in.
	Published func(*model.Snapshot)
	// Loading, if set, runs before the file is compiled; the function
	// it returns runs after (the server paces the collector with it).
	Loading func() (done func())
}

// Reloader keeps a Store in step with its file: on a change of the file
// (including the symlink swap a Kubernetes ConfigMap volume performs) and
// on request (SIGHUP), the file is compiled and, if valid, swapped in.
// An invalid file leaves the running config in place.
//
// A file replaced atomically is reloaded after the short Debounce. A file
// written in place is reloaded only once it has settled (see Settle): a
// valid first half of a file must not be served, even briefly, since it
// may lack the line that blocks a subscription. Settling cannot tell a
// writer that pauses longer than Settle from one that has finished, so
// files should be replaced atomically where possible.
type Reloader struct {
	opts   ReloaderOptions
	mu     sync.Mutex // serialises reloads; never taken on the request path
	digest [sha256.Size]byte
	prev   *previous // what the last load left; nil: compile whole
}

// NewReloader returns a reloader.
func NewReloader(o ReloaderOptions) *Reloader {
	if o.Debounce <= 0 {
		o.Debounce = filewatch.DefaultDebounce
	}
	if o.Settle <= 0 {
		o.Settle = filewatch.DefaultSettle
	}
	if o.Observe == nil {
		o.Observe = func(bool) {}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Prepare == nil {
		o.Prepare = func(*model.Snapshot) error { return nil }
	}
	if o.Loading == nil {
		o.Loading = func() func() { return func() {} }
	}
	r := &Reloader{opts: o, digest: o.Digest}
	if l := o.Loaded; l != nil {
		r.prev = &previous{snap: l.Snapshot, versions: l.versions}
		r.opts.Loaded = nil // prev holds what is needed
	}
	return r
}

// Reload reads the file and swaps it in if valid. Unless force is set, a
// file whose bytes are unchanged is not reloaded (and not counted).
//
// A file that changes only applications, subscriptions or API keys is
// applied to the running snapshot: only what changed is compiled, the
// rest shared (a key added to a million costs its reading and about a
// second, not a whole compile). A forced reload (SIGHUP) compiles the
// file whole, and so reads again the files it names (JWKS, CA bundles).
func (r *Reloader) Reload(force bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	data, err := os.ReadFile(r.opts.Path)
	if err != nil {
		return r.failed(fmt.Errorf("reading config: %w", err))
	}
	if !force && sha256.Sum256(data) == r.digest {
		return nil
	}
	loaded := r.opts.Loading()
	prev := r.prev
	if force {
		prev = nil
	}
	cfg, err := compileAgainst(data, os.LookupEnv, filepath.Dir(r.opts.Path), prev)
	loaded()
	if err != nil {
		return r.failed(err)
	}
	snap := cfg.Snapshot
	if err := r.opts.Prepare(snap); err != nil {
		return r.failed(err)
	}
	if !reflect.DeepEqual(cfg.Bootstrap, r.opts.Running) {
		r.opts.Log.Warn("listen, rateLimit store, analytics, tracing, limits or admin settings changed in the config; they take effect after a restart")
	}
	r.opts.Store.Swap(snap)
	r.digest = cfg.Digest
	r.prev = &previous{snap: snap, versions: cfg.versions}
	r.opts.Observe(true)
	if r.opts.Published != nil {
		r.opts.Published(snap)
	}
	applied := "whole"
	if cfg.Difference {
		applied = "difference"
	}
	r.opts.Log.Info("config reloaded", "path", r.opts.Path, "version", snap.Version, "applied", applied,
		"apis", len(snap.Catalog.APIs()), "applications", len(snap.Applications), "api_keys", snap.APIKeys.Len())
	return nil
}

func (r *Reloader) failed(err error) error {
	r.opts.Observe(false)
	r.opts.Log.Error("config reload failed; keeping the running config", "path", r.opts.Path, "error", err.Error())
	return err
}

// Watch reloads on file changes until ctx is done. It reloads once right
// after the watch starts, so a change made since the file was first loaded
// is not missed. It uses an inotify instance of its own.
func (r *Reloader) Watch(ctx context.Context) error {
	w, err := filewatch.Start(r.opts.Path, filewatch.Options{
		Debounce: r.opts.Debounce, Settle: r.opts.Settle, Log: r.opts.Log,
	})
	if err != nil {
		return err
	}
	_ = r.Reload(false)
	w.Run(ctx, func() {
		_ = r.Reload(false) // failures are logged and counted
	})
	return nil
}
