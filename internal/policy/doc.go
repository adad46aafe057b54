// Package policy holds the compiled forms of an API's policies (README,
// "Policies"): the changes made to an allowed request and to its
// response, the CORS settings, the CEL rules and the interceptor
// services. It is part of the data plane: internal/model compiles the
// tollgate.v1 resources into these types at load, and the decision reads
// them. Nothing here is parsed on a request's path: every name, value,
// template and expression was validated when the configuration loaded.
package policy
