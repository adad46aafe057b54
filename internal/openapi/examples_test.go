package openapi

import (
	"slices"
	"strings"
	"testing"
)

// The public example documents, imported as they are or with the one
// extension they need.
func TestExamples(t *testing.T) {
	unsecuredWarning := func(op string) string {
		return op + ": no security requirement applies to it; Tollgate does not make an operation public by omission, so it needs the API's security [jwt apiKey] (x-tollgate-public: true makes it public)"
	}
	tests := []struct {
		file     string
		extra    string // appended: a top-level key
		version  string
		title    string
		want     []string
		warnings []string
		problems []string
	}{
		{
			file:     "petstore-3.0.yaml",
			problems: []string{"security: the document sets no security anywhere, and Tollgate does not make an API public by omission: add security requirements, or x-tollgate-public: true at the top to import it as a public API"},
		},
		{
			file:    "petstore-3.0.yaml",
			extra:   "x-tollgate-public: true\n",
			version: "3.0.0",
			title:   "Swagger Petstore",
			want: []string{
				"api id=swagger-petstore-1-0-0 base=/v1 security=[none]",
				"GET,POST /pets security=-",
				"GET /pets/{petId} security=-",
			},
		},
		{
			file:    "security-schemes-3.1.yaml",
			version: "3.1.0",
			title:   "Security Schemes example",
			want: []string{
				"api id=security-schemes-example-1-0-0 base= security=[mtls jwt]",
				`GET /pets security=- scopes=["read write"]`,
			},
			warnings: []string{`GET /pets: callers with a client certificate alone cannot have the scopes ["read write"]: certificates carry no scopes, so that alternative admits no one`},
		},
		{
			file:     "webhook-3.1.yaml",
			problems: []string{"security: the document sets no security anywhere, and Tollgate does not make an API public by omission: add security requirements, or x-tollgate-public: true at the top to import it as a public API"},
		},
		{
			// Webhooks are requests the API makes, not ones it serves.
			file:    "webhook-3.1.yaml",
			extra:   "x-tollgate-public: true\n",
			version: "3.1.0",
			title:   "Webhook Example",
			want: []string{
				"api id=webhook-example-1-0-0 base= security=[none]",
				"GET /pets security=-",
			},
		},
		{
			file:    "petstore-2.0.yaml",
			version: "2.0",
			title:   "Swagger Petstore",
			want: []string{
				"api id=swagger-petstore-1-0-0 base=/v2 security=[jwt apiKey] apiKey=header api_key",
				`POST,PUT /pet security=[jwt] scopes=["write:pets read:pets"]`,
				`GET /pet/findByStatus security=[jwt] scopes=["write:pets read:pets"]`,
				`GET /pet/findByTags security=[jwt] scopes=["write:pets read:pets"]`,
				"GET /pet/{petId} security=[apiKey]",
				`POST,DELETE /pet/{petId} security=[jwt] scopes=["write:pets read:pets"]`,
				`POST /pet/{petId}/uploadImage security=[jwt] scopes=["write:pets read:pets"]`,
				"GET /store/inventory security=[apiKey]",
				"POST /store/order security=-",
				"GET,DELETE /store/order/{orderId} security=-",
				"POST /user security=-",
				"POST /user/createWithArray security=-",
				"POST /user/createWithList security=-",
				"GET /user/login security=-",
				"GET /user/logout security=-",
				"GET,PUT,DELETE /user/{username} security=-",
			},
			warnings: []string{
				unsecuredWarning("POST /store/order"),
				unsecuredWarning("GET /store/order/{orderId}"),
				unsecuredWarning("DELETE /store/order/{orderId}"),
				unsecuredWarning("POST /user"),
				unsecuredWarning("POST /user/createWithArray"),
				unsecuredWarning("POST /user/createWithList"),
				unsecuredWarning("GET /user/login"),
				unsecuredWarning("GET /user/logout"),
				unsecuredWarning("GET /user/{username}"),
				unsecuredWarning("PUT /user/{username}"),
				unsecuredWarning("DELETE /user/{username}"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file+"+"+strings.TrimSpace(tt.extra), func(t *testing.T) {
			doc := append(readTestdata(t, tt.file), tt.extra...)
			if tt.problems != nil {
				equalLines(t, "problems", importError(t, doc, Options{}), tt.problems)
				return
			}
			res := mustImport(t, doc, Options{})
			equalLines(t, "API", describe(res.API), tt.want)
			equalLines(t, "warnings", res.Warnings, tt.warnings)
			if res.SpecVersion != tt.version || res.Title != tt.title {
				t.Errorf("version %q title %q, want %q %q", res.SpecVersion, res.Title, tt.version, tt.title)
			}
			if res.API.Name != tt.title {
				t.Errorf("name %q, want %q", res.API.Name, tt.title)
			}
		})
	}
}

// The Swagger petstore's description is the document's; the API takes
// info.version.
func TestExampleFields(t *testing.T) {
	res := mustImport(t, readTestdata(t, "petstore-2.0.yaml"), Options{})
	if !strings.HasPrefix(res.Description, "This is a sample server Petstore server.") {
		t.Errorf("description %q", res.Description)
	}
	if res.API.Version != "1.0.0" || res.RequiresApproval {
		t.Errorf("version %q, approval %v", res.API.Version, res.RequiresApproval)
	}
	// The same document imports the same way every time.
	again := mustImport(t, readTestdata(t, "petstore-2.0.yaml"), Options{})
	if !slices.Equal(describe(res.API), describe(again.API)) || !slices.Equal(res.Warnings, again.Warnings) {
		t.Error("two imports of one document differ")
	}
	if c := Changes(res.API, again.API); len(c) != 0 {
		t.Errorf("Changes of equal APIs: %q", c)
	}
}
