// Package server runs an enforcer replica: the wiring from a config file
// (and, with controlPlane set, the xDS source) to the compiled model, the
// decision engine and its front ends (gRPC ext_authz, the HTTP shapes,
// the access-log service), the admin listener, and the drain on shutdown.
// cmd/enforcer parses the command line and calls Run; tests can drive Run
// in process.
//
// Start-up order: the admin listener opens first, so /healthz answers
// while a large config or state loads; /readyz and the gRPC health
// service report ready only once a state is loaded, the issuers' keys
// have had their first fetch and the rate-limit store answers.
package server
