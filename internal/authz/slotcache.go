package authz

import (
	"crypto/sha256"
	"encoding/binary"
	"hash/maphash"
	"sync/atomic"
	"unsafe"
)

// cacheKey names a cache entry by the SHA-256 of what it is about (a
// token, a certificate, a caller): a fixed 32 bytes, so an entry never
// holds — or keeps alive — the request it came from, and no two inputs
// share an entry.
type cacheKey [sha256.Size]byte

// keyOf hashes the parts of a key; parts are length-prefixed so that
// ("ab", "c") and ("a", "bc") differ.
func keyOf(parts ...string) cacheKey {
	if len(parts) == 1 {
		return sha256.Sum256(bytesOf(parts[0]))
	}
	var buf [256]byte
	b := buf[:0]
	for _, p := range parts {
		b = binary.LittleEndian.AppendUint64(b, uint64(len(p)))
		b = append(b, p...)
	}
	return sha256.Sum256(b)
}

// bytesOf views s as bytes without copying it (a token is kilobytes and
// hashed on every check); the hash only reads them.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// slotCache is a bounded, lock-free cache of immutable entries: a fixed
// array of slots in buckets of cacheWays, a bucket addressed by a seeded
// hash of the key. A lookup is at most cacheWays atomic loads and key
// comparisons; a store takes the key's own slot, an empty one, or one not
// used since the bucket was last swept (a clock per bucket), so the
// entries in use stay. Memory is bounded by the number of slots, and the
// random seed means a client cannot aim its keys at one bucket.
//
// With direct mapping (one slot per bucket) 6% of a thousand live tokens
// evicted each other in 16384 slots; with eight ways none do, and a cache
// of n slots keeps about 0.98n of 0.4n live keys (see the README on
// limits.tokenCacheEntries).
type slotCache[E any] struct {
	seed  maphash.Seed
	slots []atomic.Pointer[slotEntry[E]]
	mask  uint64 // buckets - 1
}

// cacheWays is the number of slots per bucket.
const cacheWays = 8

type slotEntry[E any] struct {
	key   cacheKey
	value E
	used  atomic.Bool // read since the bucket's clock last passed it
}

// newSlotCache returns a cache of at least size slots (rounded up to a
// power of two, and to at least one bucket).
func newSlotCache[E any](size int) *slotCache[E] {
	n := cacheWays
	for n < size {
		n <<= 1
	}
	return &slotCache[E]{seed: maphash.MakeSeed(), slots: make([]atomic.Pointer[slotEntry[E]], n), mask: uint64(n/cacheWays - 1)}
}

// bucket returns k's slots, and where its clock hand starts.
func (c *slotCache[E]) bucket(k *cacheKey) ([]atomic.Pointer[slotEntry[E]], int) {
	h := maphash.Bytes(c.seed, k[:])
	b := (h & c.mask) * cacheWays
	return c.slots[b : b+cacheWays], int(h >> 61) // the top bits: 0..7
}

// get returns the value stored for k, if its bucket still holds it.
func (c *slotCache[E]) get(k *cacheKey) (E, bool) {
	slots, _ := c.bucket(k)
	for i := range slots {
		if e := slots[i].Load(); e != nil && e.key == *k {
			if !e.used.Load() { // a write only when it changes: hot entries stay shared
				e.used.Store(true)
			}
			return e.value, true
		}
	}
	var zero E
	return zero, false
}

// put stores value for k, in k's slot if it has one, else in an empty
// slot, else in the first slot the clock finds unused since its last
// pass. Racing puts may overwrite each other; a cache may lose entries.
func (c *slotCache[E]) put(k *cacheKey, value E) {
	entry := &slotEntry[E]{key: *k, value: value}
	slots, hand := c.bucket(k)
	for i := range slots {
		if e := slots[i].Load(); e == nil || e.key == *k {
			slots[i].Store(entry)
			return
		}
	}
	for j := range 2 * cacheWays { // after one pass every used bit is clear
		i := (hand + j) % cacheWays
		e := slots[i].Load()
		if e == nil || !e.used.Load() {
			slots[i].Store(entry)
			return
		}
		e.used.Store(false)
	}
	slots[hand].Store(entry)
}
