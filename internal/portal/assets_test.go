package portal

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"strings"
	"testing"
)

// The vendored renderer is what scripts/vendor-swagger-ui.sh fetched:
// an edit by hand, or a partial update, fails here.
func TestVendoredSwaggerUI(t *testing.T) {
	sums, err := fs.ReadFile(assetFiles, "assets/vendor/swagger-ui/SHA256SUMS")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(sums)), "\n")
	if len(lines) != 2 {
		t.Fatalf("SHA256SUMS: %d lines", len(lines))
	}
	for _, line := range lines {
		want, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q", line)
		}
		b, err := fs.ReadFile(assetFiles, "assets/vendor/swagger-ui/"+name)
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != want {
			t.Errorf("%s differs from the release recorded in SHA256SUMS", name)
		}
	}
	for _, f := range []string{"LICENSE", "NOTICE", "VERSION", "swagger-ui-bundle.js.LICENSE.txt"} {
		if _, err := fs.Stat(assetFiles, "assets/vendor/swagger-ui/"+f); err != nil {
			t.Error(err)
		}
	}
}

// Every page's template renders with empty data: a broken template is a
// test failure, not a 500 in front of a user.
func TestPagesParse(t *testing.T) {
	pages, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"catalog", "api", "login", "applications", "application", "key", "manage", "try", "error"} {
		if pages[name] == nil {
			t.Errorf("no page %s", name)
		}
	}
}
