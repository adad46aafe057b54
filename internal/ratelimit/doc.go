// Package ratelimit admits or refuses requests against GCRA limits, in one
// replica's memory or shared through Redis.
//
// GCRA (the generic cell rate algorithm) keeps one time per key, the
// theoretical arrival time (TAT). A limit of `requests` per `per` with
// `burst` has emission interval T = per/requests and tolerance τ = burst·T:
// a request at time now conforms if max(TAT, now) − now ≤ τ, and then moves
// TAT on by T. A fresh key therefore admits burst+1 requests at once and
// then one every T: smooth, with no doubling at window edges.
//
// A Store evaluates all the limits of one decision at once: either every
// limit admits and all are consumed, or the request is refused and none is.
// The Limiter wraps a store with the failure policy (fail open or closed)
// and, for Redis, a local fallback while Redis is unreachable.
package ratelimit
