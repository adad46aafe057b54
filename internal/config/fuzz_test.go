package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// fuzzEnv is a fixed environment for the fuzz targets: some variables set,
// one set but empty, the rest unset.
var fuzzEnv = envOf(map[string]string{
	"HOST": "api.example.com", "BASE": "/v1", "TRUE": "true", "EMPTY": "", "DOLLAR": "${HOST}",
})

func FuzzCompile(f *testing.F) {
	seeds := []string{filepath.Join("..", "..", "examples", "quickstart.yaml")}
	for _, pattern := range []string{"testdata/invalid/*.yaml", "testdata/*.yaml"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, files...)
	}
	for _, name := range seeds {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(validConfig())
	f.Add(aliasBomb(4))
	f.Add([]byte("apis:\n  - id: ${HOST}\n    basePath: ${BASE:-/}\n    security: [none]\n    forwardCredentials: ${TRUE}\n    operations: [{path: /**}]\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		snap, err := Compile(data, fuzzEnv)
		if err == nil {
			if snap == nil || snap.Catalog == nil || snap.APIKeys == nil || snap.Applications == nil {
				t.Fatalf("Compile succeeded with an incomplete snapshot: %+v", snap)
			}
			return
		}
		if snap != nil {
			t.Errorf("Compile returned a snapshot with error %v", err)
		}
		var ps Problems
		if !errors.As(err, &ps) {
			t.Fatalf("error %q has type %T, want Problems", err, err)
		}
		if len(ps) == 0 {
			t.Fatal("error is an empty Problems")
		}
		for _, p := range ps {
			if p.Msg == "" {
				t.Errorf("problem without a message: %+v", p)
			}
			if p.Line < 0 {
				t.Errorf("problem with a negative line: %+v", p)
			}
		}
		// Compile is deterministic: the same input gives the same problems.
		if _, again := Compile(data, fuzzEnv); again == nil || again.Error() != err.Error() {
			t.Errorf("second Compile of the same input gave\n%v\nafter\n%v", again, err)
		}
	})
}

func FuzzExpandEnv(f *testing.F) {
	for _, s := range []string{
		"", "plain", "$", "$$", "$HOST", "${HOST}", "${HOST:-x}", "${UNSET:-default}", "${UNSET:?msg}",
		"${EMPTY:?}", "$${HOST}", "$$${HOST}", "${", "${}", "${1A}", "${A:}", "${A:+x}", "a${HOST}b${BASE}c",
		"${DOLLAR}", "${HOST:-${BASE}}", "}${HOST}{",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := expandEnv(s, fuzzEnv)
		if !strings.Contains(s, "${") {
			if err != nil || out != s {
				t.Fatalf("expandEnv(%q) = %q, %v; want the input unchanged", s, out, err)
			}
			return
		}
		if err != nil && out != "" {
			t.Errorf("expandEnv(%q) returned %q with error %v", s, out, err)
		}
		// With nothing set and no $${ escapes, a successful expansion
		// leaves no ${ behind, except from a :-default that holds one.
		if out, err := expandEnv(s, noEnv); err == nil && !strings.Contains(s, "$${") && !strings.Contains(s, ":-") &&
			strings.Contains(out, "${") {
			t.Errorf("expandEnv(%q) with nothing set = %q, still holding ${", s, out)
		}
	})
}

// FuzzDecodeMessage reads admin API bodies: any input gives problems or a
// message, never a panic; a message that decodes whole decodes again the
// same from its own JSON form.
func FuzzDecodeMessage(f *testing.F) {
	f.Add([]byte(`{"id": "petstore", "basePath": "/p", "security": ["apiKey"], "operations": [{"path": "/pets", "methods": ["GET"]}]}`))
	f.Add([]byte(`{"rateLimitPolicies": [{"name": "gold", "limits": [{"requests": "10", "per": "24h", "burst": 3}]}]}`))
	f.Add([]byte("apiKeys: [{application: a, sha256: ab, expiresAt: 2030-01-01T00:00:00Z}]\nmanagement: {apis: [{id: x, state: retired}]}\n"))
	f.Add([]byte(`{"id": "${HOST}", "hosts": [1, {"a": 2}]}`))
	f.Add(aliasBomb(4))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &tollgatev1.Resources{}
		if ps := DecodeMessage(data, r); len(ps) > 0 {
			return
		}
		b, err := protojson.Marshal(r)
		if err != nil {
			t.Fatalf("a decoded message does not encode: %v", err)
		}
		again := &tollgatev1.Resources{}
		if ps := DecodeMessage(b, again); len(ps) > 0 {
			t.Fatalf("its JSON does not decode: %v\n%s", ps, b)
		}
		if !proto.Equal(r, again) {
			t.Fatalf("round trip differs:\n%v\n%v", r, again)
		}
	})
}
