package config

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
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
func apiName(snap *Snapshot) string {
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

// observer records the results a Reloader reports; Watch reports them
// from its own goroutine.
type observer struct {
	mu      sync.Mutex
	results []bool
}

func (o *observer) observe(ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.results = append(o.results, ok)
}

func (o *observer) get() []bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.results)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newTestReloader loads path into a Store and returns a Reloader for it.
func newTestReloader(t *testing.T, path string, debounce time.Duration) (*Reloader, *Store, *observer) {
	t.Helper()
	snap, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	store := NewStore(snap)
	obs := &observer{}
	r := NewReloader(ReloaderOptions{
		Path: path, Store: store, Observe: obs.observe, Debounce: debounce, Log: testLogger(t),
	})
	return r, store, obs
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	path := writeConfig(t, dir, "config.yaml", configVersion("one"))
	r, store, obs := newTestReloader(t, path, 0)

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
		if tt.wantSwap && after.Source != path {
			t.Errorf("%s: Source = %q, want %q", tt.name, after.Source, path)
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

// TestReloadKeepsListen checks that a reload does not pretend to move the
// listeners: they are bound once, at start.
func TestReloadKeepsListen(t *testing.T) {
	dir := t.TempDir()
	path := writeConfig(t, dir, "config.yaml", configVersion("one"))
	r, store, obs := newTestReloader(t, path, 0)
	running := store.Load().Listen

	changed := append([]byte("listen: {http: \"127.0.0.1:0\"}\n"), configVersion("two")...)
	writeConfig(t, dir, "config.yaml", changed)
	if err := r.Reload(false); err != nil {
		t.Fatal(err)
	}
	snap := store.Load()
	if apiName(snap) != "two" || !slices.Equal(obs.get(), []bool{true}) {
		t.Fatalf("reload not applied: version %q, observed %v", apiName(snap), obs.get())
	}
	if snap.Listen != running {
		t.Errorf("Listen = %+v after reload, want the running %+v", snap.Listen, running)
	}
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

func storeHolds(store *Store, name string) func() bool {
	return func() bool { return apiName(store.Load()) == name }
}

func TestWatchPlainFile(t *testing.T) {
	dir := t.TempDir()
	path := writeConfig(t, dir, "config.yaml", configVersion("one"))
	r, store, obs := newTestReloader(t, path, 20*time.Millisecond)
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

	r, store, _ := newTestReloader(t, path, 20*time.Millisecond)
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
	// seen only if Watch followed the file to it. Watch adds the directory
	// just after swapping in "four", so the write is repeated until seen.
	eventually(t, "write into the new real directory", storeHolds(store, "five"), func() {
		writeConfig(t, dir, "..2024_c/config.yaml", configVersion("five"))
	})
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
