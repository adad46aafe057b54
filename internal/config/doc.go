// Package config turns Tollgate's YAML file into an immutable Snapshot.
//
// Parsing (decode.go) walks the YAML node tree onto the File structs,
// strictly: unknown or repeated keys and wrong types are problems, each
// with its YAML path and line, and ${VAR} is expanded in values. Compiling
// (compile.go) validates references and builds the catalog and the API-key
// index. Compile reports every problem at once as Problems.
//
// A Store holds the current Snapshot behind an atomic pointer; a Reloader
// replaces it when the file changes or on SIGHUP, and keeps the running
// snapshot when the new file is invalid.
package config
