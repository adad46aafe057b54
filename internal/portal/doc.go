// Package portal is the developer portal at /portal/, served by the
// control plane beside the admin API.
//
// Pages are rendered on the server with html/template and work without
// script. Each page is a client of the admin API: backend.do calls the
// admin handler in-process as the signed-in user (admin.AsCaller), so the
// portal holds no authorization rules of its own and a developer sees
// exactly what their own token would.
//
//   - session.go: sessions sealed into a cookie (AES-256-GCM), cookie flags
//   - portal.go: routes, the page wrapper (session, CSRF, access, security
//     headers), errors
//   - signin.go: local accounts (bcrypt) and OpenID Connect (code + PKCE)
//   - pages.go, applications.go, manage.go: the pages
//   - tryit.go: calls from the API page to the configured gateway
//   - usage.go: usage charts, drawn as SVG on the server
//   - assets/: the stylesheet, two small scripts, and Swagger UI (vendored,
//     see scripts/vendor-swagger-ui.sh)
package portal
