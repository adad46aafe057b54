package authz

import (
	"hash/maphash"
	"sync/atomic"
)

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
	hash  uint64
	key   string
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

// hash returns the slot hash of key.
func (c *slotCache[E]) hash(key string) uint64 { return maphash.String(c.seed, key) }

// get returns the value stored for key, if its slot still holds it.
func (c *slotCache[E]) get(h uint64, key string) (E, bool) {
	if e := c.slots[h&c.mask].Load(); e != nil && e.hash == h && e.key == key {
		return e.value, true
	}
	var zero E
	return zero, false
}

// put stores value for key, evicting the slot's previous entry.
func (c *slotCache[E]) put(h uint64, key string, value E) {
	c.slots[h&c.mask].Store(&slotEntry[E]{hash: h, key: key, value: value})
}
