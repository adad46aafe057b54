package authz

import (
	"net/netip"

	"github.com/tollgate/tollgate/internal/catalog"
	"github.com/tollgate/tollgate/internal/keys"
	"github.com/tollgate/tollgate/internal/policy"
)

// Identity is who the caller turned out to be.
type Identity struct {
	Application *catalog.Application // nil: anonymous
	Subject     string               // user, owner or workload the credential speaks for
	Scopes      []string
	ScopeText   string     // Scopes joined by spaces
	Credential  string     // requirement that identified the caller: "apiKey", "mtls+apiKey", "none"
	KeyName     string     // which API key, for analytics (never the key)
	KeyID       keys.KeyID // the API key's id, for keys that have one
	Principal   string     // the workload identity (SPIFFE ID) that called, if known
	// ClaimHeaders are token claims the issuer copies upstream.
	ClaimHeaders []Header
	// Claims are a JWT's claims, for the rules (numbers as int64 or
	// float64); nil for other credentials.
	Claims map[string]any
}

// Header is one header to set upstream.
type Header struct {
	Name, Value string // name in lower case
}

// Names of the identity headers Tollgate sets upstream (README, "The
// decision", step 5).
const (
	HeaderConsumerID     = "x-consumer-id"
	HeaderConsumerName   = "x-consumer-name"
	HeaderUserID         = "x-authenticated-userid"
	HeaderScope          = "x-authenticated-scope"
	HeaderCredentialType = "x-credential-type"
)

// identityHeaders holds the values of the identity headers; an empty value
// means the header is not set (and a client-sent copy is removed).
type identityHeaders [5]string

var identityHeaderNames = [5]string{HeaderConsumerID, HeaderConsumerName, HeaderUserID, HeaderScope, HeaderCredentialType}

// identityHeader reports whether name (lower case) is one of the five.
func identityHeader(name string) bool {
	for _, n := range identityHeaderNames {
		if n == name {
			return true
		}
	}
	return false
}

func (h *identityHeaders) sets(name string) bool {
	for i, n := range identityHeaderNames {
		if n == name {
			return h[i] != ""
		}
	}
	return false
}

// Each calls fn for every identity header that is set.
func (h *identityHeaders) Each(fn func(name, value string)) {
	for i, v := range h {
		if v != "" {
			fn(identityHeaderNames[i], v)
		}
	}
}

func headersFor(id *Identity) identityHeaders {
	var h identityHeaders
	if app := id.Application; app != nil {
		h[0], h[1] = app.ID, app.Name
	}
	h[2], h[3] = id.Subject, id.ScopeText
	if id.Credential != "none" {
		h[4] = id.Credential
	}
	return h
}

// Decision is the outcome of one check, independent of the front end that
// will render it.
type Decision struct {
	Allowed bool
	Denial  Denial // when !Allowed

	ClientIP  netip.Addr         // as resolved (clientIp policy); for analytics
	Path      string             // the path as matched ("" when it could not be read)
	API       *catalog.API       // nil when nothing matched
	Operation *catalog.Operation // nil when nothing matched
	Identity  Identity

	// Changes to the upstream request, when allowed.
	Upstream      identityHeaders
	Extra         []Header // claim headers, the backend JWT
	RemoveHeaders []string // lower case
	RemoveQuery   []string

	// RateLimit is the tightest limit that applied (Limit 0: none), sent
	// to the client on allow and on a 429.
	RateLimit RateLimitHeaders

	// Mutation is what the request policies change upstream, when
	// allowed. Its header removals are its own (the front ends send them
	// beside RemoveHeaders), its query removals are in RemoveQuery too,
	// and no header it sets is in RemoveHeaders.
	Mutation policy.Upstream
	// ResponseHeaders are for the client's response: the response
	// policies' and the CORS headers, when allowed.
	ResponseHeaders []policy.ResponseHeader
	// Policies name the policies the request ran, for analytics.
	Policies []string
}

// Code is the deny code, or "" for an allow.
func (d *Decision) Code() string {
	if d.Allowed {
		return ""
	}
	return d.Denial.Code
}

// LogPath is the path to show for r in logs and analytics: as matched, or,
// when it could not be read, as sent without its query (which may hold
// credentials).
func (d *Decision) LogPath(r *Request) string {
	if d.Path != "" {
		return d.Path
	}
	return catalog.NormalizePath(r.Target)
}

// APIID is the matched API's id, or "".
func (d *Decision) APIID() string {
	if d.API == nil {
		return ""
	}
	return d.API.ID
}

// OperationPath is the matched operation's template, or "".
func (d *Decision) OperationPath() string {
	if d.Operation == nil {
		return ""
	}
	return d.Operation.Path
}

// UpstreamHeaders calls fn for each header to set on the upstream request.
func (d *Decision) UpstreamHeaders(fn func(name, value string)) {
	d.Upstream.Each(fn)
	for _, h := range d.Extra {
		fn(h.Name, h.Value)
	}
}

// sets reports whether the decision sets header name (lower case) upstream.
func (d *Decision) sets(name string) bool {
	if d.Upstream.sets(name) {
		return true
	}
	for _, h := range d.Extra {
		if h.Name == name {
			return true
		}
	}
	return false
}
