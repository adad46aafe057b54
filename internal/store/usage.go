package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// UsageRow is the requests of one application to one API that ended in
// one status class, in one minute.
type UsageRow struct {
	Minute       int64 // Unix seconds of the minute's start
	Application  string
	API          string
	Class        string
	Requests     int64
	LatencySumUS int64
}

type usageKey struct {
	minute           int64
	application, api string
	class            string
}

// usageBatchRows is how many rows one INSERT carries: six parameters
// each, well within both databases' limits on parameters.
const usageBatchRows = 500

// AddUsage adds rows to the stored ones, in one transaction: a row that
// exists takes the sum. It writes no record, so replicas and revisions
// are not concerned.
func (s *Store) AddUsage(ctx context.Context, rows []UsageRow) error {
	if len(rows) == 0 {
		return nil
	}
	// One row per key (PostgreSQL refuses to update a row twice in one
	// statement), in key order, so that control planes sharing a
	// database take row locks in one order and never deadlock.
	sums := make(map[usageKey]UsageRow, len(rows))
	for _, r := range rows {
		k := usageKey{r.Minute, r.Application, r.API, r.Class}
		have := sums[k]
		r.Requests += have.Requests
		r.LatencySumUS += have.LatencySumUS
		sums[k] = r
	}
	merged := make([]UsageRow, 0, len(sums))
	for _, r := range sums {
		merged = append(merged, r)
	}
	slices.SortFunc(merged, func(a, b UsageRow) int {
		return cmp.Or(cmp.Compare(a.Minute, b.Minute), cmp.Compare(a.Application, b.Application),
			cmp.Compare(a.API, b.API), cmp.Compare(a.Class, b.Class))
	})
	tx, err := s.writes.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer tx.Rollback()
	for len(merged) > 0 {
		n := min(len(merged), usageBatchRows)
		batch := merged[:n]
		merged = merged[n:]
		var q strings.Builder
		q.WriteString("INSERT INTO usage (minute, application, api, class, requests, latency_sum_us) VALUES ")
		args := make([]any, 0, 6*len(batch))
		for i, r := range batch {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(?, ?, ?, ?, ?, ?)")
			args = append(args, r.Minute, r.Application, r.API, r.Class, r.Requests, r.LatencySumUS)
		}
		q.WriteString(" ON CONFLICT (minute, application, api, class) DO UPDATE SET" +
			" requests = usage.requests + excluded.requests, latency_sum_us = usage.latency_sum_us + excluded.latency_sum_us")
		if _, err := tx.ExecContext(ctx, s.rebind(q.String()), args...); err != nil {
			return fmt.Errorf("store: adding usage: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// UsageQuery selects usage: minutes in [From, To), in buckets of Step
// from From. Empty Application and API match every one.
type UsageQuery struct {
	Application, API string
	From, To         time.Time // whole minutes
	Step             time.Duration
}

// UsageBucket is one class's requests in one bucket.
type UsageBucket struct {
	Start        time.Time
	Class        string
	Requests     int64
	LatencySumUS int64
}

// Usage adds the selected rows up per bucket and class, in the database,
// and returns the buckets that have requests, oldest first.
func (s *Store) Usage(ctx context.Context, q UsageQuery) ([]UsageBucket, error) {
	from, to, step := q.From.Unix(), q.To.Unix(), int64(q.Step/time.Second)
	if q.From.Second() != 0 || q.From.Nanosecond() != 0 || step < 60 || step%60 != 0 || to <= from {
		return nil, errors.New("store: usage: want whole minutes, to after from, and a step of whole minutes")
	}
	where := " FROM usage WHERE minute >= ? AND minute < ?"
	args := []any{from, step, from, to}
	if q.Application != "" {
		where += " AND application = ?"
		args = append(args, q.Application)
	}
	if q.API != "" {
		where += " AND api = ?"
		args = append(args, q.API)
	}
	rows, err := s.db.QueryContext(ctx, s.rebind("SELECT (minute - ?) / ? AS bucket, class,"+
		" CAST(SUM(requests) AS BIGINT), CAST(SUM(latency_sum_us) AS BIGINT)"+where+
		" GROUP BY bucket, class ORDER BY bucket, class"), args...)
	if err != nil {
		return nil, fmt.Errorf("store: usage: %w", err)
	}
	defer rows.Close()
	var out []UsageBucket
	for rows.Next() {
		var (
			b     UsageBucket
			index int64
		)
		if err := rows.Scan(&index, &b.Class, &b.Requests, &b.LatencySumUS); err != nil {
			return nil, fmt.Errorf("store: usage: %w", err)
		}
		b.Start = time.Unix(from+index*step, 0).UTC()
		out = append(out, b)
	}
	return out, rows.Err()
}

// PurgeUsage deletes the usage of minutes before before, and says how
// many rows went.
func (s *Store) PurgeUsage(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.writes.ExecContext(ctx, s.rebind("DELETE FROM usage WHERE minute < ?"), before.Unix())
	if err != nil {
		return 0, fmt.Errorf("store: purging usage: %w", err)
	}
	return res.RowsAffected()
}
