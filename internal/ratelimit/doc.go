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
//
// The memory store holds at most MemoryOptions.MaxKeys keys (default
// 100 000), kept per shard, however many distinct keys callers send. A
// full shard first drops keys whose TAT has passed, which are as good as
// fresh; failing that it evicts the sampled key with the smallest TAT and
// raises the floor of that key's limit shape (interval and tolerance) to
// its TAT. Keys the shard does not hold start from max(now, floor), so
// forgetting a key can only make its shape stricter, never admit more
// than the limit allows; a floor stops mattering once it has passed.
// Sweep drops passed keys and rebuilds a shard's map once it has shrunk
// well below its peak, since Go maps do not shrink.
package ratelimit
