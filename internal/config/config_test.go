package config

import (
	"net/netip"
	"strings"
	"testing"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// TestCompileClientIP checks that the config's clientIp section becomes
// the policy Resolve uses.
func TestCompileClientIP(t *testing.T) {
	snap := mustCompile(t, []byte(`
clientIp:
  header: X-Forwarded-For
  trustedProxies: [10.1.2.3/8, 192.168.0.1, "::ffff:172.16.0.1", "fd00::/8"]
`), noEnv)
	want := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.168.0.1/32"),
		netip.MustParsePrefix("172.16.0.1/32"),
		netip.MustParsePrefix("fd00::/8"),
	}
	got := snap.ClientIP
	if got.Header != "x-forwarded-for" {
		t.Errorf("Header = %q, want x-forwarded-for", got.Header)
	}
	if len(got.TrustedProxies) != len(want) {
		t.Fatalf("TrustedProxies = %v, want %v", got.TrustedProxies, want)
	}
	for i := range want {
		if got.TrustedProxies[i] != want[i] {
			t.Errorf("TrustedProxies[%d] = %v, want %v", i, got.TrustedProxies[i], want[i])
		}
	}
	if c := got.Resolve(netip.MustParseAddr("172.16.0.1"), "203.0.113.7"); c != netip.MustParseAddr("203.0.113.7") {
		t.Errorf("Resolve via 172.16.0.1 = %s, want 203.0.113.7", c)
	}
}

func TestLoad(t *testing.T) {
	path := writeConfig(t, t.TempDir(), "config.yaml", configVersion("one"))
	snap, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if apiName(snap.Snapshot) != "one" || !strings.HasPrefix(snap.Version, "sha256:") {
		t.Errorf("Load = version %q, API name %q; want sha256:…, one", snap.Version, apiName(snap.Snapshot))
	}

	if _, err := Load(path + ".missing"); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}

func TestTimestampsOutsideProtobufRange(t *testing.T) {
	for _, ts := range []string{"0000-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00"} {
		r := &tollgatev1.Resources{}
		ps := DecodeMessage([]byte("revokedTokens: [{jti: a, expiresAt: \""+ts+"\"}]"), r)
		if len(ps) != 1 || !strings.Contains(ps[0].Msg, "years 1 and 9999") {
			t.Errorf("%s: %v", ts, ps)
		}
	}
	if ps := DecodeMessage([]byte(`revokedTokens: [{jti: a, expiresAt: "9999-12-31T23:00:00Z"}]`), &tollgatev1.Resources{}); len(ps) != 0 {
		t.Errorf("the last hour of year 9999: %v", ps)
	}
}
