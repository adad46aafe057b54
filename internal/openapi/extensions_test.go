package openapi

import (
	"slices"
	"testing"
)

func TestExtensions(t *testing.T) {
	doc := []byte(`openapi: 3.0.3
info: {title: Orders, version: v1, description: Orders of the shop.}
servers: [{url: "https://upstream.internal/orders"}]
x-tollgate-id: orders-v1
x-tollgate-base-path: /shop/orders/
x-tollgate-hosts: [api.example.com, "*.example.net"]
x-tollgate-rate-limit: api-wide
x-tollgate-anonymous-rate-limit: per-ip
x-tollgate-audiences: [orders]
x-tollgate-subscription-approval: true
x-other-tool: {ignored: true}
security: [{bearer: []}]
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
paths:
  /orders:
    get: {x-tollgate-rate-limit: strict}
    post: {x-tollgate-scopes: [orders:write]}
  /health:
    get: {x-tollgate-public: true}
`)
	res := mustImport(t, doc, Options{})
	equalLines(t, "API", describe(res.API), []string{
		"api id=orders-v1 base=/shop/orders security=[jwt]",
		"GET /health security=[none]",
		"GET /orders security=- rateLimit=strict",
		"POST /orders security=- scopes=[orders:write]",
	})
	a := res.API
	if !slices.Equal(a.Hosts, []string{"api.example.com", "*.example.net"}) || a.RateLimit != "api-wide" ||
		a.AnonymousRateLimit != "per-ip" || !slices.Equal(a.Audiences, []string{"orders"}) {
		t.Errorf("hosts %q rateLimit %q anonymous %q audiences %q", a.Hosts, a.RateLimit, a.AnonymousRateLimit, a.Audiences)
	}
	if !res.RequiresApproval || res.Description != "Orders of the shop." || res.SpecVersion != "3.0.3" {
		t.Errorf("approval %v description %q version %q", res.RequiresApproval, res.Description, res.SpecVersion)
	}
	if len(res.Warnings) != 0 {
		t.Errorf("warnings %q", res.Warnings)
	}
	// Options.ID wins over x-tollgate-id.
	if res := mustImport(t, doc, Options{ID: "orders"}); res.API.Id != "orders" {
		t.Errorf("id %q, want orders", res.API.Id)
	}
}

func TestExtensionErrors(t *testing.T) {
	head := `openapi: 3.0.3
info: {title: Orders, version: v1}
security: [{bearer: []}]
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
`
	tests := []struct {
		name     string
		root     string // top-level keys
		op       string // keys of GET /orders
		options  Options
		problems []string
	}{
		{name: "hosts not a list", root: "x-tollgate-hosts: api.example.com", problems: []string{"x-tollgate-hosts: want a list of strings"}},
		{name: "hosts of numbers", root: "x-tollgate-hosts: [1, a.example.com]", problems: []string{"x-tollgate-hosts[0]: want a string"}},
		{name: "public not a bool", root: `x-tollgate-public: "true"`, problems: []string{"x-tollgate-public: want true or false"}},
		{name: "approval not a bool", root: "x-tollgate-subscription-approval: 1", problems: []string{"x-tollgate-subscription-approval: want true or false"}},
		{name: "id not a string", root: "x-tollgate-id: 12", problems: []string{"x-tollgate-id: want a string"}},
		{name: "id not an id", root: "x-tollgate-id: -orders", problems: []string{`x-tollgate-id: want up to 128 letters, digits, '-', '_' or '.', starting with a letter or digit; got "-orders"`}},
		{name: "rate limit not a name", root: "x-tollgate-rate-limit: [gold]", problems: []string{"x-tollgate-rate-limit: want a string"}},
		{name: "rate limit not an id", root: `x-tollgate-rate-limit: "gold tier"`, problems: []string{`x-tollgate-rate-limit: a policy name is up to 128 letters, digits, '-', '_' or '.', starting with a letter or digit; got "gold tier"`}},
		{name: "base path not a path", root: "x-tollgate-base-path: shop", problems: []string{`x-tollgate-base-path: a base path starts with /, got "shop"`}},
		{name: "base path not a string", root: "x-tollgate-base-path: {a: b}", problems: []string{"x-tollgate-base-path: want a string"}},
		{name: "empty audience", root: `x-tollgate-audiences: [""]`, problems: []string{"x-tollgate-audiences[0]: an audience cannot be empty"}},
		{name: "host the data plane refuses", root: `x-tollgate-hosts: ["bad host"]`, problems: []string{`x-tollgate-hosts[0]: want a host name, *.domain or *, optionally with :port, got "bad host"`}},
		{name: "unknown extension", root: "x-tollgate-scope: [a]", problems: []string{"x-tollgate-scope: not an extension Tollgate reads at the top of the document (it reads x-tollgate-id, x-tollgate-base-path, x-tollgate-hosts, x-tollgate-rate-limit, x-tollgate-anonymous-rate-limit, x-tollgate-public, x-tollgate-audiences, x-tollgate-subscription-approval)"}},
		{name: "scopes at the top", root: "x-tollgate-scopes: [a]", problems: []string{"x-tollgate-scopes: not an extension Tollgate reads at the top of the document (it reads x-tollgate-id, x-tollgate-base-path, x-tollgate-hosts, x-tollgate-rate-limit, x-tollgate-anonymous-rate-limit, x-tollgate-public, x-tollgate-audiences, x-tollgate-subscription-approval)"}},
		{name: "hosts on an operation", op: "x-tollgate-hosts: [a.example.com]", problems: []string{"paths./orders.get.x-tollgate-hosts: not an extension Tollgate reads on an operation (it reads x-tollgate-rate-limit, x-tollgate-public, x-tollgate-scopes)"}},
		{name: "scopes not a list", op: "x-tollgate-scopes: orders:read", problems: []string{"paths./orders.get.x-tollgate-scopes: want a list of strings"}},
		{name: "scopes with a quote", op: `x-tollgate-scopes: ['a"b']`, problems: []string{`paths./orders.get.x-tollgate-scopes[0]: a scope is printable ASCII without spaces, quotes or backslashes (RFC 6749), got "a\"b"`}},
		{name: "empty scope entry", op: `x-tollgate-scopes: [" "]`, problems: []string{"paths./orders.get.x-tollgate-scopes[0]: an entry names at least one scope"}},
		{name: "public on an operation not a bool", op: "x-tollgate-public: yes please", problems: []string{"paths./orders.get.x-tollgate-public: want true or false"}},
		{name: "option id not an id", options: Options{ID: "a b"}, problems: []string{`the API id "a b" is not an id: up to 128 letters, digits, '-', '_' or '.', starting with a letter or digit`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := "{}"
			if tt.op != "" {
				op = "{" + tt.op + "}"
			}
			doc := []byte(head + tt.root + "\npaths:\n  /orders:\n    get: " + op + "\n")
			equalLines(t, "problems", importError(t, doc, tt.options), tt.problems)
		})
	}
}

// An extension on a path item or on the paths is not read there; saying
// so beats ignoring what was meant to protect the path.
func TestExtensionOnPathItem(t *testing.T) {
	doc := []byte(`openapi: 3.0.3
info: {title: Orders, version: v1}
x-tollgate-public: true
paths:
  x-tollgate-rate-limit: gold
  x-other-tool: ignored
  /orders:
    x-tollgate-scopes: [a]
    get: {}
`)
	equalLines(t, "problems", importError(t, doc, Options{}), []string{
		"paths.x-tollgate-rate-limit: Tollgate reads its extensions on operations and at the top of the document, not here",
		"paths./orders.x-tollgate-scopes: Tollgate reads its extensions on operations and at the top of the document, not here",
	})
}

func TestID(t *testing.T) {
	tests := []struct{ title, version, want string }{
		{"Swagger Petstore", "1.0.0", "swagger-petstore-1-0-0"},
		{"  Ünïcode API!! ", "v2", "n-code-api-v2"},
		{"", "", "api"},
		{"Orders", "", "orders"},
		{"---", "1", "1"},
		{"A very long title that goes on and on past what a DNS label can hold", "2024.01", "a-very-long-title-that-goes-on-and-on-past-what-a-dns-label-can"},
	}
	for _, tt := range tests {
		if got := slugID(tt.title, tt.version); got != tt.want {
			t.Errorf("slugID(%q, %q) = %q, want %q", tt.title, tt.version, got, tt.want)
		}
		if got := slugID(tt.title, tt.version); len(got) > 63 {
			t.Errorf("slugID(%q, %q) is %d characters", tt.title, tt.version, len(got))
		}
	}
}
