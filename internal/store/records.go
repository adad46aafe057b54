package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kind is a kind of record.
type Kind string

// The kinds of record.
const (
	KindAPI          Kind = "api"
	KindApplication  Kind = "application"
	KindSubscription Kind = "subscription"
	KindAPIKey       Kind = "apiKey"
	KindPolicy       Kind = "policy"
	KindIssuer       Kind = "issuer"
	KindRevokedToken Kind = "revokedToken"
	KindMtls         Kind = "mtls"
)

// Record is one stored object. Body is the kind's JSON (see bodies.go);
// the other fields are what the store filters and orders by.
type Record struct {
	Kind   Kind
	ID     string
	Parent string // the application of a subscription or key
	Ref    string // the API of a subscription
	Owner  string // the developer owning the application
	State  string
	Body   []byte

	Version   int64 // increases with every write of the record: the ETag
	Revision  int64 // the store revision of its last write
	Deleted   bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

const recordColumns = "kind, id, parent, ref, owner, state, body, version, revision, deleted, created_us, updated_us"

type scanner interface{ Scan(...any) error }

func scanRecord(row scanner) (Record, error) {
	var (
		r                Record
		kind             string
		deleted          int64
		created, updated int64
	)
	err := row.Scan(&kind, &r.ID, &r.Parent, &r.Ref, &r.Owner, &r.State, &r.Body, &r.Version, &r.Revision, &deleted, &created, &updated)
	r.Kind, r.Deleted = Kind(kind), deleted != 0
	r.CreatedAt, r.UpdatedAt = fromMicros(created), fromMicros(updated)
	return r, err
}

// querier is what reads need: the database or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Store) get(ctx context.Context, q querier, kind Kind, id string) (Record, error) {
	r, err := scanRecord(q.QueryRowContext(ctx, s.rebind("SELECT "+recordColumns+" FROM records WHERE kind = ? AND id = ? AND deleted = 0"), string(kind), id))
	if errors.Is(err, sql.ErrNoRows) {
		return Record{}, fmt.Errorf("%s %q: %w", kind, id, ErrNotFound)
	}
	return r, err
}

// Get reads one live record.
func (s *Store) Get(ctx context.Context, kind Kind, id string) (Record, error) {
	return s.get(ctx, s.db, kind, id)
}

// Filter selects records of one kind; empty fields match everything.
type Filter struct {
	Parent, Ref, Owner string
	States             []string // any of them
	Offset, Limit      int      // Limit 0: no limit
}

// List returns one page of live records of a kind in id order, and how
// many match in all.
func (s *Store) List(ctx context.Context, kind Kind, f Filter) ([]Record, int, error) {
	return s.list(ctx, s.db, kind, f)
}

func (s *Store) list(ctx context.Context, q querier, kind Kind, f Filter) ([]Record, int, error) {
	where := " FROM records WHERE kind = ? AND deleted = 0"
	args := []any{string(kind)}
	for _, c := range []struct{ col, v string }{{"parent", f.Parent}, {"ref", f.Ref}, {"owner", f.Owner}} {
		if c.v != "" {
			where += " AND " + c.col + " = ?"
			args = append(args, c.v)
		}
	}
	if len(f.States) > 0 {
		where += " AND state IN (?" + strings.Repeat(", ?", len(f.States)-1) + ")"
		for _, st := range f.States {
			args = append(args, st)
		}
	}
	var total int
	if err := q.QueryRowContext(ctx, s.rebind("SELECT COUNT(*)"+where), args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("counting %s records: %w", kind, err)
	}
	query := "SELECT " + recordColumns + where + " ORDER BY id"
	if f.Limit > 0 {
		query += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	if f.Offset > 0 {
		if f.Limit <= 0 {
			query += " LIMIT -1"
			if s.postgres {
				query = query[:len(query)-len(" LIMIT -1")] + " LIMIT ALL"
			}
		}
		query += fmt.Sprintf(" OFFSET %d", f.Offset)
	}
	rows, err := q.QueryContext(ctx, s.rebind(query), args...)
	if err != nil {
		return nil, 0, fmt.Errorf("listing %s records: %w", kind, err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, r)
	}
	return out, total, rows.Err()
}

// Each calls fn for every live record of a kind, in id order, without
// holding them all.
func (s *Store) Each(ctx context.Context, kind Kind, fn func(Record) error) error {
	rows, err := s.db.QueryContext(ctx, s.rebind("SELECT "+recordColumns+" FROM records WHERE kind = ? AND deleted = 0 ORDER BY id"), string(kind))
	if err != nil {
		return fmt.Errorf("reading %s records: %w", kind, err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Revision is the store's current revision.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	var rev int64
	err := s.db.QueryRowContext(ctx, "SELECT value FROM revision WHERE id = 1").Scan(&rev)
	return rev, err
}

// Changes returns the records (tombstones included) written after
// revision since, in revision order, with the revision they bring the
// reader to. A reader that starts from the revision read before a full
// load misses nothing.
func (s *Store) Changes(ctx context.Context, since int64) ([]Record, int64, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: s.snapshotIsolation()})
	if err != nil {
		return nil, since, err
	}
	defer tx.Rollback()
	var rev int64
	if err := tx.QueryRowContext(ctx, "SELECT value FROM revision WHERE id = 1").Scan(&rev); err != nil {
		return nil, since, err
	}
	if rev <= since {
		return nil, since, nil
	}
	rows, err := tx.QueryContext(ctx, s.rebind("SELECT "+recordColumns+" FROM records WHERE revision > ? AND revision <= ? ORDER BY revision, kind, id"), since, rev)
	if err != nil {
		return nil, since, err
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, since, err
		}
		out = append(out, r)
	}
	return out, rev, rows.Err()
}

// snapshotIsolation makes a PostgreSQL read see one committed state (the
// counter and the records it counts); SQLite's transactions always do.
func (s *Store) snapshotIsolation() sql.IsolationLevel {
	if s.postgres {
		return sql.LevelRepeatableRead
	}
	return sql.LevelDefault
}

// Snapshot calls fn for every live record of each kind, all read in one
// transaction, and returns the revision they stand at.
func (s *Store) Snapshot(ctx context.Context, kinds []Kind, fn func(Record) error) (int64, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: s.snapshotIsolation()})
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	var rev int64
	if err := tx.QueryRowContext(ctx, "SELECT value FROM revision WHERE id = 1").Scan(&rev); err != nil {
		return 0, err
	}
	for _, k := range kinds {
		rows, err := tx.QueryContext(ctx, s.rebind("SELECT "+recordColumns+" FROM records WHERE kind = ? AND deleted = 0 ORDER BY id"), string(k))
		if err != nil {
			return 0, err
		}
		for rows.Next() {
			r, err := scanRecord(rows)
			if err == nil {
				err = fn(r)
			}
			if err != nil {
				rows.Close()
				return 0, err
			}
		}
		if err := rows.Close(); err != nil {
			return 0, err
		}
		if err := rows.Err(); err != nil {
			return 0, err
		}
	}
	return rev, nil
}

// PurgeTombstones removes deletion markers older than age; control planes
// that follow changes see them long before, and a control plane that
// starts loads the live records whole.
func (s *Store) PurgeTombstones(ctx context.Context, age time.Duration) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.rebind("DELETE FROM records WHERE deleted = 1 AND updated_us < ?"), s.micros(s.now().Add(-age)))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
