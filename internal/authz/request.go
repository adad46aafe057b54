package authz

import (
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
)

// Frontend names the protocol a check arrived on; it labels metrics.
type Frontend uint8

const (
	FrontendGRPC Frontend = iota
	FrontendHTTP
)

func (f Frontend) String() string {
	if f == FrontendHTTP {
		return "http"
	}
	return "grpc"
}

// Request is what the pipeline needs to know about the request being
// checked, whichever front end it came from. It refers to the front end's
// own data (header maps, strings) rather than copying it: nothing that
// outlives the check may keep a string of it without copying.
type Request struct {
	Frontend Frontend
	Method   string
	Host     string
	Target   string // path and query, as sent
	Headers  Headers
	Peer     netip.Addr // the address that connected to the proxy (gRPC) or to us (HTTP)

	// What Envoy authenticated about its peer (gRPC only): the principal
	// (SPIFFE ID, URI or DNS SAN, or subject) and, with
	// include_peer_certificate, the certificate as URL-encoded PEM.
	SourcePrincipal   string
	SourceCertificate string

	// From Envoy's per-route context_extensions: the route already knows
	// the API (and perhaps the operation), so no matching is needed.
	APIID       string
	OperationID string

	RequestID string

	// Unreadable, when set, is why the front end could not read the
	// request one way only (a malformed CheckRequest, a missing or repeated
	// X-Original-URI, ...): the decision is a 400 with this description.
	Unreadable string
}

// Headers gives read access to request headers by lower-case name. It is
// a concrete type over the front ends' own representations, so lookups
// neither copy nor go through an interface.
type Headers struct {
	fields   []headerField // a CheckRequest's headers (lower-case names), as read by WireCheckRequest
	lastWins bool          // fields came from a map: a repeated name's last value counts
	h        http.Header   // the HTTP front end
}

// Get returns the value of the header called name (lower case), or "".
// A header sent in several lines gives its first line: callers for which
// the lines could be read differently use Lookup or Joined.
func (hs Headers) Get(name string) string {
	if hs.h != nil || hs.lastWins {
		v, _ := hs.Lookup(name)
		return v
	}
	for _, f := range hs.fields { // the first line is enough: no need to count the others
		if f.name == name {
			return f.value
		}
	}
	return ""
}

// Lookup returns the first value of header name and the number of lines it
// came in. Envoy's headers map joins repeated headers into one value (and
// a map key that repeats counts once, its last value winning); its
// header_map and the HTTP front end keep each line.
func (hs Headers) Lookup(name string) (value string, lines int) {
	if hs.h != nil {
		vs := hs.h[http.CanonicalHeaderKey(name)]
		if len(vs) == 0 {
			return "", 0
		}
		return vs[0], len(vs)
	}
	if hs.lastWins {
		for i := len(hs.fields) - 1; i >= 0; i-- {
			if hs.fields[i].name == name {
				return hs.fields[i].value, 1
			}
		}
		return "", 0
	}
	for _, f := range hs.fields {
		if f.name == name {
			if lines == 0 {
				value = f.value
			}
			lines++
		}
	}
	return value, lines
}

// Joined returns every line of a list-valued header (X-Forwarded-For,
// X-Forwarded-Client-Cert) joined by commas, as RFC 9110 says repeated
// lines mean: reading only the first would let a client write the part
// that is read.
func (hs Headers) Joined(name string) string {
	first, lines := hs.Lookup(name)
	if lines <= 1 {
		return first
	}
	var parts []string
	if hs.h != nil {
		parts = hs.h[http.CanonicalHeaderKey(name)]
	} else {
		for _, f := range hs.fields {
			if f.name == name {
				parts = append(parts, f.value)
			}
		}
	}
	return strings.Join(parts, ",")
}

// appendReserved appends the names of client-sent headers that only
// Tollgate may set upstream and that the config does not list (the listed
// ones are removed whether sent or not): x-consumer-*, x-authenticated-*.
func (hs Headers) appendReserved(dst []string, d *Decision, listed map[string]bool) []string {
	consider := func(name string, isLower bool) {
		if !isReservedHeader(name) {
			return
		}
		if !isLower {
			name = strings.ToLower(name)
		}
		if !listed[name] && !identityHeader(name) && !d.sets(name) && !slices.Contains(dst, name) {
			dst = append(dst, name)
		}
	}
	for _, f := range hs.fields {
		consider(f.name, true) // Envoy sends header names in lower case
	}
	for name := range hs.h {
		consider(name, false)
	}
	return dst
}

// isReservedHeader matches header names in any case without allocating.
func isReservedHeader(name string) bool {
	return hasPrefixFold(name, "x-consumer-") || hasPrefixFold(name, "x-authenticated-") ||
		strings.EqualFold(name, "x-credential-type")
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// queryValue is what a query string says about one parameter name.
type queryValue struct {
	value   string // decoded value of its first occurrence
	found   bool
	unclear bool // repeated, or also spelled in a way Envoy would not remove
}

// namedAfterSemicolon reports whether a part of pair after a ';' names
// the parameter: Rack and other servers that split the query on ';' as on
// '&' would read it there.
func namedAfterSemicolon(pair, name string) bool {
	_, rest, _ := strings.Cut(pair, ";")
	for part := range strings.SplitSeq(rest, ";") {
		k, _, _ := strings.Cut(part, "=")
		if k == name {
			return true
		}
		if dk, err := url.QueryUnescape(k); err == nil && dk == name {
			return true
		}
	}
	return false
}

// queryParam looks up parameter name in target's query by its exact
// spelling, the way Envoy's query_parameters_to_remove finds what to
// remove. A name that only decodes to it (api%6bey) would stay in the
// upstream URL, and a repeated one could be read either way, so both make
// the result unclear. Nothing after '#' is query.
func queryParam(target, name string) queryValue {
	if i := strings.IndexByte(target, '#'); i >= 0 {
		target = target[:i]
	}
	q := strings.IndexByte(target, '?')
	if q < 0 {
		return queryValue{}
	}
	var out queryValue
	rest := target[q+1:]
	for rest != "" {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		if strings.IndexByte(pair, ';') >= 0 && namedAfterSemicolon(pair, name) {
			out.unclear = true // some servers split the query on ';' too
		}
		k, v, _ := strings.Cut(pair, "=")
		if k != name {
			if strings.ContainsAny(k, "%+") {
				if dk, err := url.QueryUnescape(k); err == nil && dk == name {
					out.unclear = true
				}
			}
			continue
		}
		if out.found {
			out.unclear = true
			continue
		}
		out.found = true
		out.value = v
		if strings.ContainsAny(v, "%+") {
			dv, err := url.QueryUnescape(v)
			if err != nil {
				dv = "" // present but undecodable: treated as a wrong key
			}
			out.value = dv
		}
	}
	return out
}
