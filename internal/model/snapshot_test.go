package model

import (
	"net/netip"
	"testing"
)

func TestClientIPPolicyResolve(t *testing.T) {
	trusted := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("fd00::/8"),
	}
	xff := ClientIPPolicy{Header: "x-forwarded-for", TrustedProxies: trusted}
	realIP := ClientIPPolicy{Header: "x-real-ip", TrustedProxies: trusted}
	addr := netip.MustParseAddr

	tests := []struct {
		name   string
		policy ClientIPPolicy
		peer   string
		header string
		want   string
	}{
		{"no header configured", ClientIPPolicy{}, "10.0.0.1", "203.0.113.7", "10.0.0.1"},
		{"no header configured, trusted proxies ignored", ClientIPPolicy{TrustedProxies: trusted}, "10.0.0.1", "203.0.113.7", "10.0.0.1"},
		{"header configured but not sent", xff, "10.0.0.1", "", "10.0.0.1"},
		{"untrusted peer sends x-forwarded-for", xff, "198.51.100.9", "203.0.113.7", "198.51.100.9"},
		{"untrusted peer sends x-real-ip", realIP, "198.51.100.9", "203.0.113.7", "198.51.100.9"},

		{"x-real-ip from trusted peer", realIP, "10.0.0.1", "203.0.113.7", "203.0.113.7"},
		{"x-real-ip with spaces", realIP, "10.0.0.1", "  203.0.113.7 ", "203.0.113.7"},
		{"x-real-ip IPv6", realIP, "fd00::1", "2001:db8::7", "2001:db8::7"},
		{"x-real-ip IPv4-mapped is unmapped", realIP, "10.0.0.1", "::ffff:203.0.113.7", "203.0.113.7"},
		{"x-real-ip garbage", realIP, "10.0.0.1", "not-an-ip", "10.0.0.1"},
		{"x-real-ip is one address, not a list", realIP, "10.0.0.1", "203.0.113.7, 10.0.0.2", "10.0.0.1"},

		{"x-forwarded-for single entry", xff, "10.0.0.1", "203.0.113.7", "203.0.113.7"},
		{
			// The client wrote the leftmost entries itself; the first
			// untrusted entry from the right is the last one a trusted
			// proxy vouches for.
			"x-forwarded-for walked right to left", xff, "10.0.0.1",
			"1.1.1.1, 203.0.113.7, 10.9.9.9, 10.0.0.2", "203.0.113.7",
		},
		{"x-forwarded-for without spaces", xff, "10.0.0.1", "1.1.1.1,203.0.113.7,10.0.0.2", "203.0.113.7"},
		{"x-forwarded-for IPv6 hops", xff, "fd00::1", "2001:db8::1, fd00::2", "2001:db8::1"},
		{"x-forwarded-for mapped hop is unmapped", xff, "10.0.0.1", "::ffff:203.0.113.7", "203.0.113.7"},
		{"x-forwarded-for mapped trusted hop is skipped", xff, "10.0.0.1", "203.0.113.7, ::ffff:10.0.0.2", "203.0.113.7"},
		{"all-trusted chain gives the leftmost hop", xff, "10.0.0.1", "10.0.0.3, 10.0.0.2", "10.0.0.3"},
		{"garbage entry", xff, "10.0.0.1", "garbage", "10.0.0.1"},
		{"garbage rightmost entry", xff, "10.0.0.1", "203.0.113.7, garbage", "10.0.0.1"},
		{"empty rightmost entry", xff, "10.0.0.1", "203.0.113.7,", "10.0.0.1"},
		{"address with port is garbage", xff, "10.0.0.1", "203.0.113.7:4711", "10.0.0.1"},
		{
			// Garbage behind a trusted hop stops the walk at that hop: the
			// nearest proxy that handed the request on.
			"garbage behind a trusted hop", xff, "10.0.0.1", "garbage, 10.0.0.2", "10.0.0.2",
		},

		{"IPv4-mapped IPv6 peer is trusted", xff, "::ffff:10.0.0.1", "203.0.113.7", "203.0.113.7"},
		{"IPv4-mapped IPv6 peer, x-real-ip", realIP, "::ffff:10.0.0.1", "203.0.113.7", "203.0.113.7"},
		{"IPv4-mapped IPv6 peer, untrusted", xff, "::ffff:198.51.100.9", "203.0.113.7", "::ffff:198.51.100.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.policy.Resolve(addr(tt.peer), tt.header)
			if got != addr(tt.want) {
				t.Errorf("Resolve(%s, %q) = %s, want %s", tt.peer, tt.header, got, tt.want)
			}
		})
	}
}

func TestClientIPPolicyTrusts(t *testing.T) {
	p := ClientIPPolicy{TrustedProxies: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.168.1.7/32"),
	}}
	tests := []struct {
		addr string
		want bool
	}{
		{"10.1.2.3", true},
		{"::ffff:10.1.2.3", true},
		{"192.168.1.7", true},
		{"192.168.1.8", false},
		{"11.0.0.1", false},
		{"::1", false},
	}
	for _, tt := range tests {
		if got := p.Trusts(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("Trusts(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	if (ClientIPPolicy{}).Trusts(netip.MustParseAddr("10.0.0.1")) {
		t.Error("a policy without proxies trusts 10.0.0.1")
	}
}

func TestStore(t *testing.T) {
	a, b := &Snapshot{Version: "a"}, &Snapshot{Version: "b"}
	s := NewStore(a)
	if s.Load() != a {
		t.Fatal("Load after NewStore(a) is not a")
	}
	if old := s.Swap(b); old != a {
		t.Errorf("Swap returned %v, want a", old)
	}
	if s.Load() != b {
		t.Error("Load after Swap(b) is not b")
	}
}
