package authz

import (
	"context"
	"strings"
	"testing"
)

// TestBlockedAPI: every request matched to a blocked API is answered 503 /
// 700700 on both front ends, before its credentials are read: a missing
// or invalid key gets the same answer as a valid one. Requests the API
// does not match, and other APIs, are decided as before.
func TestBlockedAPI(t *testing.T) {
	config := strings.Replace(testConfig, "applications:\n", `  - id: legacy
    basePath: /legacy
    security: [apiKey]
    blocked: true
    operations:
      - {path: /items, methods: [GET]}
      - {path: /health, methods: [GET], security: [none]}
applications:
`, 1)
	config = strings.Replace(config, "subscriptions:\n", "subscriptions:\n  - {application: mobile, api: legacy, state: active}\n", 1)
	e := testEngine(t, config)
	const (
		blockedMsg  = "API Blocked"
		blockedDesc = "This API has been blocked temporarily. Please try again later or contact the API owner."
	)
	cases := []struct {
		name    string
		method  string
		path    string
		headers map[string]string
		status  int
		code    string
		grpc    int32
	}{
		{"a valid key", "GET", "/legacy/items", map[string]string{"apikey": keyMobile}, 503, "700700", 14},
		{"no credential", "GET", "/legacy/items", nil, 503, "700700", 14},
		{"an unknown key", "GET", "/legacy/items", map[string]string{"apikey": "tgk_nope"}, 503, "700700", 14},
		{"a malformed tg_ key", "GET", "/legacy/items", map[string]string{"apikey": "tg_x"}, 503, "700700", 14},
		{"a public operation", "GET", "/legacy/health", nil, 503, "700700", 14},
		{"a path the API does not match", "GET", "/legacy/nothing", map[string]string{"apikey": keyMobile}, 404, "404", 5},
		{"another API", "GET", "/petstore/v1/pets", map[string]string{"apikey": keyMobile}, 200, "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			overGRPC, overHTTP := onBothFrontEnds(t, e, tc.method, tc.path, tc.headers)
			for frontend, a := range map[string]answer{"grpc": overGRPC, "http": overHTTP} {
				if a.status != tc.status || a.body.Code != tc.code {
					t.Fatalf("%s: %d %+v, want %d %s", frontend, a.status, a.body, tc.status, tc.code)
				}
				if frontend == "grpc" && a.grpc != tc.grpc {
					t.Errorf("gRPC status %d, want %d", a.grpc, tc.grpc)
				}
				if tc.code == "700700" && (a.body.Message != blockedMsg || a.body.Description != blockedDesc) {
					t.Errorf("%s: body %+v, want %q, %q", frontend, a.body, blockedMsg, blockedDesc)
				}
			}
		})
	}

	d := e.Decide(context.Background(), req("GET", "/legacy/items", "apikey", keyMobile))
	if d.API == nil || d.API.ID != "legacy" || d.Operation == nil || d.Identity.Application != nil || d.Denial.Challenge != "" {
		t.Errorf("decision: API %v, operation %v, identity %+v, challenge %q; want the match, no identity, no challenge",
			d.API, d.Operation, d.Identity, d.Denial.Challenge)
	}
}
