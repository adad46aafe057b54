// Package controlplane is Tollgate's control plane: it serves resources
// to every replica over Delta xDS (go-control-plane's server and
// linear caches, one per kind, with type URLs
// type.googleapis.com/tollgate.v1.*) from a watched YAML file or
// directory, and lists the replicas and what each has accepted at
// GET /api/v1/replicas.
//
// The flow: the source loads and validates the whole set (the same
// validation an enforcer's file gets), the set is compared with what the
// caches hold, and only the resources that changed are updated, kind by
// kind in dependency order. Each resource's version is the SHA-256 of its
// encoding, so it is the same after a restart and a replica that
// reconnects with the versions it holds is sent only the difference. A
// response larger than the chunk size is sent as several, each but the
// last marked as partial (resources.PartialSuffix) so that a replica
// applies the whole change at once.
//
// Replicas report usage on the same listener (usage.Register): with a
// store it is kept there and purged past usage.retention; a file source
// accepts reports and keeps nothing.
package controlplane
