package authz

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/keys"
)

// TestAPIKeyFormats: keys of the checksummed format and of others. A key
// that claims the format (tg_) but is not well formed, and one longer
// than the bound, is refused before the key index is asked: each of them
// here has its hash in the config, and is refused anyway.
func TestAPIKeyFormats(t *testing.T) {
	k, err := keys.GenerateKeyFrom(rand.NewChaCha8([32]byte{1}))
	if err != nil {
		t.Fatal(err)
	}
	valid := k.Key
	last := valid[len(valid)-1]
	wrongChecksum := valid[:len(valid)-1] + string("01"[btoi(last == '0')])
	truncated := valid[:len(valid)-1]
	atBound := "legacy-" + strings.Repeat("x", maxAPIKeyBytes-len("legacy-"))
	tooLong := atBound + "x"
	config := testConfig
	for _, key := range []string{valid, wrongChecksum, truncated, atBound, tooLong} {
		config += "  - {application: mobile, sha256: " + sha(key) + "}\n"
	}
	e := testEngine(t, config)

	cases := []struct {
		name   string
		key    string
		status int
		desc   string // in the deny body's description
	}{
		{"a well-formed key", valid, 200, ""},
		{"a legacy tgk_ key", keyMobile, 200, ""},
		{"a legacy key at the length bound", atBound, 200, ""},
		{"a wrong checksum", wrongChecksum, 401, "malformed"},
		{"one character short", truncated, 401, "malformed"},
		{"the prefix alone", "tg_", 401, "malformed"},
		{"a key over the length bound", tooLong, 401, "longer"},
		{"an unknown well-formed key", mustGenerate(t, 2), 401, "not valid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			overGRPC, overHTTP := onBothFrontEnds(t, e, "GET", "/petstore/v1/pets", map[string]string{"apikey": tc.key})
			for _, a := range []struct {
				frontend string
				answer
				grpc int32
			}{{"grpc", overGRPC, 16}, {"http", overHTTP, 0}} {
				if a.status != tc.status {
					t.Fatalf("%s: status %d (%+v), want %d", a.frontend, a.status, a.body, tc.status)
				}
				if tc.status == 200 {
					continue
				}
				if a.body.Code != "900901" || !strings.Contains(a.body.Description, tc.desc) || a.answer.grpc != a.grpc {
					t.Errorf("%s: %+v (gRPC status %d), want 900901 saying %q (gRPC status %d)", a.frontend, a.body, a.answer.grpc, tc.desc, a.grpc)
				}
			}
		})
	}
}

func mustGenerate(t *testing.T, seed byte) string {
	t.Helper()
	k, err := keys.GenerateKeyFrom(rand.NewChaCha8([32]byte{seed}))
	if err != nil {
		t.Fatal(err)
	}
	return k.Key
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
