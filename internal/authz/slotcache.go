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
// array of slots addressed by a seeded hash of the key. A lookup is one
// atomic load and a key comparison; a store replaces whatever the slot
// held. Collisions simply evict, which bounds memory without bookkeeping,
// and the random seed means a client cannot aim its keys at one slot.
type slotCache[E any] struct {
	seed  maphash.Seed
	slots []atomic.Pointer[slotEntry[E]]
	mask  uint64
}

type slotEntry[E any] struct {
	key   cacheKey
	value E
}

// newSlotCache returns a cache of at least size slots (rounded up to a
// power of two).
func newSlotCache[E any](size int) *slotCache[E] {
	n := 1
	for n < size {
		n <<= 1
	}
	return &slotCache[E]{seed: maphash.MakeSeed(), slots: make([]atomic.Pointer[slotEntry[E]], n), mask: uint64(n - 1)}
}

func (c *slotCache[E]) slot(k *cacheKey) *atomic.Pointer[slotEntry[E]] {
	return &c.slots[maphash.Bytes(c.seed, k[:])&c.mask]
}

// get returns the value stored for k, if its slot still holds it.
func (c *slotCache[E]) get(k *cacheKey) (E, bool) {
	if e := c.slot(k).Load(); e != nil && e.key == *k {
		return e.value, true
	}
	var zero E
	return zero, false
}

// put stores value for k, evicting the slot's previous entry.
func (c *slotCache[E]) put(k *cacheKey, value E) {
	c.slot(k).Store(&slotEntry[E]{key: *k, value: value})
}
