package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// changed wakes this process's watchers after a commit.
func (s *Store) changed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.watchers {
		select {
		case w <- struct{}{}:
		default: // already woken; the reader will see this change too
		}
	}
}

// Watch calls fn (never concurrently) whenever the store may have
// changed, until ctx is done: after writes through this Store at once,
// after writes by other control planes on PostgreSQL through
// LISTEN/NOTIFY, and every poll interval in any case, so that a lost
// notification only delays a change; and once as soon as it is watching.
// fn reads what changed with Changes.
func (s *Store) Watch(ctx context.Context, fn func()) {
	wake := make(chan struct{}, 1)
	s.mu.Lock()
	s.watchers = append(s.watchers, wake)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, w := range s.watchers {
			if w == wake {
				s.watchers = append(s.watchers[:i], s.watchers[i+1:]...)
				break
			}
		}
	}()
	if s.postgres {
		go s.listen(ctx, wake)
	}
	t := time.NewTicker(s.poll)
	defer t.Stop()
	// Once at once: a write made before the watch began is caught up with,
	// and every later one wakes it.
	fn()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-t.C:
		}
		fn()
	}
}

// listen forwards PostgreSQL notifications to wake, reconnecting after
// failures.
func (s *Store) listen(ctx context.Context, wake chan struct{}) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, wake, func() { backoff = 100 * time.Millisecond })
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("store notifications lost; polling until they are back", "error", err.Error(), "retry", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func (s *Store) listenOnce(ctx context.Context, wake chan struct{}, connected func()) error {
	conn, err := pgx.Connect(ctx, s.url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN tollgate_changes"); err != nil {
		return err
	}
	connected()
	// Changes made while no connection listened are caught up at once.
	select {
	case wake <- struct{}{}:
	default:
	}
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		select {
		case wake <- struct{}{}:
		default:
		}
	}
}
