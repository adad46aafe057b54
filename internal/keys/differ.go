package keys

import (
	"math/bits"
	"slices"
)

// Differ compares a whole list of keys, given one at a time, with an
// index: what With needs to turn the index into the list. It holds a bit
// per indexed key and the keys that differ, never the list itself, so a
// file of a million keys that changes one costs its reading and little
// more.
type Differ struct {
	x         *APIKeyIndex
	seen      [apiKeyShards][]uint64 // a bit per indexed key: listed
	set       []Entry
	new       map[Digest]bool // listed and not indexed
	duplicate bool
}

// NewDiffer starts a comparison with x.
func (x *APIKeyIndex) NewDiffer() *Differ {
	d := &Differ{x: x, new: map[Digest]bool{}}
	if x == nil {
		d.x = &APIKeyIndex{}
	}
	for b := range apiKeyShards {
		d.seen[b] = make([]uint64, (len(d.x.shards[b].digests)+63)/64)
	}
	return d
}

// Add takes the next entry of the list. It reports false for a digest
// listed before, which makes the list invalid (Duplicate).
func (d *Differ) Add(e Entry) bool {
	s := &d.x.shards[shardOf(e.Digest)]
	i, ok := s.find(e.Digest)
	switch {
	case !ok && d.new[e.Digest]:
		d.duplicate = true
		return false
	case !ok:
		d.new[e.Digest] = true
		d.set = append(d.set, e)
		return true
	}
	seen := d.seen[shardOf(e.Digest)]
	if seen[i/64]&(1<<(i%64)) != 0 {
		d.duplicate = true
		return false
	}
	seen[i/64] |= 1 << (i % 64)
	if !s.keys[i].Equal(e.Key) || s.version(i) != e.Version {
		d.set = append(d.set, e)
	}
	return true
}

// Duplicate reports whether a digest was listed twice.
func (d *Differ) Duplicate() bool { return d.duplicate }

// Result is what the list changes: entries new or different, and the
// digests of indexed keys it does not list.
func (d *Differ) Result() (set []Entry, remove []Digest) {
	for b := range apiKeyShards {
		s := &d.x.shards[b]
		for i, w := range d.seen[b] {
			for w != ^uint64(0) {
				j := i*64 + bits.TrailingZeros64(^w)
				if j >= len(s.digests) {
					break
				}
				remove = append(remove, s.digests[j])
				w |= 1 << (j % 64)
			}
		}
	}
	return d.set, remove
}

// Equal reports whether k and o are the same key.
func (k APIKey) Equal(o APIKey) bool {
	if k.Name != o.Name || k.ID != o.ID || k.AppID != o.AppID || !k.ExpiresAt.Equal(o.ExpiresAt) || (k.Limits == nil) != (o.Limits == nil) {
		return false
	}
	return k.Limits == nil || slices.Equal(k.Limits.AllowedCIDRs, o.Limits.AllowedCIDRs) &&
		slices.Equal(k.Limits.Scopes, o.Limits.Scopes)
}
