package admin

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestAPIPolicies: an API's policies and CORS settings go through the
// admin API as any other field, are refused with where the problem is
// when a replica could not carry them out, and survive a re-import of
// the API's OpenAPI document.
func TestAPIPolicies(t *testing.T) {
	a := startAPI(t, "sqlite")
	withPolicies := map[string]any{
		"id": "shop", "basePath": "/shop", "security": []string{"apiKey"},
		"policies": map[string]any{
			"request":      []any{map[string]any{"setHeader": map[string]any{"name": "x-env", "value": "prod"}}},
			"response":     []any{map[string]any{"removeHeader": map[string]any{"name": "server"}}},
			"rules":        []any{map[string]any{"expr": "request.method != 'DELETE'", "denyCode": "900911"}},
			"interceptors": map[string]any{"request": map[string]any{"url": "http://mediator:8080"}, "timeout": "500ms"},
		},
		"cors": map[string]any{"allowOrigins": []string{"https://app.example.com"}, "maxAge": "10m"},
		"operations": []any{map[string]any{"path": "/items/{id}", "methods": []string{"GET"},
			"policies": map[string]any{"request": []any{map[string]any{"rewritePath": "/v2/items/{id}"}}}}},
	}
	a.must(t, 201, publisherToken, "POST", "/api/v1/apis", withPolicies)
	got := a.must(t, 200, publisherToken, "GET", "/api/v1/apis/shop", nil).json(t)
	for _, want := range []string{`"setHeader":{"name":"x-env","value":"prod"}`, `"rewritePath":"/v2/items/{id}"`, `"denyCode":"900911"`,
		`"timeout":"0.500s"`, `"allowOrigins":["https://app.example.com"]`} {
		if body, _ := json.Marshal(got); !strings.Contains(string(body), want) && !strings.Contains(string(body), strings.Replace(want, "0.500s", "500ms", 1)) {
			t.Errorf("read back without %s: %s", want, body)
		}
	}

	bad := a.must(t, 400, publisherToken, "PATCH", "/api/v1/apis/shop", map[string]any{
		"policies": map[string]any{"rules": []any{map[string]any{"expr": "request.method =="}}},
	}).json(t)
	if body, _ := json.Marshal(bad); bad["code"] != CodeInvalid || !strings.Contains(string(body), "policies.rules[0].expr") {
		t.Errorf("a broken rule: %s", body)
	}

	// Re-imported from a document (which has no policies), the API keeps
	// its own and the operation of the same path keeps its.
	doc := `openapi: 3.0.3
info: {title: Shop, version: "1"}
servers: [{url: "https://shop.example.com/shop"}]
components: {securitySchemes: {key: {type: apiKey, in: header, name: apikey}}}
security: [{key: []}]
paths:
  /items/{id}:
    get: {responses: {"200": {description: ok}}}
  /other:
    get: {responses: {"200": {description: ok}}}
`
	again := a.must(t, 200, publisherToken, "POST", "/api/v1/apis/import?id=shop", doc).json(t)
	body, _ := json.Marshal(again["api"])
	if !strings.Contains(string(body), `"x-env"`) || !strings.Contains(string(body), `"rewritePath":"/v2/items/{id}"`) || !strings.Contains(string(body), `"allowOrigins"`) {
		t.Errorf("re-imported without its policies: %s", body)
	}
}
