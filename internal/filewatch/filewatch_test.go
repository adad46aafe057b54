package filewatch

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/filewatch/filewatchtest"
)

// recorder is an onChange that records what the file held at each call.
type recorder struct {
	path string

	mu    sync.Mutex
	reads []string // content, or "<error>" if the file could not be read
	times []time.Time
}

func (r *recorder) onChange() {
	content := "<error>"
	if data, err := os.ReadFile(r.path); err == nil {
		content = string(data)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reads = append(r.reads, content)
	r.times = append(r.times, time.Now())
}

func (r *recorder) calls() ([]string, []time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reads), slices.Clone(r.times)
}

func (r *recorder) lastRead() string {
	reads, _ := r.calls()
	if len(reads) == 0 {
		return "<no call>"
	}
	return reads[len(reads)-1]
}

// waitUntil polls cond until it holds, failing the test after 5s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

func newTestHub(t *testing.T, o Options) *Hub {
	t.Helper()
	o.Log = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, err := NewHub(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h
}

func watch(t *testing.T, h *Hub, path string) *recorder {
	t.Helper()
	r := &recorder{path: path}
	if _, err := h.Watch(path, r.onChange); err != nil {
		t.Fatal(err)
	}
	return r
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replace writes content next to path and renames it into place, as
// editors and config management save.
func replace(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	write(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// configMap lays out dir as a Kubernetes ConfigMap volume holding
// config.yaml in the timestamped directory ts, and returns the file's path.
func configMap(t *testing.T, dir, ts, content string) string {
	t.Helper()
	write(t, filepath.Join(dir, ts, "config.yaml"), content)
	symlink(t, ts, filepath.Join(dir, "..data"))
	symlink(t, filepath.Join("..data", "config.yaml"), filepath.Join(dir, "config.yaml"))
	return filepath.Join(dir, "config.yaml")
}

// configMapUpdate does what the kubelet does: write the new files into a
// fresh directory, point ..data_tmp at it, rename ..data_tmp over ..data,
// and remove the old directory.
func configMapUpdate(t *testing.T, dir, oldTS, newTS, content string) {
	t.Helper()
	write(t, filepath.Join(dir, newTS, "config.yaml"), content)
	symlink(t, newTS, filepath.Join(dir, "..data_tmp"))
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, oldTS)); err != nil {
		t.Fatal(err)
	}
}

// TestKindsOfChange checks that each way a file changes is reported, and
// when: atomic replacements after the short debounce, writes in place
// only once the file has settled.
func TestKindsOfChange(t *testing.T) {
	const settle = time.Second
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string) string // lays out the file, returns its path
		change  func(t *testing.T, dir, path string)
		want    string // what the file holds afterwards
		inPlace bool   // reported only after the settle window
	}{
		{
			name:   "renamed into place",
			setup:  func(t *testing.T, dir string) string { p := filepath.Join(dir, "f"); write(t, p, "old"); return p },
			change: func(t *testing.T, _, path string) { replace(t, path, "new") },
			want:   "new",
		},
		{
			name:   "ConfigMap symlink swap",
			setup:  func(t *testing.T, dir string) string { return configMap(t, dir, "..ts_a", "old") },
			change: func(t *testing.T, dir, _ string) { configMapUpdate(t, dir, "..ts_a", "..ts_b", "new") },
			want:   "new",
		},
		{
			name:   "removed",
			setup:  func(t *testing.T, dir string) string { p := filepath.Join(dir, "f"); write(t, p, "old"); return p },
			change: func(t *testing.T, _, path string) { _ = os.Remove(path) },
			want:   "<error>",
		},
		{
			name:    "written in place",
			setup:   func(t *testing.T, dir string) string { p := filepath.Join(dir, "f"); write(t, p, "old"); return p },
			change:  func(t *testing.T, _, path string) { write(t, path, "new") },
			want:    "new",
			inPlace: true,
		},
		{
			name:  "truncated in place",
			setup: func(t *testing.T, dir string) string { p := filepath.Join(dir, "f"); write(t, p, "old"); return p },
			change: func(t *testing.T, _, path string) {
				if err := os.Truncate(path, 0); err != nil {
					t.Fatal(err)
				}
			},
			want:    "",
			inPlace: true,
		},
		{
			name:    "written through the symlinks",
			setup:   func(t *testing.T, dir string) string { return configMap(t, dir, "..ts_a", "old") },
			change:  func(t *testing.T, _, path string) { write(t, path, "new") },
			want:    "new",
			inPlace: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := tt.setup(t, dir)
			h := newTestHub(t, Options{Debounce: 20 * time.Millisecond, Settle: settle})
			r := watch(t, h, path)

			changed := time.Now()
			tt.change(t, dir, path)
			waitUntil(t, "the change to be reported", func() bool { return r.lastRead() == tt.want })
			reads, times := r.calls()
			elapsed := times[0].Sub(changed)
			if tt.inPlace && elapsed < settle {
				t.Errorf("reported %v after a write in place, before the %v settle window", elapsed, settle)
			}
			if !tt.inPlace && elapsed >= settle {
				t.Errorf("reported %v after an atomic change, want the debounce, not the %v settle window", elapsed, settle)
			}
			if len(reads) != 1 {
				t.Errorf("reported %d times (%q), want once", len(reads), reads)
			}
		})
	}
}

// TestSettleAndSlowWriter writes a file in place in two chunks with a
// pause between them, holding it open: a pause within the settle window
// is not reported as a change, one longer than the window is.
func TestSettleAndSlowWriter(t *testing.T) {
	const firstHalf, rest = "apis: [petstore", ", orders]\n"
	tests := []struct {
		name          string
		settle, pause time.Duration
		wantHalfRead  bool
	}{
		{name: "pause shorter than the settle window", settle: time.Second, pause: 400 * time.Millisecond},
		// Settling alone cannot tell a paused writer from a finished one.
		{name: "pause longer than the settle window", settle: 200 * time.Millisecond, pause: time.Second, wantHalfRead: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "f")
			write(t, path, "apis: []\n")
			h := newTestHub(t, Options{Debounce: 20 * time.Millisecond, Settle: tt.settle})
			r := watch(t, h, path)

			f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString(firstHalf); err != nil {
				t.Fatal(err)
			}
			time.Sleep(tt.pause) // the writer's pause, part of the scenario
			if _, err := f.WriteString(rest); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}

			waitUntil(t, "the full file to be reported", func() bool { return r.lastRead() == firstHalf+rest })
			reads, _ := r.calls()
			if got := slices.Contains(reads, firstHalf); got != tt.wantHalfRead {
				t.Errorf("first half reported: %v, want %v (reads %q)", got, tt.wantHalfRead, reads)
			}
			if slices.Contains(reads, "") {
				t.Errorf("the truncated, empty file was reported (reads %q)", reads)
			}
		})
	}
}

// TestStopEndsCallbacks stops one of two files in a directory and checks
// that it is not called again, and that the directory's inotify watch
// goes with the last file that needs it.
func TestStopEndsCallbacks(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	write(t, a, "a1")
	write(t, b, "b1")
	h := newTestHub(t, Options{Debounce: 20 * time.Millisecond})
	ra, rb := &recorder{path: a}, &recorder{path: b}
	wa, err := h.Watch(a, ra.onChange)
	if err != nil {
		t.Fatal(err)
	}
	wb, err := h.Watch(b, rb.onChange)
	if err != nil {
		t.Fatal(err)
	}

	wa.Stop()
	// a changes first: had it still been watched, it would have been
	// called by the time b has been called twice.
	replace(t, a, "a2")
	replace(t, b, "b2")
	waitUntil(t, "b's change", func() bool { return rb.lastRead() == "b2" })
	replace(t, b, "b3")
	waitUntil(t, "b's second change", func() bool { return rb.lastRead() == "b3" })
	if reads, _ := ra.calls(); len(reads) != 0 {
		t.Errorf("a stopped watch was called: %q", reads)
	}
	if got := h.notify.WatchList(); len(got) != 1 {
		t.Errorf("inotify watches %q while b is watched, want its directory only", got)
	}

	wb.Stop()
	if got := h.notify.WatchList(); len(got) != 0 {
		t.Errorf("inotify watches %q after every file was stopped, want none", got)
	}
}

// TestFollowsConfigMapSwaps checks that after a ConfigMap update the
// new timestamped directory is watched, and the old one is let go.
func TestFollowsConfigMapSwaps(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	path := configMap(t, dir, "..ts_a", "one")
	h := newTestHub(t, Options{Debounce: 20 * time.Millisecond, Settle: 100 * time.Millisecond})
	r := watch(t, h, path)

	configMapUpdate(t, dir, "..ts_a", "..ts_b", "two")
	waitUntil(t, "the ConfigMap update", func() bool { return r.lastRead() == "two" })
	// The directory is followed before the callback, so a write in the
	// new directory right after it is seen.
	write(t, filepath.Join(dir, "..ts_b", "config.yaml"), "three")
	waitUntil(t, "a write in the new directory", func() bool { return r.lastRead() == "three" })

	got := h.notify.WatchList()
	slices.Sort(got)
	if want := []string{dir, filepath.Join(dir, "..ts_b")}; !slices.Equal(got, want) {
		t.Errorf("inotify watches %q, want %q", got, want)
	}
}

// TestOneInstanceForManyFiles checks that a Hub holds one inotify
// instance however many files it watches, and releases it on Close.
func TestOneInstanceForManyFiles(t *testing.T) {
	before := inotifyInstances(t)
	h, err := NewHub(Options{})
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for i := range 150 {
		path := filepath.Join(root, string(rune('a'+i%26))+string(rune('a'+i/26)), "keys.json")
		write(t, path, "{}")
		if _, err := h.Watch(path, func() {}); err != nil {
			t.Fatal(err)
		}
	}
	if got := inotifyInstances(t) - before; got != 1 {
		t.Errorf("watching 150 files holds %d inotify instances, want 1", got)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if got := inotifyInstances(t) - before; got != 0 {
		t.Errorf("%d inotify instances left after Close, want 0", got)
	}
}

func inotifyInstances(t *testing.T) int {
	t.Helper()
	n, err := filewatchtest.InotifyInstances()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWatchErrors(t *testing.T) {
	closed := newTestHub(t, Options{})
	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		hub     *Hub
		path    string
		wantErr error // nil: any error
	}{
		{name: "directory missing", hub: newTestHub(t, Options{}), path: filepath.Join(t.TempDir(), "missing", "f")},
		{name: "hub closed", hub: closed, path: filepath.Join(t.TempDir(), "f"), wantErr: ErrClosed},
	}
	for _, tt := range tests {
		_, err := tt.hub.Watch(tt.path, func() {})
		if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
			t.Errorf("%s: Watch error = %v, want %v", tt.name, err, tt.wantErr)
		}
	}
}

// TestStartRun checks the single-file entry point: changes reach onChange
// in Run's goroutine, and Run releases the inotify instance when ctx ends.
func TestStartRun(t *testing.T) {
	before := inotifyInstances(t)
	path := filepath.Join(t.TempDir(), "config.yaml")
	write(t, path, "one")
	w, err := Start(path, Options{Debounce: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &recorder{path: path}
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx, r.onChange)
	}()

	replace(t, path, "two")
	waitUntil(t, "the change", func() bool { return r.lastRead() == "two" })
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of cancel")
	}
	if got := inotifyInstances(t) - before; got != 0 {
		t.Errorf("%d inotify instances left after Run returned, want 0", got)
	}
}
