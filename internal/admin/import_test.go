package admin

import (
	"fmt"
	"strings"
	"testing"
)

const ordersV1 = `openapi: 3.0.3
info: {title: Orders, version: "1.0"}
servers: [{url: "https://orders.example.com/orders/v1"}]
tags: [{name: orders}, {name: "<script>"}]
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: x-api-key}
    oauth: {type: oauth2, flows: {clientCredentials: {tokenUrl: "https://idp/token", scopes: {"orders:read": r, "orders:write": w}}}}
security: [{key: []}, {oauth: ["orders:read"]}]
paths:
  /orders:
    get: {responses: {"200": {description: ok}}}
  /orders/{id}:
    get: {responses: {"200": {description: ok}}}
`

func TestImportOpenAPI(t *testing.T) {
	backendsOf(t, func(t *testing.T, a *testAPI) {
		a.must(t, 403, aliceToken, "POST", "/api/v1/apis/import", ordersV1)
		first := a.must(t, 201, publisherToken, "POST", "/api/v1/apis/import?publish=true", ordersV1).json(t)
		api := first["api"].(map[string]any)
		if api["id"] != "orders-1-0" || api["state"] != "published" || api["basePath"] != "/orders/v1" || first["specVersion"] != "3.0.3" {
			t.Fatalf("imported: %v", first)
		}
		if fmt.Sprint(api["tags"]) != "[orders]" {
			t.Errorf("tags: %v, want the document's usable ones", api["tags"])
		}
		if got := a.must(t, 200, aliceToken, "GET", "/api/v1/apis/orders-1-0/openapi", nil); string(got.body) != ordersV1 {
			t.Fatalf("the stored document differs: %s", got.body)
		}
		a.must(t, 201, publisherToken, "POST", "/api/v1/policies", map[string]any{"name": "bronze", "limits": []any{map[string]any{"requests": 10, "per": "1s"}}})
		a.must(t, 200, publisherToken, "PATCH", "/api/v1/apis/orders-1-0", map[string]any{"tiers": []string{"bronze"}})
		// A re-import says what changed, and keeps the lifecycle and tiers.
		v2 := strings.Replace(ordersV1, "  /orders/{id}:\n", "  /orders/{id}/cancel:\n    post: {responses: {\"200\": {description: ok}}}\n  /orders/{id}:\n", 1)
		again := a.must(t, 200, publisherToken, "POST", "/api/v1/apis/import", v2).json(t)
		changes := strings.Join(toStrings(again["changes"]), "\n")
		if !strings.Contains(changes, "POST /orders/{id}/cancel") || again["api"].(map[string]any)["state"] != "published" || again["created"] != false ||
			fmt.Sprint(again["api"].(map[string]any)["tiers"]) != "[bronze]" {
			t.Fatalf("re-import: %v", again)
		}
		// A document that cannot be imported gets the error shape, with
		// where each problem is.
		bad := a.must(t, 400, publisherToken, "POST", "/api/v1/apis/import", "openapi: 3.0.3\ninfo: {title: x, version: '1'}\npaths: {/x: {get: {responses: {'200': {description: ok}}}}}\n").json(t)
		if bad["code"] != CodeInvalid || len(bad["details"].([]any)) == 0 {
			t.Fatalf("an unprotected document: %v", bad)
		}
		a.must(t, 400, publisherToken, "POST", "/api/v1/apis/import", "\x00\x01 not a document")
	})
}

func toStrings(v any) []string {
	var out []string
	for _, e := range v.([]any) {
		out = append(out, e.(string))
	}
	return out
}
