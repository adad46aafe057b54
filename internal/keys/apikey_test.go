package keys

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestDigest(t *testing.T) {
	sum := sha256.Sum256([]byte("secret"))
	d, err := ParseDigest(hex.EncodeToString(sum[:]))
	if err != nil || d != HashAPIKey("secret") || d.String() != hex.EncodeToString(sum[:]) {
		t.Fatalf("ParseDigest = %v, %v", d, err)
	}
	for _, bad := range []string{"", "abc", strings.Repeat("g", 64), strings.Repeat("a", 63)} {
		if _, err := ParseDigest(bad); err == nil {
			t.Errorf("ParseDigest(%q) accepted", bad)
		}
	}
}

// TestHashAPIKey: the digest is SHA-256 of the key, whether the key is
// hashed from the stack or not, and a key of the generated length costs
// no allocation.
func TestHashAPIKey(t *testing.T) {
	for _, n := range []int{0, 1, 32, 33, keyLen, hashBufferBytes - 1, hashBufferBytes, hashBufferBytes + 1, 4096} {
		key := strings.Repeat("k", n)
		if got, want := HashAPIKey(key), Digest(sha256.Sum256([]byte(key))); got != want {
			t.Errorf("%d bytes: digest %s, want %s", n, got, want)
		}
	}
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { HashAPIKey(k.Key) }); n != 0 {
		t.Errorf("hashing a generated key allocates %v times", n)
	}
}

func TestIndexLookup(t *testing.T) {
	x := NewAPIKeyIndex([]Entry{{Digest: HashAPIKey("secret"), Key: APIKey{Name: "ci"}}})
	found := func(x *APIKeyIndex, presented string) bool { _, ok := x.Lookup(presented); return ok }
	if k, ok := x.Lookup("secret"); !ok || k.Name != "ci" || found(x, "Secret") || found(x, "") || x.Len() != 1 {
		t.Fatal("lookup by digest failed")
	}
	var none *APIKeyIndex
	if found(none, "secret") {
		t.Fatal("nil index found a key")
	}
}

func TestExpiryAndCIDRs(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		key     APIKey
		addr    string
		expired bool
		allowed bool
	}{
		{APIKey{}, "203.0.113.1", false, true},
		{APIKey{ExpiresAt: now}, "203.0.113.1", true, true},
		{APIKey{ExpiresAt: now.Add(time.Second)}, "203.0.113.1", false, true},
		{APIKey{Limits: &KeyLimits{AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}, "10.9.9.9", false, true},
		{APIKey{Limits: &KeyLimits{AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}, "::ffff:10.9.9.9", false, true},
		{APIKey{Limits: &KeyLimits{AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}, "11.0.0.1", false, false},
		{APIKey{Limits: &KeyLimits{AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("2001:db8::/32")}}}, "2001:db8::5", false, true},
	}
	for _, tc := range cases {
		if got := tc.key.Expired(now); got != tc.expired {
			t.Errorf("%+v Expired = %v", tc.key, got)
		}
		if got := tc.key.AllowsAddr(netip.MustParseAddr(tc.addr)); got != tc.allowed {
			t.Errorf("%+v AllowsAddr(%s) = %v", tc.key, tc.addr, got)
		}
	}
	// No address known (zero Addr): a CIDR-restricted key is refused.
	restricted := APIKey{Limits: &KeyLimits{AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}}
	if restricted.AllowsAddr(netip.Addr{}) {
		t.Error("an unknown client address passed a CIDR check")
	}
}

func TestParseCIDR(t *testing.T) {
	for in, want := range map[string]string{
		"10.1.2.3/8": "10.0.0.0/8", "10.1.2.3": "10.1.2.3/32", "2001:db8::1": "2001:db8::1/128",
		" 192.168.0.0/16 ": "192.168.0.0/16", "::ffff:1.2.3.4": "1.2.3.4/32",
	} {
		p, err := ParseCIDR(in)
		if err != nil || p.String() != want {
			t.Errorf("ParseCIDR(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, bad := range []string{"", "10.0.0.0/33", "host", "1.2.3"} {
		if _, err := ParseCIDR(bad); err == nil {
			t.Errorf("ParseCIDR(%q) accepted", bad)
		}
	}
}

func TestAPIKeyIndexWith(t *testing.T) {
	var entries []Entry
	for i := range 2000 {
		entries = append(entries, Entry{Digest: HashAPIKey(fmt.Sprintf("key-%d", i)), Key: APIKey{Name: fmt.Sprintf("key-%d", i)}})
	}
	base := NewAPIKeyIndex(entries)
	next := base.With([]Entry{{Digest: HashAPIKey("new"), Key: APIKey{Name: "new"}}, {Digest: HashAPIKey("key-1"), Key: APIKey{Name: "renamed"}}},
		[]Digest{HashAPIKey("key-2"), HashAPIKey("never-there")})
	tests := []struct {
		index *APIKeyIndex
		key   string
		want  string
	}{
		{base, "new", ""}, {base, "key-1", "key-1"}, {base, "key-2", "key-2"},
		{next, "new", "new"}, {next, "key-1", "renamed"}, {next, "key-2", ""}, {next, "key-3", "key-3"},
	}
	for _, tc := range tests {
		got := ""
		if k, ok := tc.index.Lookup(tc.key); ok {
			got = k.Name
		}
		if got != tc.want {
			t.Errorf("Lookup(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
	if both := next.With([]Entry{{Digest: HashAPIKey("key-3"), Key: APIKey{Name: "again"}}}, []Digest{HashAPIKey("key-3")}); both.Len() != 1999 {
		t.Errorf("a key both set and removed: Len %d, want 1999 (removed)", both.Len())
	}
	if base.Len() != 2000 || next.Len() != 2000 {
		t.Errorf("Len: base %d, next %d; want 2000 and 2000 (one added, one removed)", base.Len(), next.Len())
	}
	shared := 0
	for b := range apiKeyShards {
		if len(base.shards[b].digests) > 0 && &base.shards[b].digests[0] == &next.shards[b].digests[0] {
			shared++
		}
	}
	if shared < apiKeyShards-3-10 { // at most three shards touched (empty shards aside)
		t.Errorf("only %d shards shared after changing three keys", shared)
	}
}

// TestAPIKeyIndexFollowsAMap: random changes applied with With, checked
// against a plain map after each. Changes repeat digests: the last entry
// for a digest wins, and a removal wins over any entry.
func TestAPIKeyIndexFollowsAMap(t *testing.T) {
	type kept struct {
		name    string
		version Version
	}
	rng := rand.New(rand.NewPCG(1, 2))
	want := map[Digest]kept{}
	var x *APIKeyIndex
	digest := func() Digest { return HashAPIKey(fmt.Sprint(rng.IntN(3000))) }
	for round := range 200 {
		var set []Entry
		var remove []Digest
		for i := range rng.IntN(50) {
			var v Version
			if round%3 > 0 { // some rounds set no version
				v[0], v[1] = byte(round), byte(i)
			}
			set = append(set, Entry{Digest: digest(), Key: APIKey{Name: fmt.Sprint("r", round, "-", i)}, Version: v})
		}
		for range rng.IntN(50) {
			remove = append(remove, digest())
		}
		x = x.With(set, remove)
		for _, e := range set {
			want[e.Digest] = kept{e.Key.Name, e.Version}
		}
		for _, d := range remove {
			delete(want, d)
		}
		if x.Len() != len(want) {
			t.Fatalf("round %d: Len %d, want %d", round, x.Len(), len(want))
		}
		keys, versions := 0, 0
		for d, k := range x.All() {
			if want[d].name != k.Name {
				t.Fatalf("round %d: key %s is %q, want %q", round, d, k.Name, want[d].name)
			}
			keys++
		}
		for d, v := range x.Versions() {
			if want[d].version != v {
				t.Fatalf("round %d: key %s has version %x, want %x", round, d, v, want[d].version)
			}
			versions++
		}
		if keys != len(want) || versions != len(want) {
			t.Fatalf("round %d: All yields %d keys and Versions %d, want %d", round, keys, versions, len(want))
		}
	}
}

func BenchmarkAPIKeyLookup(b *testing.B) {
	entries := make([]Entry, 1_000_000)
	for i := range entries {
		entries[i] = Entry{Digest: HashAPIKey(fmt.Sprint("key-", i)), Key: APIKey{Name: "k"}}
	}
	x := NewAPIKeyIndex(entries)
	entries = nil
	runtime.GC() // the setup's garbage, not collected during the loop
	presented := "key-12345"
	b.ResetTimer()
	for range b.N {
		if _, ok := x.Lookup(presented); !ok {
			b.Fatal("not found")
		}
	}
}

// BenchmarkAPIKeyIndexBuild indexes a million keys from nothing, as an
// initial sync does.
func BenchmarkAPIKeyIndexBuild(b *testing.B) {
	entries := make([]Entry, 1_000_000)
	for i := range entries {
		entries[i] = Entry{Digest: HashAPIKey(fmt.Sprint("key-", i)), Key: APIKey{Name: "k"}}
	}
	b.ResetTimer()
	for range b.N {
		if x := NewAPIKeyIndex(entries); x.Len() != len(entries) {
			b.Fatal(x.Len())
		}
	}
}

// TestLastByDigest: sorted, the last of each digest kept, for a few items
// and for many (grouped by first byte first).
func TestLastByDigest(t *testing.T) {
	type item struct {
		d   Digest
		pos int
	}
	for _, n := range []int{0, 1, 50, 20_000} {
		rng := rand.New(rand.NewPCG(uint64(n), 7))
		items := make([]item, n)
		last := map[Digest]int{}
		for i := range items {
			items[i] = item{HashAPIKey(fmt.Sprint(rng.IntN(n/2 + 1))), i}
			last[items[i].d] = i
		}
		got := LastByDigest(items, func(it *item) Digest { return it.d }, nil)
		if len(got) != len(last) {
			t.Fatalf("n=%d: %d items, want %d", n, len(got), len(last))
		}
		for i, it := range got {
			if last[it.d] != it.pos || (i > 0 && compareDigests(got[i-1].d, it.d) >= 0) {
				t.Fatalf("n=%d: item %d is %x from %d; want sorted, the last of each (%d)", n, i, it.d[:4], it.pos, last[it.d])
			}
		}
	}
}
