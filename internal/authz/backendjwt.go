package authz

import (
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate/internal/model"
)

// BackendJWTIssuer is the iss claim of the tokens Tollgate signs for
// upstream services.
const BackendJWTIssuer = "tollgate"

const backendTokenSlots = 1 << 12

// backendToken is a signed backend JWT, reused for the same caller until
// half its lifetime has passed.
type backendToken struct {
	policy   *model.BackendJWTPolicy // the signer and lifetime it was made with
	token    string
	reuseEnd time.Time
}

// backendClaims describe the caller to the upstream service.
type backendClaims struct {
	jwt.RegisteredClaims
	Application     string `json:"application,omitempty"`
	ApplicationName string `json:"application_name,omitempty"`
	API             string `json:"api"`
	APIVersion      string `json:"api_version,omitempty"`
	Scope           string `json:"scope,omitempty"`
	CredentialType  string `json:"credential_type"`
}

// backendToken returns the backend JWT for this allowed request, from the
// cache or freshly signed. A signing failure is logged and the header left
// out; the upstream then refuses the request, which is the safe outcome.
func (e *Engine) backendToken(c *check, d *Decision, b *model.BackendJWTPolicy) string {
	appID, appName := "", ""
	if app := d.Identity.Application; app != nil {
		appID, appName = app.ID, app.Name
	}
	// The cache key hashes everything the claims say, so equal keys mean
	// equal tokens whichever snapshot made them; the policy says which
	// signer and lifetime did.
	key := keyOf(d.API.ID, d.API.Version, appID, appName, d.Identity.Subject, d.Identity.Credential, d.Identity.ScopeText)
	if t, ok := e.backendTokens.get(&key); ok && t.policy == b && c.now.Before(t.reuseEnd) {
		return t.token
	}
	claims := backendClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    BackendJWTIssuer,
			Subject:   d.Identity.Subject,
			Audience:  jwt.ClaimStrings{d.API.ID},
			IssuedAt:  jwt.NewNumericDate(c.now),
			ExpiresAt: jwt.NewNumericDate(c.now.Add(b.TTL)),
		},
		Application:     appID,
		ApplicationName: appName,
		API:             d.API.ID,
		APIVersion:      d.API.Version,
		Scope:           d.Identity.ScopeText,
		CredentialType:  d.Identity.Credential,
	}
	token, err := b.Signer.Sign(claims)
	if err != nil {
		e.log.Error("signing the backend JWT failed", "api", d.API.ID, "error", err.Error())
		return ""
	}
	e.backendTokens.put(&key, &backendToken{policy: b, token: token, reuseEnd: c.now.Add(b.TTL / 2)})
	return token
}
