package keys

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
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

// APIKeyPrefix starts every key that `enforcer keys new` generates, so a
// leaked key is recognisable by secret scanners and by people.
const APIKeyPrefix = "tgk_"

// Digest is the SHA-256 of an API key. Only digests are ever stored.
type Digest [sha256.Size]byte

// HashAPIKey returns the digest of a presented key.
func HashAPIKey(key string) Digest { return sha256.Sum256([]byte(key)) }

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
// small (64 bytes), since a replica may hold millions, and stored by
// value in its index.
type APIKey struct {
	Name string
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
// (96 bytes a key), where maps keep up to twice that.
type APIKeyIndex struct {
	shards [apiKeyShards]apiKeyShard
	n      int
}

type apiKeyShard struct {
	digests []Digest // sorted
	keys    []APIKey // keys[i] is the key of digests[i]
}

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

func compareDigests(a, b Digest) int { return bytes.Compare(a[:], b[:]) }

const apiKeyShards = 256

// shardOf spreads digests over the shards. Real digests are uniform in
// any byte, but hashes written by hand or by tools (0000…0001) are not:
// mixing every byte keeps those spread too.
func shardOf(d Digest) uint8 {
	x := binary.LittleEndian.Uint64(d[0:]) ^ binary.LittleEndian.Uint64(d[8:]) ^
		binary.LittleEndian.Uint64(d[16:]) ^ binary.LittleEndian.Uint64(d[24:])
	return uint8((x * 0x9E3779B97F4A7C15) >> 56)
}

// NewAPIKeyIndex indexes keys.
func NewAPIKeyIndex(entries map[Digest]APIKey) *APIKeyIndex {
	return (*APIKeyIndex)(nil).With(entries, nil)
}

// With returns an index with the keys of set added or replaced and those
// of remove removed, sharing every shard neither touches.
func (x *APIKeyIndex) With(set map[Digest]APIKey, remove []Digest) *APIKeyIndex {
	out := &APIKeyIndex{}
	if x != nil {
		*out = *x
	}
	var changes [apiKeyShards][]Digest // sorted, one entry per digest
	gone := make(map[Digest]bool, len(remove))
	for _, d := range remove {
		if _, replaced := set[d]; !replaced && !gone[d] {
			gone[d] = true
			changes[shardOf(d)] = append(changes[shardOf(d)], d)
		}
	}
	for d := range set {
		changes[shardOf(d)] = append(changes[shardOf(d)], d)
	}
	for b, ds := range changes {
		if len(ds) == 0 {
			continue
		}
		slices.SortFunc(ds, compareDigests)
		old := out.shards[b]
		next := apiKeyShard{digests: make([]Digest, 0, len(old.digests)+len(ds)), keys: make([]APIKey, 0, len(old.digests)+len(ds))}
		i := 0
		for _, d := range ds {
			for ; i < len(old.digests) && compareDigests(old.digests[i], d) < 0; i++ {
				next.digests, next.keys = append(next.digests, old.digests[i]), append(next.keys, old.keys[i])
			}
			if i < len(old.digests) && old.digests[i] == d {
				i++ // replaced or removed
				out.n--
			}
			if k, ok := set[d]; ok {
				next.digests, next.keys = append(next.digests, d), append(next.keys, k)
				out.n++
			}
		}
		next.digests, next.keys = append(next.digests, old.digests[i:]...), append(next.keys, old.keys[i:]...)
		out.shards[b] = next
	}
	return out
}

// Lookup returns the key whose digest matches presented.
func (x *APIKeyIndex) Lookup(presented string) (APIKey, bool) {
	if x == nil || presented == "" {
		return APIKey{}, false
	}
	return x.Get(HashAPIKey(presented))
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

// Len returns the number of keys.
func (x *APIKeyIndex) Len() int {
	if x == nil {
		return 0
	}
	return x.n
}

// NewAPIKey returns a fresh random key: the prefix and 32 random bytes
// (256 bits) in unpadded base64url.
func NewAPIKey() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return APIKeyPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
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
