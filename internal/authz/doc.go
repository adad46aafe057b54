// Package authz is Tollgate's decision pipeline and its two front ends.
//
// Engine.Decide takes a front-end-neutral Request and returns a Decision,
// following DESIGN §4:
//
//  1. match     the request to an API operation (catalog), or use the
//     API/operation that Envoy named in context_extensions;
//  2. authenticate with the operation's security alternatives, each scheme
//     behind the authenticator interface (present, verify);
//  3. authorize: subscription state, API-key CIDRs, scopes;
//  4. respond: identity headers, credential and spoofed-header removal, or
//     a Denial from the deny table (deny.go).
//
// GRPCServer renders a Decision as an ext_authz v3 CheckResponse;
// HTTPHandler as an HTTP response for Envoy's http_service or nginx's
// auth_request. The engine reads one config snapshot per check and takes no
// locks; metrics go through the Recorder interface.
package authz
