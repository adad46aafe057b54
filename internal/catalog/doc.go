// Package catalog holds what is being managed — APIs and their operations,
// applications and their subscriptions — and matches a request to its
// operation.
//
// Operations are path templates ({name}, *, {name...}, **) under an API's
// base path, compiled into one segment trie per catalog. Matching walks
// literal children before parameters before rest matches, so the first
// complete match is the most specific; it does not allocate.
package catalog
