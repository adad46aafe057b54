// Package filewatch tells when a file may have changed, in the ways files
// change in production: edited in place, replaced by rename (editors,
// config management) or swapped through a symlink (Kubernetes ConfigMap
// and Secret volumes).
//
// A Hub watches any number of files with one inotify instance (Linux
// allows 128 per user by default, so one per file does not scale). It
// watches each file's directory, and the directory of the file its
// symlinks resolve to, rather than the file itself: a watch on a file is
// lost when the file is replaced.
//
// When a change is reported depends on how the file changed since it was
// last reported:
//
//   - Replaced atomically (renamed into place, or a symlink swapped, with
//     no write seen to the file itself): the new file is complete when it
//     appears, so the change is reported once events stop for
//     Options.Debounce (default 100ms), which groups the burst one save
//     makes.
//   - Written in place (any write event on the file or its symlink
//     target, including the truncation that starts a rewrite): it may be
//     half-written, so the change is reported only once the file has been
//     quiet for Options.Settle (default 2s): no further events, and its
//     size and modification time unchanged over the window. A writer that
//     pauses for longer than the settle window mid-file is not protected;
//     write such files atomically.
//
// Callers re-read the file when told and should check whether its
// content really changed: a name that appears, goes or is renamed in a
// directory is reported to every file watched there, since it may be a
// link on the way to them. Writes to other files are ignored.
package filewatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Defaults for Options.
const (
	DefaultDebounce = 100 * time.Millisecond
	DefaultSettle   = 2 * time.Second
)

// ErrClosed is returned by Hub.Watch after Close.
var ErrClosed = errors.New("filewatch: hub closed")

// Options configure a Hub. Zero values take the defaults.
type Options struct {
	// Debounce is how long events must stop after an atomic replacement
	// before the change is reported.
	Debounce time.Duration
	// Settle is how long a file written in place must stay quiet (no
	// events, same size and modification time) before the change is
	// reported, so that a half-written file is not read.
	Settle time.Duration
	Log    *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Debounce <= 0 {
		o.Debounce = DefaultDebounce
	}
	if o.Settle <= 0 {
		o.Settle = DefaultSettle
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// Hub owns one inotify instance and reports changes of the files watched
// through it, each to its own callback.
type Hub struct {
	opts     Options
	notify   *fsnotify.Watcher
	loopDone chan struct{}

	mu      sync.Mutex // guards the fields below and Watch.dirs and Watch.target
	closed  bool
	dirs    map[string]*watchedDir
	watches map[*Watch]struct{}
}

// watchedDir is a directory in the inotify instance and the files that
// need it. active is false when the directory was removed or moved away,
// which ends its inotify watch; it is added again when next needed.
type watchedDir struct {
	watches map[*Watch]struct{}
	active  bool
}

// NewHub starts a Hub. Close it to release its inotify instance.
func NewHub(o Options) (*Hub, error) {
	notify, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("starting a file watcher: %w", err)
	}
	h := &Hub{
		opts: o.withDefaults(), notify: notify, loopDone: make(chan struct{}),
		dirs: map[string]*watchedDir{}, watches: map[*Watch]struct{}{},
	}
	go h.loop()
	return h, nil
}

// Watch starts watching path and calls onChange, from a goroutine of its
// own, after each change (see the package doc for when). Calls for one
// file do not overlap. A change made after Watch returns is reported, so
// a caller that reads the file after Watch misses nothing.
//
// It fails if the file's directory cannot be watched, since the file
// would then never be re-read.
func (h *Hub) Watch(path string, onChange func()) (*Watch, error) {
	path, err := canonicalPath(path)
	if err != nil {
		return nil, fmt.Errorf("watching %s: %w", path, err)
	}
	w := &Watch{hub: h, path: path, onChange: onChange, dirs: map[string]struct{}{}}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	h.watches[w] = struct{}{}
	h.mu.Unlock()
	if err := h.refresh(w); err != nil {
		w.Stop()
		return nil, err
	}
	return w, nil
}

// Close stops every watch and releases the inotify instance. A callback
// under way finishes first, so Close must not be called from one.
func (h *Hub) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	watches := make([]*Watch, 0, len(h.watches))
	for w := range h.watches {
		watches = append(watches, w)
	}
	h.mu.Unlock()
	for _, w := range watches {
		w.Stop()
	}
	err := h.notify.Close()
	<-h.loopDone
	return err
}

func (h *Hub) loop() {
	defer close(h.loopDone)
	for {
		select {
		case ev, ok := <-h.notify.Events:
			if !ok {
				return
			}
			h.dispatch(ev)
		case err, ok := <-h.notify.Errors:
			if !ok {
				return
			}
			h.opts.Log.Warn("file watch error", "error", err.Error())
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				h.noteAll() // events were lost: any file may have changed
			}
		}
	}
}

// dispatch tells every file watched in the event's directory about it.
func (h *Hub) dispatch(ev fsnotify.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if d := h.dirs[ev.Name]; d != nil && (ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename)) {
		// A watched directory itself went away, and its inotify watch
		// with it; the files in it count as removed.
		d.active = false
		for w := range d.watches {
			w.note(w.path, fsnotify.Remove)
		}
	}
	if d := h.dirs[filepath.Dir(ev.Name)]; d != nil {
		for w := range d.watches {
			w.note(ev.Name, ev.Op)
		}
	}
}

func (h *Hub) noteAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watches {
		w.note(w.path, fsnotify.Write) // unknown: settle, to be safe
	}
}

// refresh resolves w's symlinks again and watches the directories that
// now hold the file and its target. An error means the file's own
// directory cannot be watched; a target directory that cannot be watched
// is only logged, since changes through the symlink are still seen.
func (h *Hub) refresh(w *Watch) error {
	target := w.path
	if real, err := filepath.EvalSymlinks(w.path); err == nil {
		target = real
	}
	want := []string{filepath.Dir(w.path), filepath.Dir(target)}

	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.watches[w]; !ok || h.closed {
		return nil // stopped meanwhile
	}
	w.target = target
	for dir := range w.dirs {
		if dir != want[0] && dir != want[1] {
			h.release(dir, w)
		}
	}
	if err := h.acquire(want[0], w); err != nil {
		return fmt.Errorf("watching %s: %w", w.path, err)
	}
	if err := h.acquire(want[1], w); err != nil {
		h.opts.Log.Warn("cannot watch the directory a symlink leads to", "path", w.path, "dir", want[1], "error", err.Error())
	}
	return nil
}

// acquire records that w needs dir, and watches dir if it is not watched
// yet. The caller holds h.mu.
func (h *Hub) acquire(dir string, w *Watch) error {
	d := h.dirs[dir]
	if d == nil {
		d = &watchedDir{watches: map[*Watch]struct{}{}}
	}
	if !d.active {
		if err := h.notify.Add(dir); err != nil {
			return err
		}
		d.active = true
	}
	h.dirs[dir] = d
	d.watches[w] = struct{}{}
	w.dirs[dir] = struct{}{}
	return nil
}

// release drops w's interest in dir, and the inotify watch on dir when no
// file needs it any more. The caller holds h.mu.
func (h *Hub) release(dir string, w *Watch) {
	delete(w.dirs, dir)
	d := h.dirs[dir]
	if d == nil {
		return
	}
	delete(d.watches, w)
	if len(d.watches) > 0 {
		return
	}
	delete(h.dirs, dir)
	if d.active && !h.closed {
		// It fails only if inotify dropped the watch already.
		_ = h.notify.Remove(dir)
	}
}

func (h *Hub) remove(w *Watch) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for dir := range w.dirs {
		h.release(dir, w)
	}
	delete(h.watches, w)
}

// Watch is one file watched through a Hub.
type Watch struct {
	hub      *Hub
	path     string // absolute, its directory's symlinks resolved
	onChange func()

	// Guarded by hub.mu.
	target string // what path's symlinks resolve to (path itself if none)
	dirs   map[string]struct{}

	calling sync.Mutex // held while onChange runs

	mu      sync.Mutex
	stopped bool
	pending bool      // an event has not been reported yet
	inPlace bool      // the pending events include a write to the file itself
	due     time.Time // when the quiet window ends
	stat    fileStat  // the file when the settle window started
	timer   *time.Timer
}

// Stop ends the watch: onChange is not called after Stop returns. A call
// under way finishes first, so Stop must not be called from onChange.
func (w *Watch) Stop() {
	w.mu.Lock()
	w.stopped = true
	if w.timer != nil {
		w.timer.Stop()
	}
	w.mu.Unlock()
	w.calling.Lock() // a call under way finishes first
	defer w.calling.Unlock()
	w.hub.remove(w)
}

// note records an event in one of w's directories and restarts the quiet
// window. The caller holds hub.mu.
func (w *Watch) note(name string, op fsnotify.Op) {
	ownFile := name == w.path || name == w.target
	if !ownFile && !op.Has(fsnotify.Create) && !op.Has(fsnotify.Remove) && !op.Has(fsnotify.Rename) {
		// A write to another file cannot change this one; a name that
		// appears or goes may be a link on the way to it.
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	if ownFile && op.Has(fsnotify.Write) {
		w.inPlace = true
	}
	w.pending = true
	wait := w.hub.opts.Debounce
	if w.inPlace {
		wait = w.hub.opts.Settle
		w.stat = statFile(w.path)
	}
	w.due = time.Now().Add(wait)
	if w.timer == nil {
		w.timer = time.AfterFunc(wait, w.fire)
	} else {
		w.timer.Reset(wait)
	}
}

// fire runs when the quiet window may have ended. It reports the change,
// or waits on if the window was extended or the file is still changing.
func (w *Watch) fire() {
	w.calling.Lock()
	defer w.calling.Unlock()
	w.mu.Lock()
	if w.stopped || !w.pending {
		w.mu.Unlock()
		return
	}
	if left := time.Until(w.due); left > 0 {
		// An event came while this call was starting.
		w.timer.Reset(left)
		w.mu.Unlock()
		return
	}
	if w.inPlace {
		if now := statFile(w.path); now != w.stat {
			// Written without an event we saw: start the window again.
			w.stat = now
			w.due = time.Now().Add(w.hub.opts.Settle)
			w.timer.Reset(w.hub.opts.Settle)
			w.mu.Unlock()
			return
		}
	}
	w.pending, w.inPlace = false, false
	w.mu.Unlock()

	// Follow the file first (a symlink swap moves its target), so that a
	// change made while onChange reads it is seen.
	if err := w.hub.refresh(w); err != nil {
		w.hub.opts.Log.Warn("cannot watch file", "path", w.path, "error", err.Error())
	}
	w.onChange()
}

// fileStat is what the settle check compares: a file whose size and
// modification time hold still is taken as written.
type fileStat struct {
	exists  bool
	size    int64
	modTime time.Time
}

func statFile(path string) fileStat {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStat{}
	}
	return fileStat{exists: true, size: fi.Size(), modTime: fi.ModTime()}
}

// canonicalPath makes path absolute and resolves the symlinks of its
// directory (not of the file: that link is what a ConfigMap swaps), so
// that each directory has one name in the Hub.
func canonicalPath(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return path, err
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return abs, nil // the directory is missing; Watch reports that
	}
	return filepath.Join(dir, filepath.Base(abs)), nil
}

// Watcher watches one file with a Hub of its own and reports its changes
// in the goroutine that calls Run.
type Watcher struct {
	hub     *Hub
	changed chan struct{}
}

// Start begins watching path. Changes from this point on are reported by
// Run, so a caller that reads the file after Start misses nothing.
func Start(path string, o Options) (*Watcher, error) {
	hub, err := NewHub(o)
	if err != nil {
		return nil, err
	}
	changed := make(chan struct{}, 1)
	_, err = hub.Watch(path, func() {
		select {
		case changed <- struct{}{}:
		default: // Run has one queued already
		}
	})
	if err != nil {
		_ = hub.Close()
		return nil, err
	}
	return &Watcher{hub: hub, changed: changed}, nil
}

// Run calls onChange after each change of the file until ctx is done;
// then it stops watching. onChange should check whether the content
// really changed.
func (fw *Watcher) Run(ctx context.Context, onChange func()) {
	defer fw.hub.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case <-fw.changed:
			onChange()
		}
	}
}
