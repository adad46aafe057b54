package keys

import (
	"crypto/sha256"
	"fmt"
	"strings"
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

	// Fingerprint digests the settings that shape what a verified token
	// proves (see Seal), so that a cached verdict outlives a config
	// change that leaves its issuer alone.
	Fingerprint [sha256.Size]byte
}

// Seal computes the issuer's Fingerprint from its settings; call it once
// they are final.
func (iss *Issuer) Seal() {
	var b strings.Builder
	field := func(s string) { fmt.Fprintf(&b, "%d:%s;", len(s), s) }
	field(iss.Issuer)
	field(fmt.Sprint(len(iss.Audiences)))
	for _, a := range iss.Audiences {
		field(a)
	}
	field(iss.Leeway.String())
	field(iss.ScopesClaim)
	field(iss.ClientIDClaim)
	field(fmt.Sprint(len(iss.ClaimHeaders)))
	for _, h := range iss.ClaimHeaders {
		field(h.Claim)
		field(h.Header)
	}
	iss.Fingerprint = sha256.Sum256([]byte(b.String()))
}

// ClaimHeader copies a claim into an upstream request header.
type ClaimHeader struct {
	Claim  string
	Header string // lower case
}

// AudienceOK reports whether the token's audiences intersect the issuer's
// (always true when the issuer lists none).
func (iss *Issuer) AudienceOK(aud []string) bool { return catalog.AudienceAllowed(iss.Audiences, aud) }
