package keys

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"iter"
	"math/bits"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// APIKeyPrefix started the keys that `enforcer keys new` generated before
// KeyPrefix's checksummed format. Such keys, like any other a deployment
// brings, are found by their SHA-256 alone.
const APIKeyPrefix = "tgk_"

// Digest is the SHA-256 of an API key. Only digests are ever stored.
type Digest [sha256.Size]byte

// HashAPIKey returns the digest of a presented key. Go converts a string
// of up to 32 bytes to bytes on the stack and a longer one on the heap;
// keys from `enforcer keys new` are longer, so a key of up to
// hashBufferBytes is copied to the stack here, for no allocation per
// request.
func HashAPIKey(key string) Digest {
	if len(key) > hashBufferBytes {
		return sha256.Sum256([]byte(key))
	}
	var buf [hashBufferBytes]byte
	return sha256.Sum256(buf[:copy(buf[:], key)])
}

const hashBufferBytes = 128

// ParseDigest parses 64 hex characters.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	if len(s) != hex.EncodedLen(len(d)) {
		return d, fmt.Errorf("want %d hex characters of SHA-256, got %d characters", hex.EncodedLen(len(d)), len(s))
	}
	if _, err := hex.Decode(d[:], []byte(s)); err != nil {
		return d, fmt.Errorf("not hex: %w", err)
	}
	return d, nil
}

func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// APIKey is the stored form of one key: never the key itself. It is kept
// small (72 bytes), since a replica may hold millions, and stored by
// value in its index.
type APIKey struct {
	// Name is the key's name; "" for a key named after its digest, which
	// Lookup fills in (a million such names stored would cost 16 MB).
	Name string
	// ID is the key id of a key in the checksummed format (KeyPrefix);
	// zero for a key without one.
	ID KeyID
	// AppID names the key's application, which each request looks up in
	// its snapshot: keys then outlive changes to applications and
	// subscriptions, so those never rebuild a million keys. A key whose
	// application is not there (a control plane has not sent it yet)
	// authenticates nobody.
	AppID     string
	ExpiresAt time.Time // zero: never
	// Limits are the key's scopes and the addresses it may be used from;
	// nil for a key with neither, as most are.
	Limits *KeyLimits
}

// KeyLimits are what few keys have.
type KeyLimits struct {
	AllowedCIDRs []netip.Prefix
	Scopes       []string
	ScopeText    string // Scopes joined by spaces, as sent upstream
}

// Scopes are the key's scopes.
func (k APIKey) Scopes() []string {
	if k.Limits == nil {
		return nil
	}
	return k.Limits.Scopes
}

// ScopeText is the key's scopes joined by spaces.
func (k APIKey) ScopeText() string {
	if k.Limits == nil {
		return ""
	}
	return k.Limits.ScopeText
}

// Expired reports whether the key has expired at now.
func (k APIKey) Expired(now time.Time) bool {
	return !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt)
}

// AllowsAddr reports whether a client at addr may use the key.
func (k APIKey) AllowsAddr(addr netip.Addr) bool {
	if k.Limits == nil || len(k.Limits.AllowedCIDRs) == 0 {
		return true
	}
	addr = addr.Unmap()
	for _, p := range k.Limits.AllowedCIDRs {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// APIKeyIndex finds a key by the digest of the presented value: one hash and
// a binary search in a shard of a few thousand, whatever the number of keys.
// Comparing digests rather than keys means the lookup leaks nothing useful
// through timing.
//
// The index is immutable and split into shards by a mix of the digest's bytes,
// so that With, which makes an index with a few keys changed, copies only
// the shards those keys fall in: a key added to a million costs a copy of
// about four thousand entries, and every other shard is shared. A shard is
// two sorted slices rather than a map: exactly the room its keys need
// (104 bytes a key), where maps keep up to twice that.
type APIKeyIndex struct {
	shards [apiKeyShards]apiKeyShard
	n      int
}

type apiKeyShard struct {
	digests  []Digest  // sorted
	keys     []APIKey  // keys[i] is the key of digests[i]
	versions []Version // versions[i] is its version; nil when no key has one
}

// Version is what the source that sent a key calls its version (a
// control plane's SHA-256 of the resource); zero for none.
type Version [sha256.Size]byte

// find searches near where d would be if digests were uniform, as real
// ones are (a few probes in neighbouring memory instead of a dozen across
// the shard), and falls back to the whole shard for others.
func (s *apiKeyShard) find(d Digest) (int, bool) {
	n := len(s.digests)
	guess, _ := bits.Mul64(binary.BigEndian.Uint64(d[:8]), uint64(n))
	lo, hi := max(int(guess)-findWindow, 0), min(int(guess)+findWindow, n)
	if lo > 0 && compareDigests(s.digests[lo], d) > 0 {
		lo = 0
	}
	if hi < n && compareDigests(s.digests[hi-1], d) < 0 {
		hi = n
	}
	i, ok := slices.BinarySearchFunc(s.digests[lo:hi], d, compareDigests)
	return lo + i, ok
}

// findWindow is about twice the spread of a uniform digest's place in a
// shard of a few thousand.
const findWindow = 64

func compareDigests(a, b Digest) int {
	// Most digests differ in their first eight bytes.
	if x, y := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8]); x != y {
		if x < y {
			return -1
		}
		return 1
	}
	return bytes.Compare(a[8:], b[8:])
}

const apiKeyShards = 256

// shardOf spreads digests over the shards. Real digests are uniform in
// any byte, but hashes written by hand or by tools (0000…0001) are not:
// mixing every byte keeps those spread too.
func shardOf(d Digest) uint8 {
	x := binary.LittleEndian.Uint64(d[0:]) ^ binary.LittleEndian.Uint64(d[8:]) ^
		binary.LittleEndian.Uint64(d[16:]) ^ binary.LittleEndian.Uint64(d[24:])
	return uint8((x * 0x9E3779B97F4A7C15) >> 56)
}

// Entry is a key with the digest it is found by.
type Entry struct {
	Digest Digest
	Key    APIKey
	// Version is kept in the index beside the key, so that a replica can
	// tell its control plane what it holds without a second table of a
	// million digests.
	Version Version
}

// NewAPIKeyIndex indexes keys.
func NewAPIKeyIndex(entries []Entry) *APIKeyIndex {
	return (*APIKeyIndex)(nil).With(entries, nil)
}

// With returns an index with the keys of set added or replaced and those
// of remove removed, sharing every shard neither touches. A digest set
// twice takes its last entry; one both set and removed is removed (one
// change should not say both, and the safe reading of one that does is
// the one that lets fewer in).
func (x *APIKeyIndex) With(set []Entry, remove []Digest) *APIKeyIndex {
	out := &APIKeyIndex{}
	if x != nil {
		*out = *x
	}
	setBy, setAt := byShard(set, func(e Entry) Digest { return e.Digest })
	removeBy, removeAt := byShard(remove, func(d Digest) Digest { return d })
	var buf []Entry
	for b := range apiKeyShards {
		ss, rs := setBy[setAt[b]:setAt[b+1]], removeBy[removeAt[b]:removeAt[b+1]]
		if len(ss) == 0 && len(rs) == 0 {
			continue
		}
		var delta int
		buf = LastByDigest(ss, entryDigest, buf)
		out.shards[b], delta = out.shards[b].merge(buf, sortedUnique(rs))
		out.n += delta
	}
	return out
}

func entryDigest(e *Entry) Digest { return e.Digest }

// byShard groups items by the shard of their digest, keeping their order
// within a shard: the items of shard b are out[at[b]:at[b+1]].
func byShard[T any](items []T, digest func(T) Digest) (out []T, at *[apiKeyShards + 1]int) {
	at = new([apiKeyShards + 1]int)
	for _, it := range items {
		at[int(shardOf(digest(it)))+1]++
	}
	for b := range apiKeyShards {
		at[b+1] += at[b]
	}
	next := *at
	out = make([]T, len(items))
	for _, it := range items {
		b := shardOf(digest(it))
		out[next[b]] = it
		next[b]++
	}
	return out, at
}

// LastByDigest returns items sorted by digest, with only the last of
// those that share a digest, in buf's memory (grown as needed; nil for
// fresh memory).
func LastByDigest[T any](items []T, digest func(*T) Digest, buf []T) []T {
	if len(items) <= 1<<12 {
		return appendLastByDigest(buf[:0], items, digest)
	}
	// Many: grouped by first byte (in order, as a stable counting sort),
	// so that each group is sorted on its own, in cache.
	var at [257]int
	for i := range items {
		at[int(digest(&items[i])[0])+1]++
	}
	for b := range 256 {
		at[b+1] += at[b]
	}
	next := at
	grouped := make([]T, len(items))
	for i := range items {
		b := digest(&items[i])[0]
		grouped[next[b]] = items[i]
		next[b]++
	}
	out := slices.Grow(buf[:0], len(items))
	for b := range 256 {
		out = appendLastByDigest(out, grouped[at[b]:at[b+1]], digest)
	}
	return out
}

// appendLastByDigest appends items sorted by digest, the last of each.
func appendLastByDigest[T any](out, items []T, digest func(*T) Digest) []T {
	if len(items) < 2 {
		return append(out, items...)
	}
	// Sorting positions, with position breaking ties, keeps the order of
	// equal digests as a stable sort would, at a fraction of its cost.
	order := make([]int32, len(items))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		if c := compareDigests(digest(&items[a]), digest(&items[b])); c != 0 {
			return c
		}
		return int(a - b)
	})
	for i, at := range order {
		if i+1 < len(order) && digest(&items[order[i+1]]) == digest(&items[at]) {
			continue // a later item replaces it
		}
		out = append(out, items[at])
	}
	return out
}

func sortedUnique(ds []Digest) []Digest {
	slices.SortFunc(ds, compareDigests)
	return slices.Compact(ds)
}

// merge returns the shard with set (sorted, unique) added or replaced and
// remove (sorted, unique) removed, and by how much its size changed.
func (s apiKeyShard) merge(set []Entry, remove []Digest) (apiKeyShard, int) {
	size := len(s.digests) + len(set)
	next := apiKeyShard{digests: make([]Digest, 0, size), keys: make([]APIKey, 0, size)}
	if len(s.versions) > 0 || slices.ContainsFunc(set, func(e Entry) bool { return e.Version != Version{} }) {
		next.versions = make([]Version, 0, size)
	}
	put := func(d Digest, k APIKey, v Version) {
		next.digests, next.keys = append(next.digests, d), append(next.keys, k)
		if next.versions != nil {
			next.versions = append(next.versions, v)
		}
	}
	i, j, k := 0, 0, 0
	for i < len(s.digests) || j < len(set) {
		// d is the least digest still to place, from the shard or from set.
		var d Digest
		switch {
		case j == len(set):
			d = s.digests[i]
		case i == len(s.digests):
			d = set[j].Digest
		case compareDigests(s.digests[i], set[j].Digest) <= 0:
			d = s.digests[i]
		default:
			d = set[j].Digest
		}
		for k < len(remove) && compareDigests(remove[k], d) < 0 {
			k++
		}
		removed := k < len(remove) && remove[k] == d
		switch {
		case j < len(set) && set[j].Digest == d:
			if !removed {
				put(d, set[j].Key, set[j].Version)
			}
			j++
		case !removed:
			put(d, s.keys[i], s.version(i))
		}
		if i < len(s.digests) && s.digests[i] == d {
			i++
		}
	}
	return next, len(next.digests) - len(s.digests)
}

func (s *apiKeyShard) version(i int) Version {
	if s.versions == nil {
		return Version{}
	}
	return s.versions[i]
}

// Lookup returns the key whose digest matches presented, named.
func (x *APIKeyIndex) Lookup(presented string) (APIKey, bool) {
	if x == nil || presented == "" {
		return APIKey{}, false
	}
	d := HashAPIKey(presented)
	k, ok := x.Get(d)
	if ok && k.Name == "" {
		k.Name = DefaultKeyName(d)
	}
	return k, ok
}

// DefaultKeyName names a key that has no name: after its digest's start,
// the same whatever the source it came from.
func DefaultKeyName(d Digest) string {
	var name [len("key-") + 8]byte
	copy(name[:], "key-")
	hex.Encode(name[len("key-"):], d[:4])
	return string(name[:])
}

// Get returns the key with digest d.
func (x *APIKeyIndex) Get(d Digest) (APIKey, bool) {
	if x == nil {
		return APIKey{}, false
	}
	s := &x.shards[shardOf(d)]
	if i, ok := s.find(d); ok {
		return s.keys[i], true
	}
	return APIKey{}, false
}

// All yields every key, in no particular order.
func (x *APIKeyIndex) All() iter.Seq2[Digest, APIKey] {
	return func(yield func(Digest, APIKey) bool) {
		if x == nil {
			return
		}
		for _, s := range x.shards {
			for i, d := range s.digests {
				if !yield(d, s.keys[i]) {
					return
				}
			}
		}
	}
}

// CountChanged counts the keys for which fn holds in the shards that
// differ between prev and x, in each: how a count over all keys follows
// a change at the cost of the shards it touched.
func (x *APIKeyIndex) CountChanged(prev *APIKeyIndex, fn func(APIKey) bool) (inPrev, inX int) {
	count := func(ks []APIKey) (n int) {
		for _, k := range ks {
			if fn(k) {
				n++
			}
		}
		return n
	}
	var none APIKeyIndex
	if prev == nil {
		prev = &none
	}
	if x == nil {
		x = &none
	}
	for b := range apiKeyShards {
		p, n := prev.shards[b].keys, x.shards[b].keys
		if len(p) == len(n) && (len(p) == 0 || &p[0] == &n[0]) {
			continue // shared
		}
		inPrev += count(p)
		inX += count(n)
	}
	return inPrev, inX
}

// Versions yields every key's version, in no particular order.
func (x *APIKeyIndex) Versions() iter.Seq2[Digest, Version] {
	return func(yield func(Digest, Version) bool) {
		if x == nil {
			return
		}
		for _, s := range x.shards {
			for i, d := range s.digests {
				if !yield(d, s.version(i)) {
					return
				}
			}
		}
	}
}

// Len returns the number of keys.
func (x *APIKeyIndex) Len() int {
	if x == nil {
		return 0
	}
	return x.n
}

// ParseCIDR accepts a prefix ("10.0.0.0/8") or a single address.
func ParseCIDR(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}
