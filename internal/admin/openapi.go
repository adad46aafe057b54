package admin

import (
	_ "embed"
	"net/http"
)

// openAPIDocument describes this API as it is implemented; the tests
// hold real responses to it.
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPIDocument returns a copy of the API's OpenAPI 3.1 document.
func OpenAPIDocument() []byte { return append([]byte(nil), openAPIDocument...) }

// serveOpenAPI answers the document without authentication: it says
// what the API is, which its clients need before they hold a token, and
// it holds no data of the API's.
func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDocument)
}
