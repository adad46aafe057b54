package ratelimit

import (
	"strconv"
	"time"
)

// Limit is one rate: Requests per Per, with Burst extra at once.
type Limit struct {
	Requests int64
	Per      time.Duration
	Burst    int64
}

// Interval is GCRA's emission interval, Per/Requests.
func (l Limit) Interval() time.Duration { return l.Per / time.Duration(l.Requests) }

// Tolerance is GCRA's delay tolerance, Burst intervals.
func (l Limit) Tolerance() time.Duration { return time.Duration(l.Burst) * l.Interval() }

// Policy is a named list of limits; a request must satisfy all of them.
type Policy struct {
	Name   string
	Limits []Limit
}

// Item is one limit applied to one key.
type Item struct {
	Key       string
	Interval  time.Duration
	Tolerance time.Duration
}

// Result is the outcome for one item.
type Result struct {
	Allowed    bool
	Remaining  int64         // requests that would still be admitted right now
	RetryAfter time.Duration // when refused: until the item would admit
	Reset      time.Duration // until the key is back to its full burst
}

// gcra evaluates one item for a key whose TAT is tat (0: fresh) at now,
// all in nanoseconds, and returns the TAT to store if the request is
// admitted. The Redis script implements the same arithmetic in
// microseconds.
func gcra(tat, now int64, it Item) (newTAT int64, r Result) {
	interval, tolerance := int64(it.Interval), int64(it.Tolerance)
	if tat < now {
		tat = now
	}
	if tat-now > tolerance {
		return tat, Result{RetryAfter: time.Duration(tat - now - tolerance), Reset: time.Duration(tat - now)}
	}
	newTAT = tat + interval
	remaining := floorDiv(tolerance-(newTAT-now), interval) + 1
	return newTAT, Result{Allowed: true, Remaining: max(remaining, 0), Reset: time.Duration(newTAT - now)}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// Scope is what a policy is applied to; it decides the deny code.
type Scope uint8

const (
	ScopeAPI          Scope = iota // all callers of an API together
	ScopeOperation                 // all callers of one operation together
	ScopeSubscription              // one application on one API
	ScopeApplication               // one application across APIs
	ScopeAnonymous                 // one client (address or subject) of an API's unauthenticated use
)

var scopeNames = [...]string{"api", "op", "sub", "app", "anon"}

// Binding is a policy applied to one scope, with its keys computed once.
type Binding struct {
	Policy *Policy
	Scope  Scope
	Items  []Item
}

// Bind applies p to the scope instance id (an API id, "app:api", ...).
func Bind(p *Policy, scope Scope, id string) *Binding {
	return &Binding{Policy: p, Scope: scope, Items: p.AppendItems(nil, scope, id)}
}

// AppendItems appends p's items for scope instance id to dst. Keys carry
// the scope in a hash tag, so that on a Redis Cluster all limits of one
// scope share a slot: tg:{app:mobile}:gold:0.
func (p *Policy) AppendItems(dst []Item, scope Scope, id string) []Item {
	for i, l := range p.Limits {
		key := "tg:{" + scopeNames[scope] + ":" + id + "}:" + p.Name + ":" + strconv.Itoa(i)
		dst = append(dst, Item{Key: key, Interval: l.Interval(), Tolerance: l.Tolerance()})
	}
	return dst
}
