// Package authz is Tollgate's decision pipeline and its front ends.
//
// Engine.Decide takes a front-end-neutral Request and returns a Decision,
// following the README's "The decision":
//
//  0. refuse what cannot be read one way only (400): a malformed
//     CheckRequest, a path with escaped separators, a malformed host, a
//     repeated credential;
//  1. match     the request to an API operation (catalog), or use the
//     API/operation that Envoy named in context_extensions; refuse a
//     blocked API (503) there;
//  2. authenticate with the operation's security alternatives, each scheme
//     behind the authenticator interface (present, verify);
//  3. authorize: subscription state, API-key CIDRs, scopes (any entry, all
//     of its scopes);
//  4. rate-limit;
//  5. respond: identity headers, removal of credentials, method overrides
//     and every header only Tollgate may set, or a Denial from the deny
//     table (deny.go).
//
// GRPCServer renders a Decision as an ext_authz v3 CheckResponse;
// HTTPHandler as an HTTP response for Envoy's http_service, nginx's
// auth_request or a forward-auth proxy (Traefik, Caddy), whichever the
// config names. Neither lets a panic or an unreadable request become an
// RPC error: Envoy's failure_mode_allow would turn that into an allow. The
// engine reads one config snapshot per check and takes no locks; metrics go
// through the Recorder interface. Caches (verified tokens, certificates,
// backend JWTs) are keyed by SHA-256 and keep nothing of the request.
package authz
