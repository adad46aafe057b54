// Package filewatch tells when a file may have changed, in the ways files
// change in production: edited in place, replaced by rename (editors,
// config management) or swapped through a symlink (Kubernetes ConfigMap
// and Secret volumes).
package filewatch

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watcher watches the directory of one file, and of the file its symlinks
// resolve to. It watches directories rather than the file, because a watch
// on a file is lost when the file is replaced.
type Watcher struct {
	path     string
	debounce time.Duration
	log      *slog.Logger
	w        *fsnotify.Watcher
	watched  map[string]bool
}

// Start begins watching. Changes from this point on are reported by Run,
// so a caller that reads the file after Start misses nothing.
func Start(path string, debounce time.Duration, log *slog.Logger) (*Watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watching %s: %w", path, err)
	}
	fw := &Watcher{path: path, debounce: debounce, log: log, w: w, watched: map[string]bool{}}
	fw.watchDirs()
	return fw, nil
}

func (fw *Watcher) watchDirs() {
	dirs := []string{filepath.Dir(fw.path)}
	if real, err := filepath.EvalSymlinks(fw.path); err == nil {
		dirs = append(dirs, filepath.Dir(real))
	}
	for _, d := range dirs {
		if fw.watched[d] {
			continue
		}
		if err := fw.w.Add(d); err != nil {
			fw.log.Warn("cannot watch directory", "dir", d, "error", err.Error())
			continue
		}
		fw.watched[d] = true
	}
}

// Run calls onChange after activity in the watched directories settles for
// the debounce interval, until ctx is done; then it stops watching.
// onChange should check whether the content really changed.
func (fw *Watcher) Run(ctx context.Context, onChange func()) {
	defer fw.w.Close()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-fw.w.Events:
			if !ok {
				return
			}
			if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				delete(fw.watched, ev.Name) // a watched directory may have gone
			}
			timer.Reset(fw.debounce)
		case err, ok := <-fw.w.Errors:
			if !ok {
				return
			}
			fw.log.Warn("file watch error", "path", fw.path, "error", err.Error())
		case <-timer.C:
			onChange()
			fw.watchDirs()
		}
	}
}
