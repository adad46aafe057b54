package controlplane

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/filewatch"
	"github.com/tollgate/tollgate/internal/resources"
)

// source keeps the caches in step with a YAML file or directory.
type source struct {
	path    string
	caches  *caches
	metrics *metrics
	log     *slog.Logger
	now     func() time.Time
	poll    time.Duration

	mu         sync.Mutex // serialises loads
	loadedSig  string     // signature of the files when last read
	digest     [sha256.Size]byte
	changes    uint64
	lastChange time.Time
	lastError  string
}

// load reads, validates and applies the source. An invalid source
// changes nothing.
func (s *source) load() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loadedSig = s.signature() // before reading: a change while reading is seen again
	set, err := config.LoadResources(s.path)
	if err == nil && set.Digest == s.digest {
		return nil
	}
	var named resources.Set
	if err == nil {
		named, err = resources.Split(set.Resources)
	}
	if err != nil {
		s.metrics.loads.WithLabelValues("failure").Inc()
		s.lastError = err.Error()
		var problems config.Problems
		if errors.As(err, &problems) {
			for _, p := range problems {
				s.log.Error("resource problem", "problem", p.String())
			}
			return fmt.Errorf("%s is not valid (%d problem(s), logged)", s.path, len(problems))
		}
		return err
	}
	changes, err := s.caches.apply(named)
	if err != nil {
		s.metrics.loads.WithLabelValues("failure").Inc()
		s.lastError = err.Error()
		return err
	}
	s.metrics.loads.WithLabelValues("success").Inc()
	s.digest, s.lastError = set.Digest, ""
	for t, byName := range named {
		s.metrics.resources.WithLabelValues(resources.ShortName(t)).Set(float64(len(byName)))
	}
	if len(changes) > 0 {
		s.changes++
		s.lastChange = s.now()
		s.metrics.version.Set(float64(s.changes))
		s.metrics.updated.Set(float64(s.lastChange.UnixNano()) / 1e9)
		for _, c := range changes {
			s.log.Info("resources changed", "type", resources.ShortName(c.Type), "updated", c.Updated, "removed", c.Removed)
		}
	}
	return nil
}

// watch reloads on changes until ctx is done: a file through inotify, a
// directory by polling its entries' names, sizes and times.
func (s *source) watch(ctx context.Context) {
	reload := func() {
		if err := s.load(); err != nil {
			s.log.Error("resources not reloaded; serving the previous ones", "path", s.path, "error", err.Error())
		}
	}
	if info, err := os.Stat(s.path); err == nil && !info.IsDir() {
		w, err := filewatch.Start(s.path, filewatch.Options{Log: s.log})
		if err == nil {
			// An event may be about another file of the directory (any new
			// name could be a link to this one); parsing a large file again
			// for nothing costs seconds. The first call catches up with a
			// change made before the watch began.
			changed := func() {
				if s.signature() != s.loadedSignature() {
					reload()
				}
			}
			changed()
			w.Run(ctx, changed)
			return
		}
		s.log.Warn("cannot watch the resource file; polling it", "error", err.Error())
	}
	t := time.NewTicker(s.poll)
	defer t.Stop()
	last := s.loadedSignature()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if sig := s.signature(); sig != last {
				last = sig
				reload()
			}
		}
	}
}

func (s *source) loadedSignature() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loadedSig
}

// signature changes whenever a file of the source may have.
func (s *source) signature() string {
	h := sha256.New()
	paths := []string{s.path}
	if info, err := os.Stat(s.path); err == nil && info.IsDir() {
		entries, _ := os.ReadDir(s.path)
		paths = paths[:0]
		for _, e := range entries {
			paths = append(paths, filepath.Join(s.path, e.Name()))
		}
	}
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			fmt.Fprintf(h, "%s\x00missing\x00", p)
			continue
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00", p, info.Size(), info.ModTime().UnixNano())
	}
	return string(h.Sum(nil))
}

// sourceStatus is GET /api/v1/status.
type sourceStatus struct {
	Source     string         `json:"source"`
	Changes    uint64         `json:"changes"`
	LastChange time.Time      `json:"lastChange,omitzero"`
	LastError  string         `json:"lastError,omitempty"`
	Resources  map[string]int `json:"resources"`
}

func (s *source) status() sourceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sourceStatus{Source: s.path, Changes: s.changes, LastChange: s.lastChange, LastError: s.lastError, Resources: s.caches.counts()}
}
