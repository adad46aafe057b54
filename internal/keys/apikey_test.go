package keys

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestNewAPIKey(t *testing.T) {
	a, err := NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewAPIKey()
	if a == b {
		t.Fatal("two generated keys are equal")
	}
	// prefix + 32 bytes in unpadded base64url
	if !strings.HasPrefix(a, APIKeyPrefix) || len(a) != len(APIKeyPrefix)+43 || strings.ContainsAny(a, "+/=") {
		t.Fatalf("key %q has the wrong shape", a)
	}
}

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

func TestIndexLookup(t *testing.T) {
	k := &APIKey{Name: "ci"}
	x := NewAPIKeyIndex(map[Digest]*APIKey{HashAPIKey("secret"): k})
	if x.Lookup("secret") != k || x.Lookup("Secret") != nil || x.Lookup("") != nil || x.Len() != 1 {
		t.Fatal("lookup by digest failed")
	}
	var none *APIKeyIndex
	if none.Lookup("secret") != nil {
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
		{APIKey{AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, "10.9.9.9", false, true},
		{APIKey{AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, "::ffff:10.9.9.9", false, true},
		{APIKey{AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, "11.0.0.1", false, false},
		{APIKey{AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("2001:db8::/32")}}, "2001:db8::5", false, true},
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
	restricted := APIKey{AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}
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
	entries := map[Digest]*APIKey{}
	for i := range 2000 {
		entries[HashAPIKey(fmt.Sprintf("key-%d", i))] = &APIKey{Name: fmt.Sprintf("key-%d", i)}
	}
	base := NewAPIKeyIndex(entries)
	added := &APIKey{Name: "new"}
	renamed := &APIKey{Name: "renamed"}
	next := base.With(map[Digest]*APIKey{HashAPIKey("new"): added, HashAPIKey("key-1"): renamed},
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
		if k := tc.index.Lookup(tc.key); k != nil {
			got = k.Name
		}
		if got != tc.want {
			t.Errorf("Lookup(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
	if base.Len() != 2000 || next.Len() != 2000 {
		t.Errorf("Len: base %d, next %d; want 2000 and 2000 (one added, one removed)", base.Len(), next.Len())
	}
	shared := 0
	for b := range apiKeyShards {
		if len(base.shards[b]) > 0 && reflect.ValueOf(base.shards[b]).Pointer() == reflect.ValueOf(next.shards[b]).Pointer() {
			shared++
		}
	}
	if shared < apiKeyShards-3-10 { // at most three shards touched (empty shards aside)
		t.Errorf("only %d shards shared after changing three keys", shared)
	}
}
