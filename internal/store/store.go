package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go
)

//go:embed migrations
var migrations embed.FS

// Errors the admin API turns into status codes.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	// ErrVersion: the record changed since the version the caller read.
	ErrVersion = errors.New("version mismatch")
)

// ClaimError reports a value already held by another record.
type ClaimError struct {
	Kind, Value, Holder string
}

func (e *ClaimError) Error() string {
	return fmt.Sprintf("%s %q is already used by %s", e.Kind, e.Value, e.Holder)
}

// Options choose the database: exactly one of SQLite (a file path) and
// Postgres (a connection URL).
type Options struct {
	SQLite   string
	Postgres string
	Log      *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// PollInterval bounds how long a change made elsewhere takes to be
	// noticed when no notification arrives (default 2s).
	PollInterval time.Duration
}

// Store is the control plane's system of record.
type Store struct {
	db       *sql.DB
	writes   *sql.DB // SQLite: one connection, so writers queue in order instead of retrying on a busy file
	postgres bool
	url      string
	log      *slog.Logger
	now      func() time.Time
	poll     time.Duration

	mu       sync.Mutex
	watchers []chan struct{}
}

// Open connects, applies the schema migrations and returns the store.
func Open(ctx context.Context, o Options) (*Store, error) {
	if (o.SQLite == "") == (o.Postgres == "") {
		return nil, errors.New("store: exactly one of sqlite and postgres must be set")
	}
	s := &Store{log: o.Log, now: o.Now, poll: o.PollInterval}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.poll <= 0 {
		s.poll = 2 * time.Second
	}
	var (
		err     error
		dialect goose.Dialect
		dir     string
		opts    []goose.ProviderOption
	)
	if o.Postgres != "" {
		s.postgres, s.url = true, o.Postgres
		s.db, err = sql.Open("pgx", o.Postgres)
		dialect, dir = goose.DialectPostgres, "migrations/postgres"
		// Several control planes may start together on one database.
		locker, lerr := lock.NewPostgresSessionLocker()
		if lerr != nil {
			return nil, fmt.Errorf("store: %w", lerr)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	} else {
		// IMMEDIATE transactions take the write lock at BEGIN, so that two
		// writers never both read and then fail to upgrade; WAL lets
		// readers run beside the writer.
		dsn := "file:" + o.SQLite + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
		s.db, err = sql.Open("sqlite", dsn)
		if err == nil {
			s.writes, err = sql.Open("sqlite", dsn)
		}
		if err == nil {
			s.writes.SetMaxOpenConns(1)
		}
		dialect, dir = goose.DialectSQLite3, "migrations/sqlite"
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if s.writes == nil {
		s.writes = s.db // PostgreSQL queues writers on the revision row
	}
	if err := s.db.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: connecting: %w", err)
	}
	sub, err := fs.Sub(migrations, dir)
	if err != nil {
		s.Close()
		return nil, err
	}
	provider, err := goose.NewProvider(dialect, s.db, sub, opts...)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("store: migrations: %w", err)
	}
	applied, err := provider.Up(ctx)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("store: applying migrations: %w", err)
	}
	for _, r := range applied {
		s.log.Info("schema migration applied", "version", r.Source.Version, "file", r.Source.Path)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error {
	if s.writes != nil && s.writes != s.db {
		s.writes.Close()
	}
	return s.db.Close()
}

// Kind names the store's backend for logs and status.
func (s *Store) Kind() string {
	if s.postgres {
		return "postgres"
	}
	return "sqlite"
}

// rebind turns ? placeholders into PostgreSQL's $n.
func (s *Store) rebind(q string) string {
	if !s.postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (s *Store) micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }
