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

// Watch calls onChange after activity in the directory of path, or of the
// file path's symlinks resolve to, settles for debounce. It watches
// directories rather than the file, because a watch on a file is lost when
// the file is replaced. onChange should check whether the content really
// changed. Watch returns when ctx is done.
func Watch(ctx context.Context, path string, debounce time.Duration, log *slog.Logger, onChange func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching %s: %w", path, err)
	}
	defer w.Close()
	watched := map[string]bool{}
	watchDirs := func() {
		dirs := []string{filepath.Dir(path)}
		if real, err := filepath.EvalSymlinks(path); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
		for _, d := range dirs {
			if watched[d] {
				continue
			}
			if err := w.Add(d); err != nil {
				log.Warn("cannot watch directory", "dir", d, "error", err.Error())
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
			timer.Reset(debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			log.Warn("file watch error", "path", path, "error", err.Error())
		case <-timer.C:
			onChange()
			watchDirs()
		}
	}
}
