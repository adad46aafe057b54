package authz

import (
	"strings"
	"testing"
)

// TestAllOfScopes: an API key passes an operation whose scopes are
// ["pets:read pets:write", "pets:admin"] only with both of the first
// entry's scopes or with the second, on either front end.
func TestAllOfScopes(t *testing.T) {
	const (
		keyBoth  = "tgk_test_scopes_both"
		keyWrite = "tgk_test_scopes_write"
		keyAdmin = "tgk_test_scopes_admin"
	)
	config := strings.Replace(testConfig, `      - {path: /health, methods: [GET], security: [none]}
`, `      - {path: /health, methods: [GET], security: [none]}
      - {path: "/pets/{id}", methods: [PUT], scopes: ["pets:read pets:write", "pets:admin"]}
`, 1) + `  - {application: mobile, sha256: ` + sha(keyBoth) + `, scopes: [pets:write, other, pets:read]}
  - {application: mobile, sha256: ` + sha(keyWrite) + `, scopes: [pets:write]}
  - {application: mobile, sha256: ` + sha(keyAdmin) + `, scopes: [pets:admin]}
`
	e := testEngine(t, config)
	cases := []struct {
		name   string
		key    string
		status int
	}{
		{"both scopes of the set", keyBoth, 200},
		{"one scope of the set", keyWrite, 403},
		{"the other entry", keyAdmin, 200},
		{"no scopes", keyReadOnly, 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			overGRPC, overHTTP := onBothFrontEnds(t, e, "PUT", "/petstore/v1/pets/7", map[string]string{"apikey": tc.key})
			for frontend, a := range map[string]answer{"grpc": overGRPC, "http": overHTTP} {
				if a.status != tc.status {
					t.Fatalf("%s: status %d %+v, want %d", frontend, a.status, a.body, tc.status)
				}
				if tc.status == 403 && (a.body.Code != "900910" || !strings.Contains(a.body.Description, "pets:read and pets:write, or pets:admin")) {
					t.Errorf("%s: %+v, want 900910 naming what the operation requires", frontend, a.body)
				}
			}
		})
	}
}
