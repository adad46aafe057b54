package catalog

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tollgate/tollgate/internal/policy"
	"github.com/tollgate/tollgate/internal/ratelimit"
)

// Scheme is one kind of credential an operation can require.
type Scheme uint8

const (
	SchemeNone Scheme = iota
	SchemeAPIKey
	SchemeJWT
	SchemeMTLS
)

var schemeNames = [...]string{SchemeNone: "none", SchemeAPIKey: "apiKey", SchemeJWT: "jwt", SchemeMTLS: "mtls"}

func (s Scheme) String() string { return schemeNames[s] }

// Requirement is a set of schemes that must all be satisfied ("mtls+apiKey").
type Requirement struct {
	Schemes []Scheme
	Name    string // as configured, e.g. "mtls+apiKey"; reported as the credential type
}

// Security is a list of alternative requirements, tried in order (the
// OpenAPI meaning of a security list).
type Security []Requirement

// ParseSecurity parses the config form: ["jwt", "mtls+apiKey", "none"].
func ParseSecurity(items []string) (Security, error) {
	if len(items) == 0 {
		return nil, fmt.Errorf("security must list at least one scheme")
	}
	sec := make(Security, 0, len(items))
	for _, item := range items {
		var req Requirement
		var names []string
		for _, name := range strings.Split(item, "+") {
			s, ok := parseScheme(strings.TrimSpace(name))
			if !ok {
				return nil, fmt.Errorf("%q: unknown scheme %q (want jwt, apiKey, mtls or none)", item, name)
			}
			for _, have := range req.Schemes {
				if have == s {
					return nil, fmt.Errorf("%q: scheme %s listed twice", item, s)
				}
			}
			req.Schemes = append(req.Schemes, s)
			names = append(names, s.String())
		}
		req.Name = strings.Join(names, "+")
		if len(req.Schemes) > 1 {
			for _, s := range req.Schemes {
				if s == SchemeNone {
					return nil, fmt.Errorf("%q: none cannot be combined with other schemes", item)
				}
			}
		}
		sec = append(sec, req)
	}
	return sec, nil
}

func parseScheme(name string) (Scheme, bool) {
	for i, n := range schemeNames {
		if n == name {
			return Scheme(i), true
		}
	}
	return 0, false
}

// Uses reports whether any alternative involves scheme s.
func (sec Security) Uses(s Scheme) bool {
	for _, req := range sec {
		for _, have := range req.Schemes {
			if have == s {
				return true
			}
		}
	}
	return false
}

// API is a managed API: a base path on some hosts, with operations.
type API struct {
	ID       string
	Name     string
	Version  string
	BasePath string
	Hosts    []string // lower case; "*", "*.example.com" or exact, each with an optional ":port"

	Security           Security
	ForwardCredentials bool
	APIKeyHeader       string // lower case; "" disables the header
	APIKeyQuery        string // "" disables the query parameter

	Operations []*Operation

	RateLimit          *ratelimit.Binding // shared by all callers; nil: none
	AnonymousRateLimit *ratelimit.Policy  // per client, for unauthenticated use
	// Held marks an API whose rate-limit policy has not arrived yet (a
	// partial set of resources from the control plane): every request to
	// it is refused until the policy is there.
	Held bool
	// Blocked marks an API its owner has blocked: every request matched
	// to it is refused, before any credential is read.
	Blocked bool

	// Audiences, if set, must intersect a token's aud (on top of its
	// issuer's audiences): a token minted for another API is refused.
	Audiences      []string
	MethodOverride MethodOverride

	// CORS is the API's cross-origin settings; nil: none.
	CORS *policy.CORS

	// Credentials the API accepts, removed before the upstream unless
	// ForwardCredentials is set. Filled in by New.
	CredentialHeaders []string
	CredentialQuery   []string
	// RemoveHeaders are the headers every allowed request of the API has
	// removed: its credentials (unless forwarded) and, unless the API
	// refuses them, the method-override headers. Filled in by New; shared,
	// so never appended to in place.
	RemoveHeaders []string

	hostPatterns []HostPattern // Hosts, parsed by New
}

// UsesScheme reports whether the API or any of its operations accepts s.
func (a *API) UsesScheme(s Scheme) bool {
	if a.Security.Uses(s) {
		return true
	}
	for _, op := range a.Operations {
		if op.Security.Uses(s) {
			return true
		}
	}
	return false
}

func (a *API) collectCredentials() {
	defer func() {
		a.RemoveHeaders = nil
		if !a.ForwardCredentials {
			a.RemoveHeaders = append(a.RemoveHeaders, a.CredentialHeaders...)
		}
		if a.MethodOverride == OverrideRemove {
			a.RemoveHeaders = append(a.RemoveHeaders, MethodOverrideHeaders...)
		}
		a.RemoveHeaders = a.RemoveHeaders[:len(a.RemoveHeaders):len(a.RemoveHeaders)]
	}()
	a.CredentialHeaders, a.CredentialQuery = nil, nil
	if a.UsesScheme(SchemeJWT) {
		a.CredentialHeaders = append(a.CredentialHeaders, "authorization")
	}
	if a.UsesScheme(SchemeAPIKey) {
		if a.APIKeyHeader != "" {
			a.CredentialHeaders = append(a.CredentialHeaders, a.APIKeyHeader)
		}
		if a.APIKeyQuery != "" {
			a.CredentialQuery = append(a.CredentialQuery, a.APIKeyQuery)
		}
	}
}

// MethodOverride says what happens to X-HTTP-Method-Override and its
// kin, which some frameworks obey: the request would run as another method
// than the one Tollgate authorized.
type MethodOverride uint8

const (
	OverrideRemove MethodOverride = iota // remove them from allowed requests
	OverrideDeny                         // refuse requests that carry them (400)
)

// MethodOverrideHeaders are the headers frameworks read a method from,
// lower case.
var MethodOverrideHeaders = []string{"x-http-method-override", "x-http-method", "x-method-override"}

// MethodOverrideQuery is the query parameter some frameworks read a POST's
// method from.
const MethodOverrideQuery = "_method"

// AudienceOK reports whether aud names one of the API's audiences (always
// true when it lists none).
func (a *API) AudienceOK(aud []string) bool { return AudienceAllowed(a.Audiences, aud) }

// AudienceAllowed reports whether a token's audiences aud name one of
// allowed; an empty allowed list accepts any.
func AudienceAllowed(allowed, aud []string) bool {
	if len(allowed) == 0 {
		return true
	}
	for _, want := range allowed {
		if slices.Contains(aud, want) {
			return true
		}
	}
	return false
}

// Operation is one path template with its methods.
type Operation struct {
	API      *API
	Path     string   // template relative to the API's base path, as configured
	Template Template // base path + Path
	Methods  []string // upper case; empty means every method
	Scopes   []string // as configured: entries of one or more space-separated scopes
	Security Security // the operation's own, else the API's

	RateLimit *ratelimit.Binding // for the operation, all callers together

	// Policies are the API's and the operation's own together; nil: none.
	Policies *policy.Set

	// Challenge is the WWW-Authenticate value of the operation's 401s: one
	// challenge per scheme it accepts. Filled in by New.
	Challenge string
	// ScopeSets is Scopes compiled: a credential must hold every scope of
	// one entry. Filled in by New, so that no operation with Scopes can be
	// without it.
	ScopeSets ScopeSets

	order int // place in the catalog, the last tie-breaker; set by New
}

// challenge builds the operation's WWW-Authenticate value. Mutual TLS has
// no HTTP authentication scheme of its own; "mTLS" names it for clients and
// operators.
func (op *Operation) challenge() string {
	a := op.API
	var parts []string
	if op.Security.Uses(SchemeJWT) {
		parts = append(parts, `Bearer realm="`+a.ID+`"`)
	}
	if op.Security.Uses(SchemeAPIKey) {
		switch {
		case a.APIKeyHeader != "":
			parts = append(parts, `APIKey realm="`+a.ID+`", header="`+a.APIKeyHeader+`"`)
		default:
			parts = append(parts, `APIKey realm="`+a.ID+`", query="`+a.APIKeyQuery+`"`)
		}
	}
	if op.Security.Uses(SchemeMTLS) {
		parts = append(parts, `mTLS realm="`+a.ID+`"`)
	}
	return strings.Join(parts, ", ")
}

// AllowsMethod reports whether the operation accepts method m. HEAD is
// accepted where GET is, as HTTP servers answer it.
func (op *Operation) AllowsMethod(m string) bool {
	return op.methodMatch(m) > 0
}

// methodMatch is 2 when the operation lists m (or every method), 1 when m is
// HEAD and the operation lists GET, 0 otherwise.
func (op *Operation) methodMatch(m string) int {
	if len(op.Methods) == 0 {
		return 2
	}
	viaGet := 0
	for _, have := range op.Methods {
		switch {
		case have == m:
			return 2
		case have == "GET" && m == "HEAD":
			viaGet = 1
		}
	}
	return viaGet
}

// hostScore ranks how specifically the API's hosts match h: 0 means no
// match.
// exactHosts returns the API's hosts when every one is an exact name
// (with or without a port), the ones an index can look up; else nil.
func (a *API) exactHosts() []hostKey {
	keys := make([]hostKey, 0, len(a.hostPatterns))
	for _, p := range a.hostPatterns {
		if p.any || p.wildcard {
			return nil
		}
		keys = append(keys, hostKey{p.name, p.port, p.hasPort})
	}
	return keys
}

func (a *API) hostScore(h host) int {
	best := 0
	for _, p := range a.hostPatterns {
		best = max(best, p.score(h))
	}
	return best
}

// SubscriptionState is the life-cycle state of a subscription.
type SubscriptionState uint8

const (
	StateActive SubscriptionState = iota
	StateBlocked
	StateOnHold
)

var stateNames = [...]string{StateActive: "active", StateBlocked: "blocked", StateOnHold: "onHold"}

func (s SubscriptionState) String() string { return stateNames[s] }

// ParseSubscriptionState parses active, blocked or onHold. There is no
// default: a state left out (a file caught half-written, say) must not
// make a blocked subscription active.
func ParseSubscriptionState(s string) (SubscriptionState, error) {
	for i, n := range stateNames {
		if n == s {
			return SubscriptionState(i), nil
		}
	}
	if s == "" {
		return 0, fmt.Errorf("required: active, blocked or onHold")
	}
	return 0, fmt.Errorf("unknown state %q (want active, blocked or onHold)", s)
}

// Application is a consumer: an end-user app or a mesh service.
type Application struct {
	ID    string
	Name  string
	Owner string

	RateLimit *ratelimit.Binding // across all APIs
}

// Subscription grants an application the use of an API. It names both
// by id (see Subscriptions).
type Subscription struct {
	AppID     string
	APIID     string
	State     SubscriptionState
	RateLimit *ratelimit.Binding
}

// Key is the subscription's place in a Subscriptions table.
func (s *Subscription) Key() SubscriptionKey { return SubscriptionKey{s.AppID, s.APIID} }
