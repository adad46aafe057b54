package catalog

import (
	"fmt"
	"strings"

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
	Hosts    []string // lower case; "*" or "*.example.com" or exact

	Security           Security
	ForwardCredentials bool
	APIKeyHeader       string // lower case; "" disables the header
	APIKeyQuery        string // "" disables the query parameter

	Operations []*Operation

	RateLimit          *ratelimit.Binding // shared by all callers; nil: none
	AnonymousRateLimit *ratelimit.Policy  // per client, for unauthenticated use

	// Credentials the API accepts, removed before the upstream unless
	// ForwardCredentials is set. Filled in by New.
	CredentialHeaders []string
	CredentialQuery   []string
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

// Operation is one path template with its methods.
type Operation struct {
	API      *API
	Path     string   // template relative to the API's base path, as configured
	Template Template // base path + Path
	Methods  []string // upper case; empty means every method
	Scopes   []string // any of them admits the request
	Security Security // the operation's own, else the API's

	RateLimit *ratelimit.Binding // for the operation, all callers together
}

// AllowsMethod reports whether the operation accepts method m.
func (op *Operation) AllowsMethod(m string) bool {
	if len(op.Methods) == 0 {
		return true
	}
	for _, have := range op.Methods {
		if have == m {
			return true
		}
	}
	return false
}

// hostScore ranks how specifically the API's hosts match host (already
// lower case, without port): 0 means no match.
func (a *API) hostScore(host string) int {
	best := 0
	for _, h := range a.Hosts {
		score := 0
		switch {
		case h == "*":
			score = 1
		case h[0] == '*':
			if len(host) > len(h)-1 && strings.HasSuffix(host, h[1:]) {
				score = 2 + len(h)
			}
		case h == host:
			score = 1 << 20
		}
		best = max(best, score)
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

// ParseSubscriptionState parses active, blocked or onHold ("" is active).
func ParseSubscriptionState(s string) (SubscriptionState, error) {
	if s == "" {
		return StateActive, nil
	}
	for i, n := range stateNames {
		if n == s {
			return SubscriptionState(i), nil
		}
	}
	return 0, fmt.Errorf("unknown state %q (want active, blocked or onHold)", s)
}

// Application is a consumer: an end-user app or a mesh service.
type Application struct {
	ID    string
	Name  string
	Owner string

	RateLimit *ratelimit.Binding // across all APIs

	subscriptions map[*API]*Subscription
}

// Subscription returns the application's subscription to api, or nil.
func (a *Application) Subscription(api *API) *Subscription {
	return a.subscriptions[api]
}

// Subscription grants an application the use of an API.
type Subscription struct {
	Application *Application
	API         *API
	State       SubscriptionState
	RateLimit   *ratelimit.Binding
}

// Subscribe records s on its application. It is called while a snapshot is
// compiled, before the snapshot is published, so no locking is needed.
func Subscribe(s *Subscription) {
	if s.Application.subscriptions == nil {
		s.Application.subscriptions = make(map[*API]*Subscription)
	}
	s.Application.subscriptions[s.API] = s
}
