package keys

import (
	"time"

	"github.com/tollgate/tollgate/internal/catalog"
)

// Issuer is a trusted issuer of access tokens, compiled from config.
type Issuer struct {
	Name      string // config name: labels metrics and logs
	Issuer    string // the iss claim value that selects this issuer
	Audiences []string
	Leeway    time.Duration

	ScopesClaim          string
	ClientIDClaim        string // falls back to client_id
	SubscriptionRequired bool
	ClaimHeaders         []ClaimHeader

	JWKS JWKSSpec
	// Keys is the running key source. It is bound (JWKSManager.Bind)
	// before the snapshot holding the issuer is published.
	Keys *JWKS
}

// ClaimHeader copies a claim into an upstream request header.
type ClaimHeader struct {
	Claim  string
	Header string // lower case
}

// AudienceOK reports whether the token's audiences intersect the issuer's
// (always true when the issuer lists none).
func (iss *Issuer) AudienceOK(aud []string) bool { return catalog.AudienceAllowed(iss.Audiences, aud) }
