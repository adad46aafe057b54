package openapi

import (
	"testing"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

func TestChanges(t *testing.T) {
	base := func() *tollgatev1.Api {
		return &tollgatev1.Api{
			Id: "pets", Name: "Pets", Version: "1", BasePath: "/pets/v1", Security: []string{"jwt"},
			Operations: []*tollgatev1.Operation{
				{Path: "/pets", Methods: []string{"GET", "POST"}, Scopes: []string{"a"}},
				{Path: "/pets/{id}", Methods: []string{"GET"}, Security: []string{"apiKey"}},
			},
		}
	}
	tests := []struct {
		name   string
		change func(*tollgatev1.Api)
		want   []string
	}{
		{name: "equal", change: func(*tollgatev1.Api) {}},
		{
			name: "methods regrouped, same settings",
			change: func(a *tollgatev1.Api) {
				a.Operations = []*tollgatev1.Operation{
					{Path: "/pets", Methods: []string{"POST"}, Scopes: []string{"a"}},
					{Path: "/pets", Methods: []string{"GET"}, Scopes: []string{"a"}},
					{Path: "/pets/{id}", Methods: []string{"GET"}, Security: []string{"apiKey"}},
				}
			},
		},
		{
			name: "an operation's security moves to the API",
			change: func(a *tollgatev1.Api) {
				a.Security = []string{"apiKey"}
				a.Operations[0].Security = []string{"jwt"}
				a.Operations[1].Security = nil
			},
			want: []string{"security changed: [jwt] → [apiKey]"},
		},
		{
			name: "added, removed and changed",
			change: func(a *tollgatev1.Api) {
				a.Operations[0].Methods = []string{"GET", "DELETE"}
				a.Operations[0].Scopes = []string{"a", "b c"}
				a.Operations[0].RateLimit = "strict"
				a.Operations = append(a.Operations, &tollgatev1.Operation{Path: "/health", Methods: []string{"GET"}, Security: []string{"none"}})
			},
			want: []string{
				"operation added: GET /health",
				`operation changed: GET /pets (scopes [a] → [a "b c"]; rateLimit "" → "strict")`,
				"operation removed: POST /pets",
				"operation added: DELETE /pets",
			},
		},
		{
			name: "the API's fields",
			change: func(a *tollgatev1.Api) {
				a.Name = "Pet shop"
				a.BasePath = ""
				a.Hosts = []string{"pets.example.com"}
				a.ApiKey = &tollgatev1.ApiKeyLocation{Header: "x-key"}
				a.RateLimit = "api-wide"
				a.Audiences = []string{"pets"}
				a.Security = []string{"jwt", "none"}
			},
			want: []string{
				`name changed: "Pets" → "Pet shop"`,
				`basePath changed: "/pets/v1" → "/"`,
				"hosts changed: [] → [pets.example.com]",
				"security changed: [jwt] → [jwt none]",
				`apiKey changed: "" → "header x-key"`,
				`rateLimit changed: "" → "api-wide"`,
				"audiences changed: [] → [pets]",
				"operation changed: GET /pets (security [jwt] → [jwt none])",
				"operation changed: POST /pets (security [jwt] → [jwt none])",
			},
		},
		{
			name: "every method",
			change: func(a *tollgatev1.Api) {
				a.Operations = append(a.Operations, &tollgatev1.Operation{Path: "/files/{path...}"})
			},
			want: []string{"operation added: * /files/{path...}"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old, new := base(), base()
			tt.change(new)
			equalLines(t, "changes", Changes(old, new), tt.want)
		})
	}
}

func TestChangesOfImports(t *testing.T) {
	doc := func(scopes string) []byte {
		return doc31("security: [{oauth: ["+scopes+"]}]", "  /items: {get: {}, post: {security: [{key: []}]}}\n")
	}
	old := mustImport(t, doc("a"), Options{}).API
	new := mustImport(t, doc("a, b"), Options{}).API
	equalLines(t, "changes", Changes(old, new), []string{`operation changed: GET /items (scopes [a] → ["a b"])`})
	equalLines(t, "from nothing", Changes(nil, old), []string{
		`id changed: "" → "shop-2"`,
		`name changed: "" → "Shop"`,
		`version changed: "" → "2"`,
		`basePath changed: "/" → "/api"`,
		"security changed: [] → [jwt]",
		`apiKey changed: "" → "header x-api-key"`,
		"operation added: GET /items",
		"operation added: POST /items",
	})
}
