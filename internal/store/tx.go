package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// Tx is one write transaction. All its writes share one revision.
type Tx struct {
	s        *Store
	tx       *sql.Tx
	ctx      context.Context
	revision int64
	wrote    bool
}

// Write runs fn in a transaction and commits it when fn returns nil.
// Writers are serialised (the revision counter is taken first), so what
// fn reads stays true until it commits. It returns the revision of the
// writes, or the previous revision when fn wrote nothing.
func (s *Store) Write(ctx context.Context, fn func(*Tx) error) (int64, error) {
	tx, err := s.writes.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	defer tx.Rollback()
	t := &Tx{s: s, tx: tx, ctx: ctx}
	if err := tx.QueryRowContext(ctx, "UPDATE revision SET value = value + 1 WHERE id = 1 RETURNING value").Scan(&t.revision); err != nil {
		return 0, fmt.Errorf("store: taking the revision: %w", err)
	}
	if err := fn(t); err != nil {
		return 0, err
	}
	if !t.wrote {
		return t.revision - 1, nil // rolled back: the counter is unchanged
	}
	if s.postgres {
		// Delivered at commit to every control plane listening.
		if _, err := tx.ExecContext(ctx, "SELECT pg_notify('tollgate_changes', $1)", fmt.Sprint(t.revision)); err != nil {
			return 0, fmt.Errorf("store: notify: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("store: commit: %w", err)
	}
	s.changed()
	return t.revision, nil
}

// Revision is the revision this transaction's writes will have.
func (t *Tx) Revision() int64 { return t.revision }

// Get reads a live record.
func (t *Tx) Get(kind Kind, id string) (Record, error) { return t.s.get(t.ctx, t.tx, kind, id) }

// List reads records like Store.List, inside the transaction.
func (t *Tx) List(kind Kind, f Filter) ([]Record, int, error) { return t.s.list(t.ctx, t.tx, kind, f) }

func (t *Tx) exec(q string, args ...any) (sql.Result, error) {
	t.wrote = true
	return t.tx.ExecContext(t.ctx, t.s.rebind(q), args...)
}

// Create inserts a record; a live record of that kind and id is
// ErrExists. It returns the record as stored.
func (t *Tx) Create(r Record) (Record, error) {
	now := t.s.now()
	var (
		version int64
		deleted int64
	)
	err := t.tx.QueryRowContext(t.ctx, t.s.rebind("SELECT version, deleted FROM records WHERE kind = ? AND id = ?"), string(r.Kind), r.ID).Scan(&version, &deleted)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return Record{}, err
	case deleted == 0:
		return Record{}, fmt.Errorf("%s %q: %w", r.Kind, r.ID, ErrExists)
	default:
		// A tombstone: the id is reused, its versions keep increasing so
		// that an old ETag never matches the new record.
		if _, err := t.exec("DELETE FROM records WHERE kind = ? AND id = ?", string(r.Kind), r.ID); err != nil {
			return Record{}, err
		}
	}
	r.Version, r.Revision, r.Deleted = version+1, t.revision, false
	r.CreatedAt, r.UpdatedAt = now.UTC().Truncate(1000), now.UTC().Truncate(1000)
	_, err = t.exec("INSERT INTO records ("+recordColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
		string(r.Kind), r.ID, r.Parent, r.Ref, r.Owner, r.State, r.Body, r.Version, r.Revision, t.s.micros(now), t.s.micros(now))
	if err != nil {
		return Record{}, fmt.Errorf("creating %s %q: %w", r.Kind, r.ID, err)
	}
	return r, nil
}

// Update replaces a live record whose version is still r.Version (the
// one the caller read); otherwise ErrVersion. It returns the record as
// stored.
func (t *Tx) Update(r Record) (Record, error) {
	now := t.s.now()
	res, err := t.exec("UPDATE records SET parent = ?, ref = ?, owner = ?, state = ?, body = ?, version = version + 1, revision = ?, updated_us = ? WHERE kind = ? AND id = ? AND version = ? AND deleted = 0",
		r.Parent, r.Ref, r.Owner, r.State, r.Body, t.revision, t.s.micros(now), string(r.Kind), r.ID, r.Version)
	if err != nil {
		return Record{}, fmt.Errorf("updating %s %q: %w", r.Kind, r.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := t.Get(r.Kind, r.ID); err != nil {
			return Record{}, err
		}
		return Record{}, fmt.Errorf("%s %q: %w", r.Kind, r.ID, ErrVersion)
	}
	r.Version++
	r.Revision, r.UpdatedAt = t.revision, now.UTC().Truncate(1000)
	return r, nil
}

// Delete turns a live record into a tombstone. The body stays, so that a
// reader can tell what the deleted record named (a key's digest).
func (t *Tx) Delete(kind Kind, id string) error {
	res, err := t.exec("UPDATE records SET deleted = 1, version = version + 1, revision = ?, updated_us = ? WHERE kind = ? AND id = ? AND deleted = 0",
		t.revision, t.s.micros(t.s.now()), string(kind), id)
	if err != nil {
		return fmt.Errorf("deleting %s %q: %w", kind, id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s %q: %w", kind, id, ErrNotFound)
	}
	return nil
}

// Claim makes values of a kind (client ids, principals, ...) belong to
// holder, releasing what holder held before. A value another holder has
// is a *ClaimError.
func (t *Tx) Claim(kind, holder string, values []string) error {
	if _, err := t.exec("DELETE FROM claims WHERE kind = ? AND holder = ?", kind, holder); err != nil {
		return err
	}
	for _, v := range values {
		var other string
		err := t.tx.QueryRowContext(t.ctx, t.s.rebind("SELECT holder FROM claims WHERE kind = ? AND value = ?"), kind, v).Scan(&other)
		if err == nil {
			return &ClaimError{Kind: kind, Value: v, Holder: other}
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if _, err := t.exec("INSERT INTO claims (kind, value, holder) VALUES (?, ?, ?)", kind, v, holder); err != nil {
			return err
		}
	}
	return nil
}

// ReleaseClaims drops every value holder held, of any kind.
func (t *Tx) ReleaseClaims(holder string) error {
	_, err := t.exec("DELETE FROM claims WHERE holder = ?", holder)
	return err
}

// ClaimHolder is who holds a value, or "".
func (t *Tx) ClaimHolder(kind, value string) (string, error) {
	var holder string
	err := t.tx.QueryRowContext(t.ctx, t.s.rebind("SELECT holder FROM claims WHERE kind = ? AND value = ?"), kind, value).Scan(&holder)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return holder, err
}

// holderKey joins a kind and id into a claim holder.
func HolderKey(kind Kind, id string) string { return string(kind) + ":" + id }

// HolderID is the id part of a claim holder.
func HolderID(holder string) string {
	_, id, _ := strings.Cut(holder, ":")
	return id
}
