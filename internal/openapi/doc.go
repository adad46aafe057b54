// Package openapi imports OpenAPI 3.x and Swagger 2.0 documents, in JSON
// or YAML, as tollgate.v1.Api resources, and says what a re-import
// changes (Changes).
//
// # Reading
//
// The document is read with libopenapi, after being cut down to what
// Tollgate reads: the version, info, servers or basePath, the paths with
// each operation's security, servers and x-tollgate extensions, the
// security schemes, and security. Schemas, parameters, bodies, responses
// and webhooks are not Tollgate's concern and are never looked at, so
// circular schemas cost nothing; circular path items or security schemes
// are refused. The parts kept are type-checked first, YAML aliases are
// expanded under a budget that follows the document's size, nesting and
// the number of paths are bounded, and nothing outside the document is
// read (no file, no URL). A panic on Import's goroutine is turned into a
// DocumentError; the library also builds parts of its model on goroutines
// of its own, out of any recover's reach, which is why it is only handed
// the type-checked parts. What Import returns has passed the data plane's own
// validation (model.Compile); anything else is a *DocumentError listing
// every problem with its place in the document (paths./pets.get.security[0]).
// Warnings say what was left out, or is enforced more strictly than the
// document asks, and why.
//
// # The API
//
// name and version are info.title and info.version; the id is
// Options.ID, else x-tollgate-id, else title-version as a slug. The base
// path is Swagger's basePath or the path of the first server's URL (its
// variables at their defaults; "/" is none); x-tollgate-base-path
// overrides it. Servers name upstreams, not the gateway, so hosts come
// only from x-tollgate-hosts (default: any host). An operation whose own
// servers put it under another base path cannot be served by this API and
// is refused.
//
// Each path is one template, {name} segments kept (a name Tollgate does
// not accept is renamed; a segment mixing text and parameters, such as
// {name}.json, matches the whole segment). Its methods become one
// operation where their security, scopes and rate limit are equal, else
// one each; operations are sorted by path, then method. A path or method
// Tollgate cannot match is refused, or left out with a warning when it is
// public: leaving out a secured operation could expose it where unmatched
// requests are allowed.
//
// # Security
//
// Each security requirement object is an alternative; several schemes in
// one are an AND set (mtls+apiKey). apiKey in a header or the query is
// apiKey; http bearer, oauth2 and openIdConnect are jwt (bearer tokens
// must then be JWTs from a configured issuer); mutualTLS is mtls. HTTP
// basic and digest, API keys in cookies and anything else are
// unsupported: an alternative that needs one is dropped with a warning,
// and an operation left with no alternative is refused, never made
// public. An API reads its keys from one place, the first apiKey scheme
// the document uses: another scheme's keys are looked for there (a
// warning), and an alternative that needs two keys in different places is
// dropped. An empty requirement object ({}) is none, tried last so that a
// caller who presents credentials is identified by them.
//
// The top-level security is the default and an operation's own replaces
// it; security: [] or x-tollgate-public: true on an operation makes it
// public (none). The API's security is the top-level security, or
// failing that every alternative its operations accept, and an operation
// whose security equals it leaves it to the API, as the data plane
// resolves it. Tollgate never makes an API or an operation public by
// omission, as the data plane never does (an API must list its
// security): an operation to which no security applies takes the API's,
// with a warning, and a document with no security anywhere is refused
// unless x-tollgate-public: true at the top says it is public. A
// top-level security: [] counts as no security written.
//
// # Scopes
//
// An operation's scopes are one of a list of entries; an entry of several
// scopes separated by spaces needs all of them. Each alternative's scope
// list becomes one entry. The data plane checks an operation's scopes for
// every credential but none (API keys carry scopes; client certificates
// carry none), where a document can ask different scopes of each
// alternative. The entries are therefore chosen never weaker than the
// document: each combines, for every alternative, one of its scope sets,
// so a caller they admit the document admits too. Where that is stricter
// than the document for some alternative (an API key where only the OAuth
// alternative asks scopes; a certificate, which can meet no scope) a
// warning says so; more than 64 combinations are refused.
// x-tollgate-scopes on an operation replaces them.
//
// # Extensions
//
// At the top: x-tollgate-id, x-tollgate-base-path, x-tollgate-hosts,
// x-tollgate-rate-limit (the API's policy), x-tollgate-anonymous-rate-limit,
// x-tollgate-public, x-tollgate-audiences and
// x-tollgate-subscription-approval (Result.RequiresApproval). On an
// operation: x-tollgate-rate-limit, x-tollgate-public and
// x-tollgate-scopes. A value of the wrong type, or an x-tollgate key that
// is unknown or not read where it is written, is a problem: it would
// otherwise be ignored, and most of them decide who gets in.
package openapi
