package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// headerMap is a HeaderSource.
type headerMap map[string]string

func (h headerMap) Map() map[string]string { return h }

type varsOf map[string]string

func (v varsOf) ParamValue(path, name string) string { return v[name] }

type headers map[string]string

func (h headers) Get(name string) (string, bool) { v, ok := h[name]; return v, ok }

func TestApplyRequest(t *testing.T) {
	id := PathTemplate{Parts: []PathPart{{Text: "/v2/items/"}, {Var: "id"}}}
	vars := varsOf{"id": "42"}
	cases := []struct {
		name   string
		ops    []RequestOp
		target string
		remove []string // always removed
		want   Upstream
	}{
		{"nothing", nil, "/a", nil, Upstream{}},
		{"set then remove removes", []RequestOp{{Kind: SetHeader, Name: "x-a", Value: "1"}, {Kind: RemoveHeader, Name: "x-a"}}, "/a", nil,
			Upstream{RemoveHeaders: []string{"x-a"}}},
		{"remove then set sets", []RequestOp{{Kind: RemoveHeader, Name: "x-a"}, {Kind: SetHeader, Name: "x-a", Value: "2"}}, "/a", nil,
			Upstream{SetHeaders: []Header{{"x-a", "2"}}}},
		{"rename moves the client's value", []RequestOp{{Kind: RenameHeader, Name: "x-old", Value: "x-new"}}, "/a", nil,
			Upstream{SetHeaders: []Header{{"x-new", "client"}}, RemoveHeaders: []string{"x-old"}}},
		{"rename moves a value set before", []RequestOp{{Kind: SetHeader, Name: "x-set", Value: "v"}, {Kind: RenameHeader, Name: "x-set", Value: "x-moved"}}, "/a", nil,
			Upstream{SetHeaders: []Header{{"x-moved", "v"}}, RemoveHeaders: []string{"x-set"}}},
		// Removing a header the request lacks changes nothing: the plan
		// is the same for every request.
		{"rename of an absent header sets nothing", []RequestOp{{Kind: RenameHeader, Name: "x-none", Value: "x-new"}}, "/a", nil,
			Upstream{RemoveHeaders: []string{"x-none"}}},
		{"rename over a value set before: the client's moves", []RequestOp{{Kind: SetHeader, Name: "x-new", Value: "set"}, {Kind: RenameHeader, Name: "x-old", Value: "x-new"}}, "/a", nil,
			Upstream{SetHeaders: []Header{{"x-new", "client"}}, RemoveHeaders: []string{"x-old"}}},
		{"rename over a value set before, client lacks it: the set value stays", []RequestOp{{Kind: SetHeader, Name: "x-new", Value: "set"}, {Kind: RenameHeader, Name: "x-none", Value: "x-new"}}, "/a", nil,
			Upstream{SetHeaders: []Header{{"x-new", "set"}}, RemoveHeaders: []string{"x-none"}}},
		{"rename of a removed header does nothing", []RequestOp{{Kind: RemoveHeader, Name: "x-old"}, {Kind: RenameHeader, Name: "x-old", Value: "x-new"}}, "/a", nil,
			Upstream{RemoveHeaders: []string{"x-old"}}},
		{"two renames in a row", []RequestOp{{Kind: RenameHeader, Name: "x-old", Value: "x-mid"}, {Kind: RenameHeader, Name: "x-mid", Value: "x-end"}}, "/a", nil,
			Upstream{SetHeaders: []Header{{"x-end", "client"}}, RemoveHeaders: []string{"x-mid", "x-old"}}},
		{"query without a rewrite", []RequestOp{{Kind: AddQuery, Name: "src", Value: "gw"}, {Kind: RemoveQuery, Name: "debug"}}, "/a?debug=1", nil,
			Upstream{SetQuery: []Header{{"src", "gw"}}, RemoveQuery: []string{"debug"}}},
		{"rewrite keeps the query, minus removals in any spelling", []RequestOp{{Kind: RewritePath, Path: id}, {Kind: RemoveQuery, Name: "debug"}, {Kind: AddQuery, Name: "src", Value: "gw"}},
			"/items/42?a=1&d%65bug=1&debug=2&src=client&apikey=secret&b", []string{"apikey"},
			Upstream{Path: "/v2/items/42?a=1&b&src=gw"}},
		{"method", []RequestOp{{Kind: RewriteMethod, Value: "POST"}}, "/a", nil, Upstream{Method: "POST"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ApplyRequest(tc.ops, Request{Headers: headers{"x-old": "client"}, Target: tc.target, Vars: vars, Path: "/items/42", RemoveQuery: tc.remove})
			if !slices.Equal(got.SetHeaders, tc.want.SetHeaders) || !slices.Equal(got.RemoveHeaders, tc.want.RemoveHeaders) ||
				!slices.Equal(got.SetQuery, tc.want.SetQuery) || !slices.Equal(got.RemoveQuery, tc.want.RemoveQuery) ||
				got.Path != tc.want.Path || got.Method != tc.want.Method {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestCORSOrigins(t *testing.T) {
	p, ok := OriginPatternOf("https://*.example.com:8443")
	if !ok {
		t.Fatal("pattern refused")
	}
	c := &CORS{Origins: []string{"https://app.example.com"}, Patterns: []OriginPattern{p}}
	cases := []struct {
		origin, want string
		ok           bool
	}{
		{"https://app.example.com", "https://app.example.com", true},
		{"HTTPS://APP.EXAMPLE.COM", "https://app.example.com", true},
		{"https://app.example.com.evil", "", false},
		{"http://app.example.com", "", false},
		{"https://a.example.com:8443", "https://a.example.com:8443", true},
		{"https://a.b.example.com:8443", "https://a.b.example.com:8443", true},
		{"https://example.com:8443", "", false},
		{"https://.example.com:8443", "", false},
		{"https://a..b.example.com:8443", "", false},
		{"https://user@a.example.com:8443", "", false},
		{"https://a.example.com:8443\r\nx: y", "", false},
		{"https://a.example.com", "", false},
		{"null", "", false},
		{"", "", false},
	}
	for _, tc := range cases {
		got, ok := c.AllowOrigin(tc.origin)
		if got != tc.want || ok != tc.ok {
			t.Errorf("AllowOrigin(%q) = %q, %v; want %q, %v", tc.origin, got, ok, tc.want, tc.ok)
		}
	}
	anyOrigin := &CORS{AnyOrigin: true}
	if v, ok := anyOrigin.AllowOrigin("https://x.test"); v != "*" || !ok {
		t.Errorf("any origin: %q %v", v, ok)
	}
	for _, bad := range []string{"https://*", "*.example.com", "https://a*.example.com", "https://*.example.com/path"} {
		if _, ok := OriginPatternOf(bad); ok {
			t.Errorf("pattern %q accepted", bad)
		}
	}
}

func TestCORSHeaders(t *testing.T) {
	c := &CORS{Headers: []string{"apikey", "content-type"}}
	for list, want := range map[string]bool{"": true, "apikey": true, "ApiKey, Content-Type": true, "apikey,x-other": false} {
		if got := c.AllowsHeaders(list); got != want {
			t.Errorf("AllowsHeaders(%q) = %v", list, got)
		}
	}
	if !(&CORS{Headers: []string{"*"}}).AllowsHeaders("x-anything") {
		t.Error("* refused a header")
	}
}

func TestRules(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	in := func() *RuleInput {
		return &RuleInput{Method: "DELETE", Path: "/pets/1", Host: "api.example.com",
			Headers: headerMap{"x-tenant": "acme"}, Target: "/pets/1?q=cat&q=dog",
			Application: "mobile", Subject: "alice", Credential: "jwt", Scopes: []string{"read", "admin"},
			Claims: map[string]any{"tier": "gold", "level": int64(3), "groups": []any{"a", "b"}}, Now: now}
	}
	cases := []struct {
		expr    string
		compile bool // compiles
		holds   bool
		evalErr bool // fails to evaluate (refuses)
	}{
		{"request.method != 'DELETE' || 'admin' in identity.scopes", true, true, false},
		{"request.headers['x-tenant'] == 'acme' && request.query.q == 'cat'", true, true, false},
		{"identity.claims.tier == 'gold' && identity.claims.level > 2 && 'b' in identity.claims.groups", true, true, false},
		{"now.getHours('UTC') < 9", true, false, false},
		{"identity.application == 'mobile' && identity.subject == 'alice' && request.path.startsWith('/pets/')", true, true, false},
		{"request.headers['x-missing'] == 'x'", true, false, true},
		{"has(request.headers.x_missing)", true, false, false},
		{"identity.claims.tier", true, false, true}, // a string, not a bool
		{"1 + 1", false, false, false},
		{"request.headers['x-tenant'].matches('^ac')", true, true, false},
		{"request.headers['x-tenant'].matches(request.path)", false, false, false},
		{"request.method ==", false, false, false},
		{"unknown.var == 1", false, false, false},
		{"request.headers.all(a, request.headers.all(b, request.headers.all(c, a+b+c != '')))", false, false, false}, // over the cost limit
	}
	for _, tc := range cases {
		t.Run(tc.expr, func(t *testing.T) {
			r, err := CompileRule(tc.expr)
			if (err == nil) != tc.compile {
				t.Fatalf("compile: %v, want compiled=%v", err, tc.compile)
			}
			if r == nil {
				return
			}
			err = r.Eval(in())
			switch {
			case tc.holds && err != nil:
				t.Errorf("does not hold: %v", err)
			case !tc.holds && err == nil:
				t.Error("holds")
			case !tc.holds && tc.evalErr == errors.Is(err, ErrRuleFalse):
				t.Errorf("error %v, want an evaluation error: %v", err, tc.evalErr)
			}
		})
	}
}

// TestRuleInputsOverTheirSizes: a value larger than the sizes the rules'
// cost was estimated with makes a rule that reads it fail (refuse), and
// one that does not read it is unaffected.
func TestRuleInputsOverTheirSizes(t *testing.T) {
	big := strings.Repeat("a", maxSizeString+1)
	headers, err := CompileRule("request.headers['x-a'] != ''")
	if err != nil {
		t.Fatal(err)
	}
	method, err := CompileRule("request.method == 'GET'")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   RuleInput
	}{
		{"a big header", RuleInput{Method: "GET", Headers: headerMap{"x-a": "1", "x-big": big}}},
		{"many headers", RuleInput{Method: "GET", Headers: manyHeaders(maxSizeList + 1)}},
	} {
		in := tc.in
		if err := headers.Eval(&in); err == nil || errors.Is(err, ErrRuleFalse) {
			t.Errorf("%s: a rule reading the headers gave %v, want an evaluation error", tc.name, err)
		}
		in = tc.in
		if err := method.Eval(&in); err != nil {
			t.Errorf("%s: a rule reading the method gave %v", tc.name, err)
		}
	}
	path := RuleInput{Path: "/" + big}
	if err := mustRule(t, "request.path.startsWith('/a')").Eval(&path); err == nil || errors.Is(err, ErrRuleFalse) {
		t.Errorf("a big path: %v", err)
	}
}

func manyHeaders(n int) headerMap {
	h := headerMap{"x-a": "1"}
	for i := range n {
		h[fmt.Sprintf("x-%d", i)] = "v"
	}
	return h
}

func mustRule(t *testing.T, expr string) *Rule {
	t.Helper()
	r, err := CompileRule(expr)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
