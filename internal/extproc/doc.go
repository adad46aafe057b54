// Package extproc is Tollgate's front end for Envoy's External Processing
// API (envoy.service.ext_proc.v3.ExternalProcessor): it calls the
// interceptor services of an operation, following Choreo Connect's
// interceptor contract, and applies the response policies ext_authz cannot
// (removeHeader).
//
// One Process stream is one HTTP request. Its request headers are matched
// to an operation: the one ext_authz named in its dynamic metadata
// (forwarded by metadata_options.forwarding_namespaces), else by host,
// method and path. Envoy runs ext_authz first, so a refused request never
// reaches this package. With nothing to do the answer is CONTINUE with a
// mode_override that skips the rest of the stream. Otherwise the mode
// override asks for what the interceptors need (BUFFERED bodies, the
// response headers), and:
//
//   - the request interceptor is posted {url}/api/v1/handle-request once
//     the headers, and the body if it is included, are in; its answer
//     becomes a header mutation (removals, replacements, additions), a body
//     mutation with a matching content-length, or an ImmediateResponse
//     (directRespond);
//   - its interceptorContext is kept in the stream and sent to the response
//     interceptor, {url}/api/v1/handle-response, whose answer changes the
//     response's headers, status and body likewise;
//   - trailer changes wait for the message's trailers: Envoy sends those
//     after the body, when the headers can no longer change, so trailers
//     are never sent to an interceptor (an empty object when included).
//
// Every answer is checked before any of it reaches a header (contract.go):
// an invalid one is a failed call. A failed call (timeout, unreachable,
// another status than 200 or 204, invalid answer) refuses the request with
// 503 or the response with 502, or, with failureMode open, lets the
// message go on unchanged. Bodies over maxBodyBytes are not sent: a
// request's is refused with 413, a response's is a failed call.
// Interceptors are called with one pooled HTTP client, each call bounded
// by its timeout and its answer by maxBodyBytes.
package extproc
