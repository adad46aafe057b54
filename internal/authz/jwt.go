package authz

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/keys"
)

const (
	// maxTokenBytes bounds a bearer token; larger ones are refused before
	// any decoding. Real access tokens are a few kilobytes.
	maxTokenBytes = 16 << 10
	// negativeTTL is how long a refused token is remembered, so that a
	// client repeating a bad token costs no signature check.
	negativeTTL = 10 * time.Second
	// tokenCacheSlots bounds the verified-token cache.
	tokenCacheSlots = 1 << 14
	// maxClaimHeaderBytes bounds a claim copied into a header.
	maxClaimHeaderBytes = 4 << 10
)

// tokenParser decodes and verifies signatures. Claims are validated by
// Tollgate itself, per issuer (leeway, audiences) and with the engine's
// clock. Only asymmetric algorithms are valid: "none" and HMAC never are.
var tokenParser = jwt.NewParser(
	jwt.WithValidMethods(keys.SigningAlgorithms),
	jwt.WithoutClaimsValidation(),
	jwt.WithJSONNumber(),
)

var errUntrustedIssuer = errors.New("untrusted issuer")

// Why a token is refused: 401/900901 with a precise description.
var (
	tokenTooLarge     = invalidToken("The access token is too large.")
	tokenMalformed    = invalidToken("The access token is malformed.")
	tokenBadSignature = invalidToken("The access token signature is invalid.")
	tokenBadIssuer    = invalidToken("The access token issuer is not trusted.")
	tokenUnknownKey   = invalidToken("The access token was signed with an unknown key.")
	tokenKeyMismatch  = invalidToken("The access token algorithm does not match its key.")
	tokenNoExpiry     = invalidToken("The access token has no expiry (exp).")
	tokenExpired      = invalidToken("The access token has expired.")
	tokenNotYetValid  = invalidToken("The access token is not valid yet (nbf).")
	tokenFromFuture   = invalidToken("The access token was issued in the future (iat).")
	tokenWrongAud     = invalidToken("The access token is not intended for this audience.")
	tokenRevoked      = invalidToken("The access token has been revoked.")
	tokenUnknownApp   = func() Denial {
		d := denyForbidden
		d.Description = "The access token's client is not a known application."
		return d
	}()
)

func invalidToken(desc string) Denial {
	d := denyInvalidCredentials
	d.Description = desc
	d.Challenge = `Bearer error="invalid_token"`
	return d
}

// tokenVerdict is what the cache remembers about one token: the identity
// it proved, or why it was refused, and for how long that holds.
type tokenVerdict struct {
	snap   *config.Snapshot // the verdict was reached under this config...
	issuer *keys.Issuer     // ...and, when an issuer was found,
	keys   *keys.KeySet     // with this key set of it (nil if it had none yet)
	until  time.Time        // never past the token's exp
	id     Identity
	denial *Denial
}

// jwtAuthenticator verifies bearer tokens from the Authorization header.
type jwtAuthenticator struct {
	cache *slotCache[*tokenVerdict]
	// verified counts full verifications (cache misses); tests read it.
	verified atomic.Int64
}

func newJWTAuthenticator() *jwtAuthenticator {
	return &jwtAuthenticator{cache: newSlotCache[*tokenVerdict](tokenCacheSlots)}
}

// bearer returns the token of an "Authorization: Bearer" header.
func (*jwtAuthenticator) bearer(c *check) (string, bool) {
	if !c.bearerRead {
		c.bearerRead = true
		v := c.req.Headers.Get("authorization")
		if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
			c.bearer = strings.TrimSpace(v[7:])
		}
	}
	return c.bearer, c.bearer != ""
}

func (a *jwtAuthenticator) present(c *check) bool {
	_, ok := a.bearer(c)
	return ok
}

func (a *jwtAuthenticator) verify(c *check) (Identity, *Denial) {
	token, _ := a.bearer(c)
	if len(token) > maxTokenBytes {
		return Identity{}, &tokenTooLarge
	}
	h := a.cache.hash(token)
	if v, ok := a.cache.get(h, token); ok && v.valid(c) {
		return v.id, v.denial
	}
	v := a.verifyToken(c, token)
	if !v.until.IsZero() {
		a.cache.put(h, token, v)
	}
	return v.id, v.denial
}

// valid reports whether a cached verdict still applies to this check.
func (v *tokenVerdict) valid(c *check) bool {
	if v.snap != c.snap || !c.now.Before(v.until) {
		return false
	}
	return v.issuer == nil || v.issuer.Keys.Current() == v.keys
}

// verifyToken does the full verification of a token not in the cache.
// The verdict's until is zero when it must not be cached.
func (a *jwtAuthenticator) verifyToken(c *check, token string) *tokenVerdict {
	a.verified.Add(1)
	v := &tokenVerdict{snap: c.snap}
	refuse := func(d *Denial, ttl time.Duration) *tokenVerdict {
		v.denial = d
		if ttl > 0 {
			v.until = c.now.Add(ttl)
		}
		return v
	}

	claims := jwt.MapClaims{}
	_, err := tokenParser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		iss, _ := t.Claims.GetIssuer()
		v.issuer = c.snap.Issuers[iss]
		if v.issuer == nil {
			return nil, errUntrustedIssuer
		}
		kid, _ := t.Header["kid"].(string)
		key, set, err := v.issuer.Keys.Key(c.ctx, kid, t.Method.Alg())
		v.keys = set
		if err != nil {
			return nil, err
		}
		return key.Key, nil
	})
	switch {
	case err == nil:
	case errors.Is(err, errUntrustedIssuer):
		return refuse(&tokenBadIssuer, negativeTTL)
	case errors.Is(err, keys.ErrUnknownKey):
		return refuse(&tokenUnknownKey, negativeTTL)
	case errors.Is(err, keys.ErrKeyMismatch):
		return refuse(&tokenKeyMismatch, negativeTTL)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return refuse(&tokenBadSignature, negativeTTL)
	default: // malformed, undecodable, wrong types
		return refuse(&tokenMalformed, negativeTTL)
	}

	iss := v.issuer
	for _, name := range [...]string{"exp", "nbf", "iat"} {
		if !timeClaimOK(claims[name]) {
			return refuse(&tokenMalformed, negativeTTL)
		}
	}
	exp, err := claims.GetExpirationTime()
	if err != nil {
		return refuse(&tokenMalformed, negativeTTL)
	}
	if exp == nil {
		return refuse(&tokenNoExpiry, negativeTTL)
	}
	if !c.now.Before(exp.Add(iss.Leeway)) {
		return refuse(&tokenExpired, negativeTTL)
	}
	// nbf and iat refusals are not cached: the token becomes valid soon.
	if nbf, err := claims.GetNotBefore(); err != nil {
		return refuse(&tokenMalformed, negativeTTL)
	} else if nbf != nil && c.now.Add(iss.Leeway).Before(nbf.Time) {
		return refuse(&tokenNotYetValid, 0)
	}
	if iat, err := claims.GetIssuedAt(); err != nil {
		return refuse(&tokenMalformed, negativeTTL)
	} else if iat != nil && c.now.Add(iss.Leeway).Before(iat.Time) {
		return refuse(&tokenFromFuture, 0)
	}
	aud, err := claims.GetAudience()
	if err != nil {
		return refuse(&tokenMalformed, negativeTTL)
	}
	// Cache the outcome until the token expires (never past exp).
	until := exp.Time
	if !iss.AudienceOK(aud) {
		return refuse(&tokenWrongAud, until.Sub(c.now))
	}
	if jti, _ := claims["jti"].(string); jti != "" {
		if _, revoked := c.snap.Revoked[jti]; revoked {
			return refuse(&tokenRevoked, until.Sub(c.now))
		}
	}

	sub, _ := claims.GetSubject()
	clientID := claimString(claims, iss.ClientIDClaim)
	if clientID == "" {
		clientID = claimString(claims, "client_id")
	}
	app := c.snap.ClientIDs[clientID]
	if app == nil && iss.SubscriptionRequired {
		return refuse(&tokenUnknownApp, until.Sub(c.now))
	}
	scopes := claimScopes(claims[iss.ScopesClaim])
	v.id = Identity{
		Application:  app,
		Subject:      sub,
		Scopes:       scopes,
		ScopeText:    strings.Join(scopes, " "),
		ClaimHeaders: claimHeaders(claims, iss.ClaimHeaders),
	}
	v.until = until
	return v
}

// maxTimeClaim is the largest NumericDate accepted (year 5138): larger
// values are not dates, and would overflow time arithmetic.
const maxTimeClaim = 1e11

// timeClaimOK reports whether a time claim is absent or a number of
// seconds in [0, maxTimeClaim].
func timeClaimOK(v any) bool {
	if v == nil {
		return true
	}
	n, ok := v.(json.Number)
	if !ok {
		return false
	}
	f, err := strconv.ParseFloat(string(n), 64)
	return err == nil && f >= 0 && f <= maxTimeClaim
}

// claimString returns a string claim, or "".
func claimString(claims jwt.MapClaims, name string) string {
	s, _ := claims[name].(string)
	return s
}

// claimScopes reads scopes written as one space-separated string (OAuth
// "scope") or as an array of strings ("scp").
func claimScopes(v any) []string {
	switch s := v.(type) {
	case string:
		return strings.Fields(s)
	case []any:
		out := make([]string, 0, len(s))
		for _, item := range s {
			if str, ok := item.(string); ok && str != "" && !strings.ContainsAny(str, " \t") {
				out = append(out, str)
			}
		}
		return out
	}
	return nil
}

// claimHeaders renders the configured claims as upstream headers. Strings,
// numbers and booleans are copied; arrays of them are joined by commas;
// anything else, or anything unsafe in a header, is left out.
func claimHeaders(claims jwt.MapClaims, wanted []keys.ClaimHeader) []Header {
	var out []Header
	for _, ch := range wanted {
		if value, ok := headerValue(claims[ch.Claim]); ok {
			out = append(out, Header{Name: ch.Header, Value: value})
		}
	}
	return out
}

func headerValue(v any) (string, bool) {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case json.Number:
		s = x.String()
	case bool:
		s = strconv.FormatBool(x)
	case []any:
		parts := make([]string, 0, len(x))
		for _, item := range x {
			p, ok := headerValue(item)
			if !ok {
				return "", false
			}
			parts = append(parts, p)
		}
		s = strings.Join(parts, ",")
	default:
		return "", false
	}
	if s == "" || len(s) > maxClaimHeaderBytes || !utf8.ValidString(s) {
		return "", false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return "", false
		}
	}
	return s, true
}
