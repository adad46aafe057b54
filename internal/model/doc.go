// Package model is the compiled model the data plane decides with.
//
// Every source of resources — the config file, the xDS control plane,
// the database — produces tollgate.v1 messages. Compile validates them
// (this package is the one place the rules on resources live, so every
// source is held to the same ones) and builds an immutable Snapshot: the
// catalog of APIs, the applications, the API-key index, the issuers and
// the rate-limit policies. A Store holds the current Snapshot behind an
// atomic pointer; the request path only ever loads it.
//
// The model knows nothing of where resources come from: it never imports
// a source. Problems are reported with a path into the Resources message
// (apis[2].operations[0].path), which a source turns into its own terms:
// a YAML line, a resource name.
package model
