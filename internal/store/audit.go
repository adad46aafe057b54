package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// AuditEntry records one write: who, what, when, and the record before
// and after (bodies without secrets: keys are stored as digests only).
type AuditEntry struct {
	Seq    int64     `json:"seq"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Role   string    `json:"role"`
	Action string    `json:"action"`
	Kind   Kind      `json:"kind"`
	Object string    `json:"object"`
	Before string    `json:"-"`
	After  string    `json:"-"`
}

// Audit appends an entry in the transaction, so that a write and its
// record commit together or not at all.
func (t *Tx) Audit(e AuditEntry) error {
	_, err := t.exec("INSERT INTO audit (at_us, actor, role, action, kind, object, before, after) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		t.s.micros(t.s.now()), e.Actor, e.Role, e.Action, string(e.Kind), e.Object, e.Before, e.After)
	if err != nil {
		return fmt.Errorf("writing the audit record: %w", err)
	}
	return nil
}

// AuditFilter selects audit entries; empty fields match everything.
type AuditFilter struct {
	Kind          Kind
	Object, Actor string
	Offset, Limit int
}

// AuditList returns entries newest first, and how many match.
func (s *Store) AuditList(ctx context.Context, f AuditFilter) ([]AuditEntry, int, error) {
	where := " FROM audit WHERE 1 = 1"
	var args []any
	for _, c := range []struct{ col, v string }{{"kind", string(f.Kind)}, {"object", f.Object}, {"actor", f.Actor}} {
		if c.v != "" {
			where += " AND " + c.col + " = ?"
			args = append(args, c.v)
		}
	}
	var total int
	if err := s.db.QueryRowContext(ctx, s.rebind("SELECT COUNT(*)"+where), args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 1 << 30
	}
	rows, err := s.db.QueryContext(ctx, s.rebind("SELECT seq, at_us, actor, role, action, kind, object, before, after"+where+
		fmt.Sprintf(" ORDER BY seq DESC LIMIT %d OFFSET %d", limit, max(f.Offset, 0))), args...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var (
			e    AuditEntry
			at   int64
			kind string
		)
		if err := rows.Scan(&e.Seq, &at, &e.Actor, &e.Role, &e.Action, &kind, &e.Object, &e.Before, &e.After); err != nil {
			return nil, 0, err
		}
		e.At, e.Kind = fromMicros(at), Kind(kind)
		out = append(out, e)
	}
	return out, total, rows.Err()
}

// Remembered is a response kept for an Idempotency-Key.
type Remembered struct {
	Request string // a digest of the method, path and body it answered
	Status  int
	Body    []byte
	ETag    int64 // the version the answer named, 0 for none
}

// Recall finds the response kept for an actor's idempotency key.
func (t *Tx) Recall(actor, key string) (Remembered, bool, error) {
	var r Remembered
	err := t.tx.QueryRowContext(t.ctx, t.s.rebind("SELECT request, status, body, etag FROM idempotency WHERE actor = ? AND key = ?"), actor, key).Scan(&r.Request, &r.Status, &r.Body, &r.ETag)
	if errors.Is(err, sql.ErrNoRows) {
		return Remembered{}, false, nil
	}
	return r, err == nil, err
}

// Remember keeps a response for an actor's idempotency key.
func (t *Tx) Remember(actor, key string, r Remembered) error {
	_, err := t.exec("INSERT INTO idempotency (actor, key, request, status, body, etag, created_us) VALUES (?, ?, ?, ?, ?, ?, ?)",
		actor, key, r.Request, r.Status, string(r.Body), r.ETag, t.s.micros(t.s.now()))
	return err
}

// ForgetIdempotency drops kept responses older than age.
func (s *Store) ForgetIdempotency(ctx context.Context, age time.Duration) error {
	_, err := s.db.ExecContext(ctx, s.rebind("DELETE FROM idempotency WHERE created_us < ?"), s.micros(s.now().Add(-age)))
	return err
}

// Document is an API's stored OpenAPI document.
type Document struct {
	SpecVersion string
	Content     []byte
	UpdatedAt   time.Time
}

// PutDocument stores an API's document.
func (t *Tx) PutDocument(api string, d Document) error {
	if _, err := t.exec("DELETE FROM documents WHERE api = ?", api); err != nil {
		return err
	}
	_, err := t.exec("INSERT INTO documents (api, spec_version, content, updated_us) VALUES (?, ?, ?, ?)",
		api, d.SpecVersion, d.Content, t.s.micros(t.s.now()))
	return err
}

// DeleteDocument drops an API's document, if any.
func (t *Tx) DeleteDocument(api string) error {
	_, err := t.exec("DELETE FROM documents WHERE api = ?", api)
	return err
}

// Document reads an API's document.
func (s *Store) Document(ctx context.Context, api string) (Document, error) {
	var (
		d  Document
		at int64
	)
	err := s.db.QueryRowContext(ctx, s.rebind("SELECT spec_version, content, updated_us FROM documents WHERE api = ?"), api).Scan(&d.SpecVersion, &d.Content, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return Document{}, fmt.Errorf("document of API %q: %w", api, ErrNotFound)
	}
	d.UpdatedAt = fromMicros(at)
	return d, err
}
