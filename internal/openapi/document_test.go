package openapi

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestGarbage(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want string // the first problem, or its start
	}{
		{"empty", "", "the document is empty"},
		{"a word", "garbage", "not an OpenAPI document: want a mapping at the top"},
		{"a list", "[1, 2]", "not an OpenAPI document: want a mapping at the top"},
		{"unclosed", "{", "neither JSON nor YAML"},
		{"binary", "\x00\x01\x02\xff\xfe", "neither JSON nor YAML"},
		{"no version", "info: {title: t}\npaths: {}", "not an OpenAPI document: it has neither openapi nor swagger"},
		{"both versions", "swagger: '2.0'\nopenapi: 3.0.0\n", "both swagger and openapi are set"},
		{"Swagger 1.2", "swagger: '1.2'\n", `swagger: want "2.0"`},
		{"OpenAPI 4", "openapi: 4.0.0\n", "openapi: Tollgate reads OpenAPI 3.x and Swagger 2.0 documents"},
		{"version a list", "openapi: [3]\n", "openapi: Tollgate reads OpenAPI 3.x and Swagger 2.0 documents"},
		{"paths a list", "openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths: [a]\n", "paths: want an object of paths"},
		{"operation a string", "openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths: {/a: {get: x}}\n", "paths./a.get: want an operation object"},
		{"security a map", "openapi: 3.0.0\ninfo: {title: t, version: '1'}\nsecurity: {a: []}\npaths: {/a: {get: {}}}\n", "security: want a list of security requirement objects"},
		{"requirement a string", "openapi: 3.0.0\ninfo: {title: t, version: '1'}\nsecurity: [a]\npaths: {/a: {get: {}}}\n", "security[0]: want a security requirement object"},
		{"scopes a map", "openapi: 3.0.0\ninfo: {title: t, version: '1'}\nsecurity: [{a: {x: 1}}]\npaths: {/a: {get: {}}}\n", "security[0].a: want a list of scopes"},
		{"a key written twice", "openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths:\n  /a: {get: {}}\n  /a: {post: {}}\n", "paths./a: written twice"},
		{"no operations", "openapi: 3.0.0\ninfo: {title: t, version: '1'}\nx-tollgate-public: true\npaths: {}\n", "paths: the document has no operation to import"},
		{"a path without /", "openapi: 3.0.0\ninfo: {title: t, version: '1'}\nsecurity: [{k: []}]\ncomponents: {securitySchemes: {k: {type: apiKey, in: header, name: k}}}\npaths: {a: {get: {}}}\n", "paths.a.get: cannot be imported: a path starts with /"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems := importError(t, []byte(tt.doc), Options{})
			if !strings.HasPrefix(problems[0], tt.want) {
				t.Errorf("problems %q, want one starting %q", problems, tt.want)
			}
		})
	}
}

func TestSize(t *testing.T) {
	doc := readTestdata(t, "petstore-2.0.yaml")
	problems := importError(t, doc, Options{MaxBytes: 1000})
	want := fmt.Sprintf("the document is %d bytes; at most 1000 are accepted", len(doc))
	equalLines(t, "problems", problems, []string{want})

	// The default: 4 MiB.
	huge := append(bytes.Clone(doc), "\nx-padding: \""...)
	huge = append(huge, bytes.Repeat([]byte("a"), DefaultMaxBytes)...)
	huge = append(huge, "\"\n"...)
	problems = importError(t, huge, Options{})
	if !strings.HasPrefix(problems[0], fmt.Sprintf("the document is %d bytes; at most %d", len(huge), DefaultMaxBytes)) {
		t.Errorf("problems %q", problems)
	}
}

// Circular references in schemas are not Tollgate's concern: they are
// never read. Circular path items and security schemes are refused, and
// neither hangs.
func TestCircularRefs(t *testing.T) {
	head := "openapi: 3.1.0\ninfo: {title: t, version: '1'}\n"
	schemas := head + `security: [{k: []}]
paths:
  /a:
    get:
      responses:
        '200': {description: ok, content: {application/json: {schema: {$ref: '#/components/schemas/Node'}}}}
components:
  securitySchemes:
    k: {type: apiKey, in: header, name: k}
  schemas:
    Node: {type: object, properties: {children: {type: array, items: {$ref: '#/components/schemas/Node'}}, next: {$ref: '#/components/schemas/Other'}}}
    Other: {$ref: '#/components/schemas/Node'}
`
	res := mustImport(t, []byte(schemas), Options{})
	equalLines(t, "API", describe(res.API), []string{"api id=t-1 base= security=[apiKey] apiKey=header k", "GET /a security=-"})

	pathItems := head + `x-tollgate-public: true
paths:
  /a: {$ref: '#/paths/~1b'}
  /b: {$ref: '#/paths/~1a'}
`
	problems := importError(t, []byte(pathItems), Options{})
	if !strings.Contains(strings.Join(problems, "\n"), "circular") {
		t.Errorf("problems %q, want one about the circular reference", problems)
	}

	schemes := head + `security: [{k: []}]
paths: {/a: {get: {}}}
components:
  securitySchemes:
    k: {$ref: '#/components/securitySchemes/k'}
`
	importError(t, []byte(schemes), Options{})
}

func TestReferences(t *testing.T) {
	// A path item defined in components, and a security scheme that refers
	// to another.
	doc := []byte(`openapi: 3.1.0
info: {title: t, version: '1'}
paths:
  /a: {$ref: '#/components/pathItems/A'}
components:
  pathItems:
    A:
      get: {security: [{s: [read]}]}
  securitySchemes:
    s: {$ref: '#/components/securitySchemes/t'}
    t: {type: oauth2, flows: {}}
`)
	res := mustImport(t, doc, Options{})
	equalLines(t, "API", describe(res.API), []string{"api id=t-1 base= security=[jwt]", "GET /a security=- scopes=[read]"})

	// Nothing outside the document is read: not a file, not a URL.
	for _, ref := range []string{"testdata/petstore-3.0.yaml#/paths/~1pets", "https://example.com/openapi.yaml#/paths/~1pets", "/etc/hostname"} {
		doc := []byte("openapi: 3.1.0\ninfo: {title: t, version: '1'}\nx-tollgate-public: true\npaths:\n  /a: {$ref: '" + ref + "'}\n")
		importError(t, doc, Options{})
	}
}

// YAML aliases are expanded under a budget: a document that expands to
// billions of nodes is refused quickly.
func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("openapi: 3.1.0\ninfo: {title: t, version: '1'}\nx-a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 12; i++ {
		fmt.Fprintf(&b, "x-a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	b.WriteString("x-tollgate-hosts: *a11\nx-tollgate-public: true\npaths: {/a: {get: {}}}\n")
	problems := importError(t, []byte(b.String()), Options{})
	if !strings.Contains(strings.Join(problems, "\n"), "nested too deeply") && !strings.Contains(strings.Join(problems, "\n"), "aliases expand it") {
		t.Errorf("problems %q", problems)
	}
	// Wide, not deep: over the visit budget.
	b.Reset()
	b.WriteString("openapi: 3.1.0\ninfo: {title: t, version: '1'}\nx-a0: &a0 [x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x]\n")
	b.WriteString("x-a1: &a1 [" + strings.Repeat("*a0, ", 2000) + "*a0]\n")
	b.WriteString("x-tollgate-audiences: [" + strings.Repeat("*a1, ", 100) + "*a1]\nx-tollgate-public: true\npaths: {/a: {get: {}}}\n")
	problems = importError(t, []byte(b.String()), Options{})
	if !strings.Contains(strings.Join(problems, "\n"), "aliases expand it") {
		t.Errorf("problems %q", problems)
	}
}

func TestDeepNesting(t *testing.T) {
	doc := "openapi: 3.1.0\ninfo: {title: t, version: '1'}\nx-tollgate-public: true\nx-tollgate-hosts: " +
		strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + "\npaths: {/a: {get: {}}}\n"
	importError(t, []byte(doc), Options{})
	doc = strings.Repeat("[", 200000) + strings.Repeat("]", 200000)
	importError(t, []byte(doc), Options{})
}

func TestJSON(t *testing.T) {
	doc := []byte(`{
	"swagger": "2.0",
	"info": {"title": "Minimal", "version": "0.1"},
	"basePath": "/",
	"securityDefinitions": {"key": {"type": "apiKey", "in": "query", "name": "api_key"}},
	"security": [{"key": []}],
	"paths": {"/things/{id}": {"get": {}, "delete": {"security": []}}}
}`)
	res := mustImport(t, doc, Options{})
	equalLines(t, "API", describe(res.API), []string{
		"api id=minimal-0-1 base= security=[apiKey] apiKey=query api_key",
		"GET /things/{id} security=-",
		"DELETE /things/{id} security=[none]",
	})
}

// Security written once and merged into operations with YAML merge keys
// is read as the library reads it.
func TestMergeKeys(t *testing.T) {
	doc := []byte(`openapi: 3.0.3
info: {title: t, version: '1'}
components:
  securitySchemes:
    k: {type: apiKey, in: header, name: k}
    o: {type: oauth2, flows: {}}
x-defaults: &secured
  security: [{o: [write]}]
paths:
  /a:
    get: {security: [{k: []}]}
    post:
      <<: *secured
      summary: merged
    put:
      <<: *secured
      security: [{k: []}]
`)
	res := mustImport(t, doc, Options{})
	equalLines(t, "API", describe(res.API), []string{
		"api id=t-1 base= security=[apiKey jwt] apiKey=header k",
		"GET,PUT /a security=[apiKey]",
		"POST /a security=[jwt] scopes=[write]",
	})
}

func TestServers(t *testing.T) {
	head := "openapi: 3.0.3\ninfo: {title: t, version: '1'}\nx-tollgate-public: true\n"
	tests := []struct {
		name     string
		servers  string
		paths    string
		base     string
		warnings []string
		problems []string
	}{
		{name: "no servers", base: ""},
		{name: "a full URL", servers: `[{url: "https://api.example.com/v1/"}]`, base: "/v1"},
		{name: "a relative URL", servers: `[{url: "/api/v2"}]`, base: "/api/v2"},
		{name: "the root", servers: `[{url: "https://api.example.com"}]`, base: ""},
		{name: "variables", servers: `[{url: "https://{host}/{prefix}/v1", variables: {host: {default: api.example.com}, prefix: {default: shop, enum: [shop, test]}}}]`, base: "/shop/v1"},
		{name: "an undefined variable", servers: `[{url: "https://api.example.com/{prefix}"}]`, problems: []string{`servers[0].url: server URL "https://api.example.com/{prefix}" uses the variable {prefix}, which it does not define; x-tollgate-base-path can say where the API is served`}},
		{name: "relative to the document", servers: `[{url: "v1"}]`, problems: []string{`servers[0].url: server URL "v1" is relative to where the document is served; x-tollgate-base-path can say where the API is served`}},
		{
			name:     "servers that disagree",
			servers:  `[{url: "https://api.example.com/v1"}, {url: "https://staging.example.com/v1"}, {url: "https://old.example.com/legacy"}]`,
			base:     "/v1",
			warnings: []string{`servers[2]: its base path "/legacy" differs from the first server's "/v1"; Tollgate serves the API under the first`},
		},
		{
			name:     "an operation served elsewhere",
			servers:  `[{url: "https://api.example.com/v1"}]`,
			paths:    "  /b: {get: {servers: [{url: 'https://files.example.com/files'}], security: [{k: []}]}}\n",
			problems: []string{`paths./b.get: cannot be imported: its servers put it under "/files", not under the API's base path`},
		},
		{
			name:     "a public operation served elsewhere is left out",
			servers:  `[{url: "https://api.example.com/v1"}]`,
			paths:    "  /b: {servers: [{url: 'https://files.example.com/files'}], get: {}}\n",
			base:     "/v1",
			warnings: []string{`GET /b: not imported, it is public and its servers put it under "/files", not under the API's base path; requests to it match no operation of the API`},
		},
		{
			name:    "an operation's servers under the same base path",
			servers: `[{url: "https://api.example.com/v1"}]`,
			paths:   "  /b: {get: {servers: [{url: 'https://eu.example.com/v1/'}]}}\n",
			base:    "/v1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := head
			if tt.servers != "" {
				doc += "servers: " + tt.servers + "\n"
			}
			doc += "components: {securitySchemes: {k: {type: apiKey, in: header, name: k}}}\npaths:\n  /a: {get: {}}\n" + tt.paths
			if tt.problems != nil {
				equalLines(t, "problems", importError(t, []byte(doc), Options{}), tt.problems)
				return
			}
			res := mustImport(t, []byte(doc), Options{})
			if res.API.BasePath != tt.base {
				t.Errorf("base path %q, want %q", res.API.BasePath, tt.base)
			}
			equalLines(t, "warnings", res.Warnings, tt.warnings)
		})
	}
}

func TestPaths(t *testing.T) {
	head := `openapi: 3.2.0
info: {title: t, version: '1'}
security: [{k: []}]
components: {securitySchemes: {k: {type: apiKey, in: header, name: k}}}
paths:
`
	tests := []struct {
		name     string
		paths    string
		want     []string
		warnings []string
		problems []string
	}{
		{
			name:  "templates stay as they are",
			paths: "  /pets/{petId}/toys/{toy_id}: {get: {}}\n  /: {get: {}}\n",
			want:  []string{"GET / security=-", "GET /pets/{petId}/toys/{toy_id} security=-"},
		},
		{
			name:     "parameter names Tollgate does not take are renamed",
			paths:    "  /users/{user-id}/{1st}: {get: {}}\n",
			want:     []string{"GET /users/{user_id}/{p1st} security=-"},
			warnings: []string{"GET /users/{user-id}/{1st}: parameter {user-id} is written {user_id}", "GET /users/{user-id}/{1st}: parameter {1st} is written {p1st}"},
		},
		{
			name:     "a segment of text and parameters matches the whole segment",
			paths:    "  /files/{name}.json: {get: {}}\n",
			want:     []string{"GET /files/* security=-"},
			warnings: []string{`GET /files/{name}.json: segment "{name}.json" matches any value in its place`},
		},
		{
			name:     "paths that match the same requests with the same settings are merged",
			paths:    "  /pets/{id}: {get: {}}\n  /pets/{petId}/: {delete: {}}\n",
			want:     []string{"GET,DELETE /pets/{id} security=-"},
			warnings: []string{"paths /pets/{id} and /pets/{petId}/ match the same requests; both are imported as /pets/{id}"},
		},
		{
			name:     "paths that match the same requests with other settings are refused",
			paths:    "  /pets/{id}: {get: {}}\n  /pets/{petId}: {get: {security: []}}\n",
			problems: []string{"paths./pets/{petId}.get: matches the same requests as paths./pets/{id}.get, with other security, scopes or rate limit"},
		},
		{
			name:     "a path Tollgate cannot match is refused",
			paths:    "  /a b: {get: {}}\n",
			problems: []string{`paths./a b.get: cannot be imported: path template "/a b": segment 1: "a b": character ' ' is not allowed in a literal segment`},
		},
		{
			name:     "a public path Tollgate cannot match is left out",
			paths:    "  /a b: {get: {security: []}}\n  /c: {get: {}}\n",
			want:     []string{"GET /c security=-"},
			warnings: []string{`GET /a b: not imported, it is public and path template "/a b": segment 1: "a b": character ' ' is not allowed in a literal segment; requests to it match no operation of the API`},
		},
		{
			name:     "a method Tollgate does not match is refused",
			paths:    "  /search: {query: {}}\n",
			problems: []string{"paths./search.query: cannot be imported: Tollgate does not match the method QUERY"},
		},
		{
			name:     "additional operations",
			paths:    "  /search: {additionalOperations: {LINK: {security: []}, CONNECT: {}}, get: {}}\n",
			want:     []string{"GET,CONNECT /search security=-"},
			warnings: []string{"LINK /search: not imported, it is public and Tollgate does not match the method LINK; requests to it match no operation of the API"},
		},
		{
			name:  "a scope with a comma is not two scopes",
			paths: "  /c: {get: {x-tollgate-scopes: ['a,b']}, post: {x-tollgate-scopes: [a, b]}}\n",
			want:  []string{"GET /c security=- scopes=[a,b]", "POST /c security=- scopes=[a b]"},
		},
		{
			name:  "methods with other settings are operations of their own",
			paths: "  /a: {get: {x-tollgate-rate-limit: r}, head: {x-tollgate-rate-limit: r}, post: {}, put: {}, trace: {security: []}}\n",
			want:  []string{"GET,HEAD /a security=- rateLimit=r", "POST,PUT /a security=-", "TRACE /a security=[none]"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := []byte(head + tt.paths)
			if tt.problems != nil {
				equalLines(t, "problems", importError(t, doc, Options{}), tt.problems)
				return
			}
			res := mustImport(t, doc, Options{})
			equalLines(t, "operations", describe(res.API)[1:], tt.want)
			equalLines(t, "warnings", res.Warnings, tt.warnings)
		})
	}
}

func TestNames(t *testing.T) {
	doc := []byte("openapi: 3.0.3\ninfo: {title: \"Line\\none " + strings.Repeat("é", 200) + "\", version: '1'}\nx-tollgate-public: true\npaths: {/a: {get: {}}}\n")
	res := mustImport(t, doc, Options{})
	if len(res.API.Name) > 256 || strings.Contains(res.API.Name, "\n") || !strings.HasPrefix(res.API.Name, "Line one é") {
		t.Errorf("name %q", res.API.Name)
	}
	equalLines(t, "warnings", res.Warnings, []string{"info.title: shortened to printable text of at most 256 bytes"})
	if !strings.HasPrefix(res.Title, "Line\none") {
		t.Errorf("title %q: the result keeps the document's", res.Title)
	}
}

// The admin API may import several documents at once.
func TestConcurrentImports(t *testing.T) {
	docs := [][]byte{readTestdata(t, "petstore-2.0.yaml"), readTestdata(t, "security-schemes-3.1.yaml")}
	want := make([][]string, len(docs))
	for i, d := range docs {
		want[i] = describe(mustImport(t, d, Options{}).API)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 5 {
				d := (g + i) % len(docs)
				res, err := Import(docs[d], Options{})
				if err != nil || !slices.Equal(describe(res.API), want[d]) {
					t.Errorf("import %d of document %d: %v", i, d, err)
				}
			}
		})
	}
	wg.Wait()
}
