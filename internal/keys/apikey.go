package keys

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/catalog"
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

// APIKey is the stored form of one key: never the key itself.
type APIKey struct {
	Name         string
	Application  *catalog.Application
	ExpiresAt    time.Time // zero: never
	AllowedCIDRs []netip.Prefix
	Scopes       []string
	ScopeText    string // Scopes joined by spaces, as sent upstream
}

// Expired reports whether the key has expired at now.
func (k *APIKey) Expired(now time.Time) bool {
	return !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt)
}

// AllowsAddr reports whether a client at addr may use the key.
func (k *APIKey) AllowsAddr(addr netip.Addr) bool {
	if len(k.AllowedCIDRs) == 0 {
		return true
	}
	addr = addr.Unmap()
	for _, p := range k.AllowedCIDRs {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// APIKeyIndex finds a key by the digest of the presented value: one hash and
// one map lookup, whatever the number of keys. Comparing digests rather than
// keys means the lookup leaks nothing useful through timing.
//
// The index is immutable and split into shards by a mix of the digest's bytes,
// so that With, which makes an index with a few keys changed, copies only
// the shards those keys fall in: a key added to a million costs a copy of
// about four thousand entries, and every other shard is shared.
type APIKeyIndex struct {
	shards [apiKeyShards]map[Digest]*APIKey
	n      int
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

// NewAPIKeyIndex indexes keys; digests must be unique (the config compiler
// checks that).
func NewAPIKeyIndex(entries map[Digest]*APIKey) *APIKeyIndex {
	x := &APIKeyIndex{n: len(entries)}
	for d, k := range entries {
		b := shardOf(d)
		shard := x.shards[b]
		if shard == nil {
			shard = make(map[Digest]*APIKey, len(entries)/apiKeyShards+1)
			x.shards[b] = shard
		}
		shard[d] = k
	}
	return x
}

// With returns an index with the keys of set added or replaced and those
// of remove removed, sharing every shard neither touches.
func (x *APIKeyIndex) With(set map[Digest]*APIKey, remove []Digest) *APIKeyIndex {
	out := &APIKeyIndex{}
	if x != nil {
		*out = *x
	}
	copied := [apiKeyShards]bool{}
	shard := func(b byte) map[Digest]*APIKey {
		if !copied[b] {
			m := make(map[Digest]*APIKey, len(out.shards[b])+1)
			for d, k := range out.shards[b] {
				m[d] = k
			}
			out.shards[b], copied[b] = m, true
		}
		return out.shards[b]
	}
	for _, d := range remove {
		if _, ok := out.shards[shardOf(d)][d]; ok {
			delete(shard(shardOf(d)), d)
			out.n--
		}
	}
	for d, k := range set {
		m := shard(shardOf(d))
		if _, ok := m[d]; !ok {
			out.n++
		}
		m[d] = k
	}
	return out
}

// Lookup returns the key whose digest matches presented, or nil.
func (x *APIKeyIndex) Lookup(presented string) *APIKey {
	if x == nil || presented == "" {
		return nil
	}
	d := HashAPIKey(presented)
	return x.shards[shardOf(d)][d]
}

// Get returns the key with digest d, or nil.
func (x *APIKeyIndex) Get(d Digest) *APIKey {
	if x == nil {
		return nil
	}
	return x.shards[shardOf(d)][d]
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
