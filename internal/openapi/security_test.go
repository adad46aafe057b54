package openapi

import (
	"strings"
	"testing"
)

// doc31 is an OpenAPI 3.1 document with the schemes the security tests
// refer to, the given top-level security and paths.
func doc31(security, paths string) []byte {
	return []byte(`openapi: 3.1.0
info: {title: Shop, version: "2"}
servers: [{url: "https://shop.example.com/api"}]
components:
  securitySchemes:
    oauth: {type: oauth2, flows: {clientCredentials: {tokenUrl: "https://idp.example.com/token", scopes: {a: a, b: b, c: c}}}}
    oidc: {type: openIdConnect, openIdConnectUrl: "https://idp.example.com/.well-known/openid-configuration"}
    bearer: {type: http, scheme: Bearer, bearerFormat: JWT}
    basic: {type: http, scheme: basic}
    digest: {type: http, scheme: digest}
    key: {type: apiKey, in: header, name: X-API-Key}
    queryKey: {type: apiKey, in: query, name: key}
    cookieKey: {type: apiKey, in: cookie, name: session}
    cert: {type: mutualTLS}
` + security + `
paths:
` + paths)
}

func TestSecurity(t *testing.T) {
	tests := []struct {
		name     string
		security string
		paths    string
		want     []string
		warnings []string
		problems []string
	}{
		{
			name:     "top-level security is the API's",
			security: "security: [{key: []}]",
			paths:    "  /items: {get: {}, post: {}}\n",
			want: []string{
				"api id=shop-2 base=/api security=[apiKey] apiKey=header x-api-key",
				"GET,POST /items security=-",
			},
		},
		{
			name:     "security: [] on an operation is public",
			security: "security: [{bearer: []}]",
			paths:    "  /items: {get: {}, post: {security: []}}\n  /health: {get: {security: []}}\n",
			want: []string{
				"api id=shop-2 base=/api security=[jwt]",
				"GET /health security=[none]",
				"GET /items security=-",
				"POST /items security=[none]",
			},
		},
		{
			name:     "x-tollgate-public on an operation",
			security: "security: [{oidc: [a]}]",
			paths:    "  /items: {get: {x-tollgate-public: true}, put: {x-tollgate-public: false}}\n",
			want: []string{
				"api id=shop-2 base=/api security=[jwt]",
				"GET /items security=[none]",
				`PUT /items security=- scopes=[a]`,
			},
		},
		{
			name:     "x-tollgate-public replaces an operation's security",
			security: "",
			paths:    "  /items: {get: {x-tollgate-public: true, security: [{key: []}]}}\n",
			want: []string{
				"api id=shop-2 base=/api security=[none]",
				"GET /items security=-",
			},
			warnings: []string{"GET /items: x-tollgate-public: true makes it public; its security is not used"},
		},
		{
			name:     "an empty requirement object is anonymous access, tried last",
			security: "security: [{}, {key: []}]",
			paths:    "  /items: {get: {}}\n",
			want: []string{
				"api id=shop-2 base=/api security=[apiKey none] apiKey=header x-api-key",
				"GET /items security=-",
			},
		},
		{
			name:     "several schemes in one object are an AND set",
			security: "security: [{key: [], cert: []}, {bearer: [], cert: []}]",
			paths:    "  /items: {get: {}}\n",
			want: []string{
				"api id=shop-2 base=/api security=[mtls+apiKey mtls+jwt] apiKey=header x-api-key",
				"GET /items security=-",
			},
		},
		{
			name:     "an unsupported alternative is dropped",
			security: "security: [{basic: []}, {key: []}]",
			paths:    "  /items: {get: {}}\n",
			want: []string{
				"api id=shop-2 base=/api security=[apiKey] apiKey=header x-api-key",
				"GET /items security=-",
			},
			warnings: []string{"security[0] (basic) is not imported for GET /items: HTTP basic authentication is not supported"},
		},
		{
			name:     "what is dropped from the top-level security names the operations that take it",
			security: "security: [{basic: []}, {key: []}]",
			paths:    "  /a: {get: {}, post: {}, put: {}}\n  /b: {get: {}, post: {security: [{bearer: []}]}}\n  /c: {get: {}}\n",
			want: []string{
				"api id=shop-2 base=/api security=[apiKey] apiKey=header x-api-key",
				"GET,POST,PUT /a security=-",
				"GET /b security=-",
				"POST /b security=[jwt]",
				"GET /c security=-",
			},
			warnings: []string{"security[0] (basic) is not imported for GET /a, PUT /a, POST /a and 2 more: HTTP basic authentication is not supported"},
		},
		{
			name:     "an AND set with an unsupported scheme is dropped whole",
			security: "security: [{key: [], digest: []}, {bearer: []}]",
			paths:    "  /items: {get: {}}\n",
			want: []string{
				"api id=shop-2 base=/api security=[jwt]",
				"GET /items security=-",
			},
			warnings: []string{"security[0] (key, digest) is not imported for GET /items: HTTP digest authentication is not supported"},
		},
		{
			name:     "an operation left without alternatives is refused, not made public",
			security: "security: [{bearer: []}]",
			paths:    "  /items: {get: {security: [{basic: []}, {cookieKey: []}]}}\n",
			warnings: nil,
			problems: []string{"paths./items.get.security: no alternative here can be enforced by Tollgate (HTTP basic authentication is not supported; API keys in cookies are not supported); it does not make an operation public because its schemes are unsupported"},
		},
		{
			name:     "a scheme that is not defined",
			security: "",
			paths:    "  /items: {get: {security: [{nope: []}]}}\n",
			problems: []string{`paths./items.get.security[0].nope: no security scheme named "nope" is defined`},
		},
		{
			name:     "the first apiKey location wins",
			security: "security: [{key: []}]",
			paths:    "  /items: {get: {security: [{queryKey: []}]}, post: {}}\n",
			want: []string{
				"api id=shop-2 base=/api security=[apiKey] apiKey=header x-api-key",
				"GET,POST /items security=-",
			},
			warnings: []string{`components.securitySchemes.queryKey: keys of scheme queryKey are read from the header "X-API-Key" of scheme key, not from its own query "key": an API reads its keys from one place`},
		},
		{
			name:     "an API key in the query",
			security: "security: [{queryKey: []}]",
			paths:    "  /items: {get: {}}\n",
			want: []string{
				"api id=shop-2 base=/api security=[apiKey] apiKey=query key",
				"GET /items security=-",
			},
		},
		{
			name:     "two keys in different places in one object cannot be checked",
			security: "security: [{key: [], queryKey: []}, {bearer: []}]",
			paths:    "  /items: {get: {}}\n",
			want: []string{
				"api id=shop-2 base=/api security=[jwt]",
				"GET /items security=-",
			},
			warnings: []string{"security[0] (key, queryKey) is not imported for GET /items: it needs two API keys in different places, and Tollgate reads one"},
		},
		{
			name:     "operations with other security than the API's keep their own",
			security: "",
			paths:    "  /a: {get: {security: [{key: []}]}}\n  /b: {get: {security: [{key: []}]}}\n  /c: {get: {security: [{bearer: []}]}}\n",
			want: []string{
				"api id=shop-2 base=/api security=[apiKey jwt] apiKey=header x-api-key",
				"GET /a security=[apiKey]",
				"GET /b security=[apiKey]",
				"GET /c security=[jwt]",
			},
		},
		{
			name:     "the same security everywhere goes on the API",
			security: "",
			paths:    "  /a: {get: {security: [{key: []}]}}\n  /b: {get: {security: [{key: []}]}}\n",
			want: []string{
				"api id=shop-2 base=/api security=[apiKey] apiKey=header x-api-key",
				"GET /a security=-",
				"GET /b security=-",
			},
		},
		{
			name:     "an operation without security takes the API's, never public",
			security: "",
			paths:    "  /a: {get: {security: [{key: []}]}}\n  /b: {get: {}}\n",
			want: []string{
				"api id=shop-2 base=/api security=[apiKey] apiKey=header x-api-key",
				"GET /a security=-",
				"GET /b security=-",
			},
			warnings: []string{"GET /b: no security requirement applies to it; Tollgate does not make an operation public by omission, so it needs the API's security [apiKey] (x-tollgate-public: true makes it public)"},
		},
		{
			name:     "an operation without security beside public ones only is refused",
			security: "",
			paths:    "  /health: {get: {security: []}}\n  /b: {get: {}}\n",
			problems: []string{"paths./b.get: no security requirement applies to it, and the document has no security Tollgate could require instead; Tollgate does not make an operation public by omission: add security, or x-tollgate-public: true"},
		},
		{
			name:     "x-tollgate-public at the top",
			security: "x-tollgate-public: true",
			paths:    "  /a: {get: {}}\n  /b: {get: {security: [{key: []}]}}\n",
			want: []string{
				"api id=shop-2 base=/api security=[apiKey] apiKey=header x-api-key",
				"GET /a security=[none]",
				"GET /b security=-",
			},
		},
		{
			name:     "top-level security: [] is no security",
			security: "security: []",
			paths:    "  /a: {get: {}}\n",
			problems: []string{"security: the document sets no security anywhere, and Tollgate does not make an API public by omission: add security requirements, or x-tollgate-public: true at the top to import it as a public API"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := doc31(tt.security, tt.paths)
			if tt.problems != nil {
				equalLines(t, "problems", importError(t, doc, Options{}), tt.problems)
				return
			}
			res := mustImport(t, doc, Options{})
			equalLines(t, "API", describe(res.API), tt.want)
			equalLines(t, "warnings", res.Warnings, tt.warnings)
		})
	}
}

// Scopes: one entry per alternative's scope list, several scopes of one
// list joined by a space (all of them). Tollgate checks one list for every
// alternative but none, so where alternatives ask different scopes the
// list is made never weaker than the document, with a warning.
func TestScopes(t *testing.T) {
	tests := []struct {
		name     string
		security string // of GET /items
		want     string
		warnings []string
		problems []string
	}{
		{
			name:     "one scope",
			security: "[{oauth: [a]}]",
			want:     "GET /items security=[jwt] scopes=[a]",
		},
		{
			name:     "several scopes of one requirement are all needed",
			security: "[{oauth: [a, b]}]",
			want:     `GET /items security=[jwt] scopes=["a b"]`,
		},
		{
			name:     "alternatives with other scopes are one of them",
			security: "[{oauth: [a]}, {oidc: [b, c]}]",
			want:     `GET /items security=[jwt] scopes=[a "b c"]`,
		},
		{
			name:     "no scopes anywhere",
			security: "[{bearer: []}, {key: []}]",
			want:     "GET /items security=[jwt apiKey]",
		},
		{
			name:     "an alternative without scopes then needs them",
			security: "[{oauth: [a]}, {key: []}]",
			want:     "GET /items security=[jwt apiKey] scopes=[a]",
			warnings: []string{"GET /items: callers using apiKey need the scopes [a], where the document asks no scope: Tollgate checks one list of scopes for every alternative"},
		},
		{
			name:     "a JWT alternative without scopes makes the scoped one moot",
			security: "[{oauth: [a]}, {bearer: []}]",
			want:     "GET /items security=[jwt]",
		},
		{
			name:     "a subset of scopes suffices",
			security: "[{oauth: [a, b]}, {oidc: [a]}]",
			want:     "GET /items security=[jwt] scopes=[a]",
		},
		{
			name:     "different scopes for different schemes combine",
			security: "[{oauth: [a]}, {key: [b]}]",
			want:     `GET /items security=[jwt apiKey] scopes=["a b"]`,
			warnings: []string{
				`GET /items: callers using jwt need the scopes ["a b"], where the document asks the scopes [a]: Tollgate checks one list of scopes for every alternative`,
				`GET /items: callers using apiKey need the scopes ["a b"], where the document asks the scopes [b]: Tollgate checks one list of scopes for every alternative`,
			},
		},
		{
			name:     "each combination of one scope set per scheme",
			security: "[{oauth: [a]}, {oauth: [b]}, {key: [c]}]",
			want:     `GET /items security=[jwt apiKey] scopes=["a c" "b c"]`,
			warnings: []string{
				`GET /items: callers using jwt need one of the scope sets ["a c" "b c"], where the document asks one of the scope sets [a b]: Tollgate checks one list of scopes for every alternative`,
				`GET /items: callers using apiKey need one of the scope sets ["a c" "b c"], where the document asks the scopes [c]: Tollgate checks one list of scopes for every alternative`,
			},
		},
		{
			name:     "the same scopes for every alternative are exact",
			security: "[{oauth: [a]}, {key: [a], cert: []}]",
			want:     "GET /items security=[jwt mtls+apiKey] scopes=[a]",
		},
		{
			name:     "an anonymous alternative needs no scope",
			security: "[{oauth: [a]}, {}]",
			want:     "GET /items security=[jwt none] scopes=[a]",
		},
		{
			name:     "certificates carry no scopes",
			security: "[{cert: [a]}, {oauth: [a]}]",
			want:     "GET /items security=[mtls jwt] scopes=[a]",
			warnings: []string{"GET /items: callers with a client certificate alone cannot have the scopes [a]: certificates carry no scopes, so that alternative admits no one"},
		},
		{
			name:     "a scope with a space is not a scope",
			security: `[{oauth: ["a b"]}]`,
			problems: []string{`paths./items.get.security[0].oauth[0]: a scope is printable ASCII without spaces, quotes or backslashes (RFC 6749), got "a b"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := doc31("", "  /items: {get: {security: "+tt.security+"}}\n")
			if tt.problems != nil {
				equalLines(t, "problems", importError(t, doc, Options{}), tt.problems)
				return
			}
			res := mustImport(t, doc, Options{})
			// The one operation leaves its security to the API.
			got := strings.Replace(describe(res.API)[1], "security=-", "security="+formatList(res.API.Security), 1)
			equalLines(t, "operation", []string{got}, []string{tt.want})
			equalLines(t, "warnings", res.Warnings, tt.warnings)
		})
	}
}

func TestScopeOverride(t *testing.T) {
	doc := doc31("security: [{oauth: [a]}, {key: []}]", `  /items:
    get: {x-tollgate-scopes: ["read  write", admin, admin]}
    put: {x-tollgate-scopes: []}
    delete: {security: [], x-tollgate-scopes: [x]}
`)
	res := mustImport(t, doc, Options{})
	equalLines(t, "API", describe(res.API), []string{
		"api id=shop-2 base=/api security=[jwt apiKey] apiKey=header x-api-key",
		`GET /items security=- scopes=["read write" admin]`,
		"PUT /items security=-",
		"DELETE /items security=[none]",
	})
	// The document's scopes are not used where x-tollgate-scopes is given,
	// so nothing is said of them.
	equalLines(t, "warnings", res.Warnings, []string{"DELETE /items: its scopes are not used: it is public"})
}
