package authz

import (
	"net/http"
	"net/netip"
	"net/url"
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
// own data (header maps, strings) rather than copying it.
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
// Repeated headers arrive joined by Envoy; the HTTP front end returns the
// first value.
func (hs Headers) Get(name string) string {
	if hs.h != nil {
		return hs.h.Get(name)
	}
	if hs.lastWins {
		for i := len(hs.fields) - 1; i >= 0; i-- {
			if hs.fields[i].name == name {
				return hs.fields[i].value
			}
		}
		return ""
	}
	for _, f := range hs.fields {
		if f.name == name {
			return f.value
		}
	}
	return ""
}

// appendReserved appends the names of client-sent headers that only
// Tollgate may set upstream, lower case, unless the decision sets them
// itself: x-consumer-*, x-authenticated-*, x-credential-type, and the
// config's claim and backend JWT headers (extra).
func (hs Headers) appendReserved(dst []string, d *Decision, extra map[string]bool) []string {
	consider := func(name string, isLower bool) {
		reserved := isReservedHeader(name)
		if !reserved && len(extra) == 0 {
			return
		}
		if !isLower {
			name = strings.ToLower(name)
		}
		if (reserved || extra[name]) && !d.sets(name) {
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

// queryParam returns the value of the first query parameter called name
// in target, decoded, and whether it was present.
func queryParam(target, name string) (string, bool) {
	q := strings.IndexByte(target, '?')
	if q < 0 {
		return "", false
	}
	rest := target[q+1:]
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		rest = rest[:i]
	}
	for rest != "" {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		k, v, _ := strings.Cut(pair, "=")
		if strings.ContainsAny(k, "%+") {
			dk, err := url.QueryUnescape(k)
			if err != nil {
				continue
			}
			k = dk
		}
		if k != name {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			dv, err := url.QueryUnescape(v)
			if err != nil {
				return "", true // present but undecodable: treated as a wrong key
			}
			v = dv
		}
		return v, true
	}
	return "", false
}
