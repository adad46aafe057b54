package authz

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
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

// TestAPIKeyIDInLogAndMetadata: a key's id names it in the decision's log
// line and dynamic metadata; a key without one has none there. A key of
// the checksummed format carries its id, which is the one shown whatever
// the config says; another key has the id the config gives it. The key
// itself appears in neither.
func TestAPIKeyIDInLogAndMetadata(t *testing.T) {
	gen := func(seed byte) keys.GeneratedKey {
		k, err := keys.GenerateKeyFrom(rand.NewChaCha8([32]byte{seed}))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	listed, unlisted, mislabelled := gen(3), gen(4), gen(6)
	const legacyWithID = "tgk_test_legacy_with_id"
	base := testEngine(t, testConfig+
		"  - {application: mobile, name: listed, id: "+listed.ID+", sha256: "+listed.Digest.String()+"}\n"+
		"  - {application: mobile, name: unlisted, sha256: "+unlisted.Digest.String()+"}\n"+
		"  - {application: mobile, name: mislabelled, id: wrongid00000, sha256: "+mislabelled.Digest.String()+"}\n"+
		"  - {application: mobile, name: legacy, id: legacy000001, sha256: "+sha(legacyWithID)+"}\n")
	var logs bytes.Buffer
	e := NewEngine(Options{Config: base.config, Clock: base.clock,
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	s := NewGRPCServer(e)
	cases := []struct {
		key, name, id string
	}{
		{listed.Key, "listed", listed.ID},
		{unlisted.Key, "unlisted", unlisted.ID},
		{mislabelled.Key, "mislabelled", mislabelled.ID},
		{legacyWithID, "legacy", "legacy000001"},
		{keyMobile, "ci", ""},
	}
	for _, tc := range cases {
		logs.Reset()
		resp, err := s.Check(context.Background(), checkRequest("GET", "/petstore/v1/pets", map[string]string{"apikey": tc.key}, nil))
		if err != nil || resp.GetOkResponse() == nil {
			t.Fatalf("key %s: %v, %v; want an allow", tc.name, resp, err)
		}
		if md := wireMetadata(t, resp); md["key_id"] != tc.id {
			t.Errorf("key %s: metadata key_id %q, want %q", tc.name, md["key_id"], tc.id)
		}
		var line struct {
			Msg     string `json:"msg"`
			KeyName string `json:"key_name"`
			KeyID   string `json:"key_id"`
		}
		found := false
		for sc := bufio.NewScanner(&logs); sc.Scan(); {
			if strings.Contains(sc.Text(), tc.key) {
				t.Errorf("the log holds the key: %s", sc.Text())
			}
			if err := json.Unmarshal(sc.Bytes(), &line); err == nil && line.Msg == "decision" {
				found = true
				if line.KeyName != tc.name || line.KeyID != tc.id {
					t.Errorf("key %s: log names key %q, id %q; want %q, %q", tc.name, line.KeyName, line.KeyID, tc.name, tc.id)
				}
			}
		}
		if !found {
			t.Errorf("key %s: no decision log line in %q", tc.name, logs.String())
		}
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
