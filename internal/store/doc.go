// Package store is the control plane's system of record: APIs,
// applications, subscriptions, API keys (as digests), rate-limit
// policies, issuers and revoked tokens, in SQLite (a file, the embedded
// default, through a pure-Go driver) or PostgreSQL (for several control
// planes on one database).
//
// Every kind lives in one table of records (kind, id, a few columns to
// filter by, and the body: the resource's message in its JSON form plus
// management fields). Each record has a version, which the admin API
// serves as its ETag, and the revision of the transaction that last
// wrote it. Write transactions take the revision counter first, which
// serialises them, so revisions commit in order: a control plane that
// read everything at revision R and then asks for changes after R misses
// nothing. Deletions stay as tombstones until they are old enough that
// every running control plane has seen them.
//
// Values that must be unique across records (client ids, principals,
// certificate fingerprints, key digests) are claims in their own table
// with a primary key, so two control planes can never both grant one.
//
// Usage that replicas report (requests per minute, application, API and
// status class, with their latencies added up) is not a record: it has a
// table of its own, which each report adds to (AddUsage, an upsert that
// takes no revision) and the control plane purges by age.
//
// The schema is applied at Open by versioned migrations (goose), one set
// per database, under migrations/.
package store
