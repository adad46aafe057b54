package usage

import (
	"cmp"
	"slices"
	"time"
)

// Key names one row: a minute, an application, an API and a status
// class.
type Key struct {
	Minute      int64  // Unix seconds of the minute's start
	Application string // "" for callers that were not identified
	API         string // "" for requests that matched no API
	Class       string // analytics.Class2xx … analytics.ClassThrottled
}

// Counts are a row's numbers.
type Counts struct {
	Requests     uint64
	LatencySumUS uint64 // microseconds
}

// Row is one key and its counts.
type Row struct {
	Key
	Counts
}

// MinuteOf is the start of t's minute, in Unix seconds.
func MinuteOf(t time.Time) int64 {
	s := t.Unix()
	return s - ((s%60)+60)%60
}

// batch holds rows by key.
type batch map[Key]Counts

// add adds c to k's row. A new row is refused (false) when the batch
// already holds limit rows; an existing one always takes more.
func (b batch) add(k Key, c Counts, limit int) bool {
	have, ok := b[k]
	if !ok && len(b) >= limit {
		return false
	}
	b[k] = Counts{Requests: have.Requests + c.Requests, LatencySumUS: have.LatencySumUS + c.LatencySumUS}
	return true
}

// rows are the batch's rows in key order (minutes first), so that the
// oldest travel first and a database takes row locks in one order.
func (b batch) rows() []Row {
	out := make([]Row, 0, len(b))
	for k, c := range b {
		out = append(out, Row{Key: k, Counts: c})
	}
	SortRows(out)
	return out
}

// SortRows orders rows by minute, application, API and class.
func SortRows(rows []Row) {
	slices.SortFunc(rows, func(a, b Row) int { return compareKeys(a.Key, b.Key) })
}

func compareKeys(a, b Key) int {
	return cmp.Or(cmp.Compare(a.Minute, b.Minute), cmp.Compare(a.Application, b.Application),
		cmp.Compare(a.API, b.API), cmp.Compare(a.Class, b.Class))
}

// Merge adds rows with the same key together and returns them in key
// order.
func Merge(rows []Row) []Row {
	b := batch{}
	for _, r := range rows {
		b.add(r.Key, r.Counts, len(rows))
	}
	return b.rows()
}
