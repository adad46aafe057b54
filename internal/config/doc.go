// Package config is the replica's bootstrap and the file source of
// resources: it turns Tollgate's YAML file into a Config.
//
// Parsing (decode.go) walks the YAML node tree onto the File structs,
// strictly: unknown or repeated keys and wrong types are problems, each
// with its YAML path and line, and ${VAR} is expanded in values. The
// resource sections decode into tollgate.v1 messages by their JSON names
// (decode_proto.go). Compiling validates the bootstrap here and hands the
// resources to model.Compile, which holds every source to the same rules;
// Compile reports every problem at once as Problems, with YAML lines.
//
// A Reloader replaces the model.Store's snapshot when the file changes or
// on SIGHUP, and keeps the running snapshot when the new file is invalid.
// The data plane never imports this package.
package config
