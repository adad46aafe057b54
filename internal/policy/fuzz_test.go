package policy

import (
	"errors"
	"testing"
	"time"
)

// fuzzRules are compiled once: the inputs vary, as a request's do.
var fuzzRules = []string{
	"request.method != 'DELETE' || 'admin' in identity.scopes",
	"request.headers['x-tenant'] == 'acme'",
	"has(request.query.q) && size(request.query.q) <= 10 && request.query.q.matches('^[a-z]+$')",
	"request.path.startsWith('/pets/') && request.host.endsWith('.example.com')",
	"identity.claims.tier == 'gold' || identity.claims.level > 2",
	"request.headers.exists(k, k.startsWith('x-') && request.headers[k].contains('..'))",
	"now.getHours() < 20",
}

// FuzzRule feeds rules with arbitrary requests and identities, and
// compiles arbitrary expressions: nothing panics, every evaluation ends
// (the cost limit), and a rule that compiled either holds, does not, or
// fails to evaluate.
func FuzzRule(f *testing.F) {
	f.Add("request.method == 'GET'", "GET", "/pets/1", "x-tenant", "acme", "q", "cat", "tier", "gold")
	f.Add("size(request.headers) < 3", "DELETE", "/", "x-a", "..", "q", "", "level", "9")
	var compiled []*Rule
	for _, e := range fuzzRules {
		r, err := CompileRule(e)
		if err != nil {
			f.Fatalf("%s: %v", e, err)
		}
		compiled = append(compiled, r)
	}
	f.Fuzz(func(t *testing.T, expr, method, path, hName, hValue, qName, qValue, claim, claimValue string) {
		in := &RuleInput{Method: method, Path: path, Host: hValue + ".example.com",
			Headers:     headerMap{hName: hValue, "x-tenant": hValue},
			Target:      "/p?" + qName + "=" + qValue,
			Application: claimValue, Subject: claim, Scopes: []string{hValue, "admin"},
			Claims: map[string]any{claim: claimValue, "level": int64(len(claimValue)), "nested": map[string]any{claim: []any{claimValue}}},
			Now:    time.Unix(int64(len(path))*3600, 0)}
		rules := compiled
		if r, err := CompileRule(expr); err == nil {
			rules = append(rules[:len(rules):len(rules)], r)
		}
		for _, r := range rules {
			err := r.Eval(in)
			if err != nil && !errors.Is(err, ErrRuleFalse) && err.Error() == "" {
				t.Fatalf("%s: an error without a message", r.Expr)
			}
		}
	})
}
