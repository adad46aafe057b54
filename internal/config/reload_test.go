package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/model"
)

// configVersion is a valid config whose one API is named name, so that a
// test can tell which version a snapshot was compiled from.
func configVersion(name string) []byte {
	return fmt.Appendf(nil, `
apis:
  - id: petstore
    name: %s
    security: [none]
    operations: [{path: /pets}]
`, name)
}

// invalidConfig fails validation (unknown key).
var invalidConfig = []byte("apis:\n  - id: petstore\n    nmae: typo\n")

// apiName returns the name of snap's petstore API, the version marker of
// configVersion.
func apiName(snap *model.Snapshot) string {
	if snap == nil || snap.Catalog == nil {
		return "<no snapshot>"
	}
	api := snap.Catalog.API("petstore")
	if api == nil {
		return "<no petstore API>"
	}
	return api.Name
}

// writeConfig writes data to dir/name, creating directories, and returns
// the file's path.
func writeConfig(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// observer records the results a Reloader reports, and the snapshot each
// successful reload put in the Store; Watch reports them from its own
// goroutine.
type observer struct {
	store *model.Store

	mu        sync.Mutex
	results   []bool
	snapshots []*model.Snapshot
}

func (o *observer) observe(ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.results = append(o.results, ok)
	if ok {
		o.snapshots = append(o.snapshots, o.store.Load())
	}
}

// held returns the snapshots reloads have put in the Store, oldest first.
func (o *observer) held() []*model.Snapshot {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.snapshots)
}

func (o *observer) get() []bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.results)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newTestReloader loads path into a Store and returns a Reloader for it,
// with o's timings.
func newTestReloader(t *testing.T, path string, o ReloaderOptions) (*Reloader, *model.Store, *observer) {
	t.Helper()
	snap, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	store := model.NewStore(snap.Snapshot)
	obs := &observer{store: store}
	o.Path, o.Store, o.Observe, o.Log = path, store, obs.observe, testLogger(t)
	o.Running, o.Digest = snap.Bootstrap, snap.Digest
	return NewReloader(o), store, obs
}

// fastWatch are timings for tests that rewrite a file in place until the
// change is seen: the settle window is shorter than eventually's pokes.
var fastWatch = ReloaderOptions{Debounce: 20 * time.Millisecond, Settle: 100 * time.Millisecond}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	path := writeConfig(t, dir, "config.yaml", configVersion("one"))
	r, store, obs := newTestReloader(t, path, ReloaderOptions{})

	// Each step changes the file (write, or remove when remove is set),
	// calls Reload(force) and checks the result against what the steps
	// before it left behind.
	tests := []struct {
		name     string
		write    []byte
		remove   bool
		force    bool
		wantErr  bool
		wantSwap bool   // a new snapshot is in the Store
		wantName string // API name of the snapshot in the Store afterwards
		observed []bool // everything Observe was told, so far
	}{
		{name: "unchanged", wantName: "one"},
		{name: "unchanged, forced", force: true, wantSwap: true, wantName: "one", observed: []bool{true}},
		{name: "new valid file", write: configVersion("two"), wantSwap: true, wantName: "two", observed: []bool{true, true}},
		{name: "same bytes rewritten", write: configVersion("two"), wantName: "two", observed: []bool{true, true}},
		{name: "invalid file", write: invalidConfig, wantErr: true, wantName: "two", observed: []bool{true, true, false}},
		{name: "invalid file again", wantErr: true, wantName: "two", observed: []bool{true, true, false, false}},
		{name: "running version restored", write: configVersion("two"), wantName: "two", observed: []bool{true, true, false, false}},
		{name: "file removed", remove: true, wantErr: true, wantName: "two", observed: []bool{true, true, false, false, false}},
		{name: "file back", write: configVersion("three"), wantSwap: true, wantName: "three", observed: []bool{true, true, false, false, false, true}},
	}
	for _, tt := range tests {
		if tt.write != nil {
			writeConfig(t, dir, "config.yaml", tt.write)
		}
		if tt.remove {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}
		before := store.Load()
		err := r.Reload(tt.force)
		if gotErr := err != nil; gotErr != tt.wantErr {
			t.Errorf("%s: Reload error = %v, want error: %v", tt.name, err, tt.wantErr)
		}
		after := store.Load()
		if swapped := after != before; swapped != tt.wantSwap {
			t.Errorf("%s: snapshot swapped = %v, want %v", tt.name, swapped, tt.wantSwap)
		}
		if got := apiName(after); got != tt.wantName {
			t.Errorf("%s: Store holds version %q, want %q", tt.name, got, tt.wantName)
		}
		if tt.wantSwap && after.Version == before.Version && !tt.force {
			t.Errorf("%s: Version stayed %q after a change", tt.name, after.Version)
		}
		if got := obs.get(); !slices.Equal(got, tt.observed) {
			t.Errorf("%s: Observe calls = %v, want %v", tt.name, got, tt.observed)
		}
		if tt.remove && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: error %v does not wrap fs.ErrNotExist", tt.name, err)
		}
		if tt.wantErr && !tt.remove {
			problemsOf(t, err)
		}
	}
}

// TestReloadWarnsOfBootstrapChanges checks that a reload applies the
// resources of a file whose bootstrap changed, and says that the
// bootstrap waits for a restart: the listeners are bound once, at start.
func TestReloadWarnsOfBootstrapChanges(t *testing.T) {
	dir := t.TempDir()
	path := writeConfig(t, dir, "config.yaml", configVersion("one"))
	var logs syncBuffer
	r, store, obs := newTestReloader(t, path, ReloaderOptions{})
	r.opts.Log = slog.New(slog.NewTextHandler(&logs, nil))

	changed := append([]byte("listen: {http: \"127.0.0.1:0\"}\n"), configVersion("two")...)
	writeConfig(t, dir, "config.yaml", changed)
	if err := r.Reload(false); err != nil {
		t.Fatal(err)
	}
	snap := store.Load()
	if apiName(snap) != "two" || !slices.Equal(obs.get(), []bool{true}) {
		t.Fatalf("reload not applied: version %q, observed %v", apiName(snap), obs.get())
	}
	if !strings.Contains(logs.String(), "take effect after a restart") {
		t.Errorf("no warning that the listen change waits for a restart; logs:\n%s", logs.String())
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// eventually polls cond every 10ms until it holds, failing the test after
// 5s. If poke is set it is called at once and then every 250ms, for changes
// that a watcher which is not yet running would miss.
func eventually(t *testing.T, what string, cond func() bool, poke func()) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var poked time.Time
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		if poke != nil && time.Since(poked) >= 250*time.Millisecond {
			poke()
			poked = time.Now()
		}
		<-tick.C
	}
}

// startWatch runs r.Watch until the test ends, and checks that it returns
// nil once its context is cancelled.
func startWatch(t *testing.T, r *Reloader) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Watch(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Watch returned %v, want nil after cancel", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Watch did not return within 5s of cancel")
		}
	})
}

func storeHolds(store *model.Store, name string) func() bool {
	return func() bool { return apiName(store.Load()) == name }
}

func TestWatchPlainFile(t *testing.T) {
	dir := t.TempDir()
	path := writeConfig(t, dir, "config.yaml", configVersion("one"))
	r, store, obs := newTestReloader(t, path, fastWatch)
	startWatch(t, r)

	// In place, as `echo > config.yaml` does. Rewritten until seen: Watch
	// may not have its watch in place yet.
	eventually(t, "in-place rewrite", storeHolds(store, "two"), func() {
		writeConfig(t, dir, "config.yaml", configVersion("two"))
	})

	// Replaced by rename, as editors save.
	tmp := writeConfig(t, dir, ".config.yaml.swp", configVersion("three"))
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	eventually(t, "rename over the file", storeHolds(store, "three"), nil)

	// An invalid save is counted and leaves the running config.
	failures := func() int { return len(slices.DeleteFunc(obs.get(), func(ok bool) bool { return ok })) }
	writeConfig(t, dir, "config.yaml", invalidConfig)
	eventually(t, "a failed reload", func() bool { return failures() > 0 }, nil)
	if got := apiName(store.Load()); got != "three" {
		t.Errorf("after an invalid save the Store holds %q, want three", got)
	}

	// Fixing the file is picked up again.
	writeConfig(t, dir, "config.yaml", configVersion("four"))
	eventually(t, "the fixed file", storeHolds(store, "four"), nil)
}

// TestWatchConfigMap simulates a Kubernetes ConfigMap volume: the file is
// a symlink through ..data to a timestamped directory, and an update swaps
// the ..data symlink atomically.
func TestWatchConfigMap(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, "..2024_a/config.yaml", configVersion("one"))
	symlink(t, "..2024_a", filepath.Join(dir, "..data"))
	symlink(t, filepath.Join("..data", "config.yaml"), filepath.Join(dir, "config.yaml"))
	path := filepath.Join(dir, "config.yaml")

	r, store, _ := newTestReloader(t, path, fastWatch)
	if got := apiName(store.Load()); got != "one" {
		t.Fatalf("initial version %q, want one", got)
	}
	startWatch(t, r)

	// A write through the symlinks lands in ..2024_a, which Watch must
	// watch as the file's real directory.
	eventually(t, "write through the symlinks", storeHolds(store, "two"), func() {
		writeConfig(t, dir, "config.yaml", configVersion("two"))
	})

	configMapUpdate(t, dir, "..2024_a", "..2024_b", configVersion("three"))
	eventually(t, "first ConfigMap update", storeHolds(store, "three"), nil)

	configMapUpdate(t, dir, "..2024_b", "..2024_c", configVersion("four"))
	eventually(t, "second ConfigMap update", storeHolds(store, "four"), nil)

	// After the swaps the real directory is ..2024_c; a change there is
	// seen only if Watch followed the file to it. Watch does so before
	// reloading, so a single write made after "four" is in is seen.
	writeConfig(t, dir, "..2024_c/config.yaml", configVersion("five"))
	eventually(t, "write into the new real directory", storeHolds(store, "five"), nil)
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// configMapUpdate does what the kubelet does to update a ConfigMap volume:
// write the new files into a fresh directory, point ..data_tmp at it,
// rename ..data_tmp over ..data, and remove the old directory.
func configMapUpdate(t *testing.T, dir, oldTS, newTS string, data []byte) {
	t.Helper()
	writeConfig(t, dir, filepath.Join(newTS, "config.yaml"), data)
	symlink(t, newTS, filepath.Join(dir, "..data_tmp"))
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, oldTS)); err != nil {
		t.Fatal(err)
	}
}

// replaceConfig writes data next to dir/name and renames it into place,
// as editors save.
func replaceConfig(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	tmp := writeConfig(t, dir, "."+name+".tmp", data)
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// ordersAPI, appended to configVersion, adds a second API: it is the part
// of the file a slow writer has not written yet.
var ordersAPI = []byte(`  - id: orders
    name: orders
    security: [none]
    operations: [{path: /orders}]
`)

func hasOrders(snap *model.Snapshot) bool { return snap.Catalog.API("orders") != nil }

// TestWatchWaitsForInPlaceWriteToSettle rewrites the config in place in
// two chunks, pausing with the file open after a first chunk that is a
// valid config on its own. Within the settle window the pause must not
// get the first half loaded; settling cannot protect a longer pause.
func TestWatchWaitsForInPlaceWriteToSettle(t *testing.T) {
	firstHalf := configVersion("two") // the rest is ordersAPI
	tests := []struct {
		name          string
		settle, pause time.Duration
		wantHalfHeld  bool
	}{
		{name: "pause shorter than the settle window", settle: 2 * time.Second, pause: 1500 * time.Millisecond},
		{name: "pause longer than the settle window", settle: 300 * time.Millisecond, pause: 1500 * time.Millisecond, wantHalfHeld: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := writeConfig(t, dir, "config.yaml", configVersion("one"))
			r, store, obs := newTestReloader(t, path, ReloaderOptions{Debounce: 20 * time.Millisecond, Settle: tt.settle})
			// Changed before Watch starts: its first reload, made once its
			// watch is in place, loads "ready", which shows the watch is live.
			replaceConfig(t, dir, "config.yaml", configVersion("ready"))
			startWatch(t, r)
			eventually(t, "the watch to start", storeHolds(store, "ready"), nil)
			heldBefore := len(obs.held())

			f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(firstHalf); err != nil {
				t.Fatal(err)
			}
			time.Sleep(tt.pause) // the writer's pause, part of the scenario
			if _, err := f.Write(ordersAPI); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the complete file", func() bool {
				snap := store.Load()
				return apiName(snap) == "two" && hasOrders(snap)
			}, nil)

			var halfHeld bool
			held := obs.held()[heldBefore:]
			for _, snap := range held {
				switch {
				case apiName(snap) == "two" && hasOrders(snap): // the complete file
				case apiName(snap) == "two":
					halfHeld = true
				default:
					t.Errorf("during the write the Store held version %q, neither half nor all of the file", apiName(snap))
				}
			}
			if halfHeld != tt.wantHalfHeld {
				t.Errorf("the Store held the first half: %v, want %v (%d snapshots held during the write)", halfHeld, tt.wantHalfHeld, len(held))
			}
		})
	}
}

// TestWatchAtomicReplacementSkipsSettle checks that with the default 2s
// settle window, files replaced atomically are still reloaded after the
// short debounce: they are complete when they appear.
func TestWatchAtomicReplacementSkipsSettle(t *testing.T) {
	tests := []struct {
		name   string
		layout func(t *testing.T, dir string) string // returns the config's path
		ready  func(t *testing.T, dir string)        // the change made before Watch starts
		change func(t *testing.T, dir string)
	}{
		{
			name:   "rename over the file",
			layout: func(t *testing.T, dir string) string { return writeConfig(t, dir, "config.yaml", configVersion("one")) },
			ready:  func(t *testing.T, dir string) { replaceConfig(t, dir, "config.yaml", configVersion("ready")) },
			change: func(t *testing.T, dir string) { replaceConfig(t, dir, "config.yaml", configVersion("two")) },
		},
		{
			name: "ConfigMap ..data swap",
			layout: func(t *testing.T, dir string) string {
				writeConfig(t, dir, "..2024_a/config.yaml", configVersion("one"))
				symlink(t, "..2024_a", filepath.Join(dir, "..data"))
				symlink(t, filepath.Join("..data", "config.yaml"), filepath.Join(dir, "config.yaml"))
				return filepath.Join(dir, "config.yaml")
			},
			ready: func(t *testing.T, dir string) {
				configMapUpdate(t, dir, "..2024_a", "..2024_b", configVersion("ready"))
			},
			change: func(t *testing.T, dir string) { configMapUpdate(t, dir, "..2024_b", "..2024_c", configVersion("two")) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := tt.layout(t, dir)
			r, store, _ := newTestReloader(t, path, ReloaderOptions{})
			if r.opts.Settle != 2*time.Second {
				t.Fatalf("default settle window %v, want 2s", r.opts.Settle)
			}
			tt.ready(t, dir)
			startWatch(t, r)
			eventually(t, "the watch to start", storeHolds(store, "ready"), nil)

			changed := time.Now()
			tt.change(t, dir)
			eventually(t, "the replaced file", storeHolds(store, "two"), nil)
			if elapsed := time.Since(changed); elapsed > time.Second {
				t.Errorf("an atomic replacement was reloaded after %v, want within 1s", elapsed)
			}
		})
	}
}
