package policy

import (
	"testing"
	"time"
)

// BenchmarkRule evaluates one rule for a request, as the decision does:
// the input built, the rule run (README, "Performance": the target is at
// most 2 µs per rule).
func BenchmarkRule(b *testing.B) {
	for _, tc := range []struct{ name, expr string }{
		{"method-or-scope", "request.method != 'DELETE' || 'admin' in identity.scopes"},
		{"header-and-claim", "request.headers['x-tenant'] == 'acme' && identity.claims.tier == 'gold'"},
		{"query", "has(request.query.q) && size(request.query.q) <= 10"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r, err := CompileRule(tc.expr)
			if err != nil {
				b.Fatal(err)
			}
			headers := headerMap{"x-tenant": "acme", "accept": "application/json", "user-agent": "curl/8.5.0"}
			claims := map[string]any{"tier": "gold", "sub": "alice"}
			now := time.Unix(1_800_000_000, 0)
			b.ReportAllocs()
			for b.Loop() {
				in := RuleInput{Method: "GET", Path: "/pets/42", Host: "api.example.com", Target: "/pets/42?q=cat",
					Application: "mobile", Subject: "alice", Credential: "jwt", Scopes: []string{"read"}, Now: now}
				in.Headers = headers
				in.Claims = claims
				if err := r.Eval(&in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
