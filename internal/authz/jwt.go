package authz

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate/internal/keys"
)

const (
	// maxTokenBytes bounds a bearer token; larger ones are refused before
	// any decoding. Real access tokens are a few kilobytes.
	maxTokenBytes = 16 << 10
	// negativeTTL is how long a refused token is remembered, so that a
	// client repeating a bad token costs no signature check.
	negativeTTL = 10 * time.Second
	// DefaultTokenCacheEntries bounds the verified-token cache unless
	// limits.tokenCacheEntries says otherwise.
	DefaultTokenCacheEntries = 1 << 14
)

// tokenParser decodes and verifies signatures. Claims are validated by
// Tollgate itself, per issuer (leeway, audiences) and with the engine's
// clock. Only asymmetric algorithms are valid: "none" and HMAC never are.
var tokenParser = jwt.NewParser(
	jwt.WithValidMethods(keys.SigningAlgorithms),
	jwt.WithoutClaimsValidation(),
	jwt.WithJSONNumber(),
)

var (
	errUntrustedIssuer = errors.New("untrusted issuer")
	errCritical        = errors.New("critical header parameters")
)

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
	tokenCritical     = invalidToken("The access token has critical header parameters (crit, b64) Tollgate does not implement.")
	tokenDuplicate    = invalidToken("The access token repeats a member of its header or claims.")
	tokenBadSubject   = invalidToken("The access token's subject holds characters that cannot be passed on.")
	tokenBadScope     = invalidToken("The access token's scopes are not space-separated scope tokens (RFC 6749).")
	tokenBadClaim     = invalidToken("A claim the issuer copies into a header holds characters that cannot be passed on.")
	tokenWrongAPI     = invalidToken("The access token is not intended for this API.")
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

// tokenVerdict is what the cache remembers about one token whose
// signature verified: what the token proves by itself (the identity, or
// why it was refused) and for how long that holds. Nothing in it points
// into the request or into a snapshot: it names its issuer by iss and by
// the fingerprint of the issuer's settings, so that it outlives a config
// change that leaves the issuer alone, and what depends on the rest of
// the config (revocations, which application a client id is) is looked
// up in the check's snapshot each time.
type tokenVerdict struct {
	iss       string            // the iss claim...
	issuerFP  [sha256.Size]byte // ...of an issuer with these settings
	keys      *keys.KeySet      // and this key set of it (nil if it had none yet)
	until     time.Time         // never past the token's exp; zero: not to be cached
	audiences []string          // the token's aud, for APIs that list audiences
	jti       string            // for revocations
	clientID  string            // for the application
	id        Identity          // without Application
	denial    *Denial
}

// jwtAuthenticator verifies bearer tokens from the Authorization header.
type jwtAuthenticator struct {
	cache *slotCache[*tokenVerdict]
	// verified counts full verifications (cache misses); tests read it.
	verified atomic.Int64
}

func newJWTAuthenticator(entries int) *jwtAuthenticator {
	return &jwtAuthenticator{cache: newSlotCache[*tokenVerdict](entries)}
}

// bearer returns the token of an "Authorization: Bearer" header.
func (*jwtAuthenticator) bearer(c *check) (string, bool) {
	if !c.bearerRead {
		c.bearerRead = true
		v, lines := c.req.Headers.Lookup("authorization")
		if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
			c.bearer = strings.TrimSpace(v[7:])
		}
		// Two Authorization lines: the upstream could read the other one.
		c.bearerUnclear = lines > 1 && c.bearer != ""
	}
	return c.bearer, c.bearer != ""
}

func (a *jwtAuthenticator) present(c *check) bool {
	_, ok := a.bearer(c)
	return ok
}

func (a *jwtAuthenticator) verify(c *check) (Identity, *Denial) {
	token, _ := a.bearer(c)
	if c.bearerUnclear {
		return Identity{}, unreadable("The request carries the Authorization header more than once.")
	}
	if len(token) > maxTokenBytes {
		return Identity{}, &tokenTooLarge
	}
	key := keyOf(token)
	v, ok := a.cache.get(&key)
	var issuer *keys.Issuer
	if ok {
		issuer, ok = v.valid(c)
	}
	if !ok {
		if v, issuer = a.verifyToken(c, token); !v.until.IsZero() {
			a.cache.put(&key, v)
		}
	}
	if v.denial != nil {
		return Identity{}, v.denial
	}
	if !c.api.AudienceOK(v.audiences) {
		return Identity{}, &tokenWrongAPI
	}
	if v.jti != "" {
		if _, revoked := c.snap.Revoked[v.jti]; revoked {
			return Identity{}, &tokenRevoked
		}
	}
	id := v.id
	id.Application = c.snap.ClientIDs[v.clientID]
	if id.Application == nil && issuer.SubscriptionRequired {
		return Identity{}, &tokenUnknownApp
	}
	return id, nil
}

// valid reports whether a cached verdict still applies to this check, and
// returns the check's issuer of the token.
func (v *tokenVerdict) valid(c *check) (*keys.Issuer, bool) {
	if !c.now.Before(v.until) {
		return nil, false
	}
	issuer := c.snap.Issuers[v.iss]
	if issuer == nil || issuer.Fingerprint != v.issuerFP || issuer.Keys.Current() != v.keys {
		return nil, false
	}
	return issuer, true
}

// verifyToken does the full verification of a token not in the cache.
// Only a token whose signature verified gets a verdict that may be cached
// (until is set): anything refused before that is cheap to refuse again,
// and remembering it would let a flood of junk evict the tokens that are
// in use. It also returns the token's issuer, nil when none was found.
func (a *jwtAuthenticator) verifyToken(c *check, token string) (v *tokenVerdict, issuer *keys.Issuer) {
	a.verified.Add(1)
	v = &tokenVerdict{}
	refuse := func(d *Denial) (*tokenVerdict, *keys.Issuer) {
		v.denial, v.until = d, time.Time{}
		return v, issuer
	}
	if dup, err := repeatsMember(token); err != nil {
		return refuse(&tokenMalformed)
	} else if dup {
		return refuse(&tokenDuplicate)
	}

	claims := jwt.MapClaims{}
	_, err := tokenParser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		// RFC 7515 §4.1.11: a crit parameter Tollgate does not implement
		// (it implements none) makes the token invalid; b64 (RFC 7797)
		// would change what the signature covers.
		if _, ok := t.Header["crit"]; ok {
			return nil, errCritical
		}
		if b64, ok := t.Header["b64"]; ok && b64 != true {
			return nil, errCritical
		}
		iss, _ := t.Claims.GetIssuer()
		if issuer = c.snap.Issuers[iss]; issuer == nil {
			return nil, errUntrustedIssuer
		}
		v.iss, v.issuerFP = iss, issuer.Fingerprint
		kid, _ := t.Header["kid"].(string)
		key, set, err := issuer.Keys.Key(c.ctx, kid, t.Method.Alg())
		v.keys = set
		if err != nil {
			return nil, err
		}
		return key.Key, nil
	})
	switch {
	case err == nil:
	case errors.Is(err, errCritical):
		return refuse(&tokenCritical)
	case errors.Is(err, errUntrustedIssuer):
		return refuse(&tokenBadIssuer)
	case errors.Is(err, keys.ErrUnknownKey):
		return refuse(&tokenUnknownKey)
	case errors.Is(err, keys.ErrKeyMismatch):
		return refuse(&tokenKeyMismatch)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return refuse(&tokenBadSignature)
	default: // malformed, undecodable, wrong types
		return refuse(&tokenMalformed)
	}

	// The signature verified: from here on a refusal is remembered, until
	// the token expires (or for negativeTTL where it has no usable exp).
	remember := func(d *Denial, until time.Time) (*tokenVerdict, *keys.Issuer) {
		v.denial, v.until = d, until
		return v, issuer
	}
	soon := c.now.Add(negativeTTL)
	iss := issuer
	for _, name := range [...]string{"exp", "nbf", "iat"} {
		if !timeClaimOK(claims[name]) {
			return remember(&tokenMalformed, soon)
		}
	}
	exp, err := claims.GetExpirationTime()
	if err != nil {
		return remember(&tokenMalformed, soon)
	}
	if exp == nil {
		return remember(&tokenNoExpiry, soon)
	}
	if !c.now.Before(exp.Add(iss.Leeway)) {
		return remember(&tokenExpired, soon)
	}
	// nbf and iat refusals are not cached: the token becomes valid soon.
	if nbf, err := claims.GetNotBefore(); err != nil {
		return remember(&tokenMalformed, soon)
	} else if nbf != nil && c.now.Add(iss.Leeway).Before(nbf.Time) {
		return refuse(&tokenNotYetValid)
	}
	if iat, err := claims.GetIssuedAt(); err != nil {
		return remember(&tokenMalformed, soon)
	} else if iat != nil && c.now.Add(iss.Leeway).Before(iat.Time) {
		return refuse(&tokenFromFuture)
	}
	aud, err := claims.GetAudience()
	if err != nil {
		return remember(&tokenMalformed, soon)
	}
	// Cache the outcome until the token expires (never past exp).
	until := exp.Time
	if !iss.AudienceOK(aud) {
		return remember(&tokenWrongAud, until)
	}
	// Revocation and the application are the config's to say, at each
	// check (verify).
	v.jti, _ = claims["jti"].(string)

	// Everything that becomes a header must be safe as one: a token is
	// refused rather than have its claims edited.
	sub, _ := claims.GetSubject()
	if !safeHeaderValue(sub) {
		return remember(&tokenBadSubject, until)
	}
	scopes, ok := claimScopes(claims[iss.ScopesClaim])
	if !ok {
		return remember(&tokenBadScope, until)
	}
	headers, ok := claimHeaders(claims, iss.ClaimHeaders)
	if !ok {
		return remember(&tokenBadClaim, until)
	}
	v.clientID = claimString(claims, iss.ClientIDClaim)
	if v.clientID == "" {
		v.clientID = claimString(claims, "client_id")
	}
	v.audiences = aud
	v.id = Identity{
		Subject:      sub,
		Scopes:       scopes,
		ScopeText:    strings.Join(scopes, " "),
		ClaimHeaders: headers,
		Claims:       ruleClaims(claims),
	}
	v.until = until
	return v, issuer
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
// "scope") or as an array of strings ("scp"). ok is false when the claim
// holds anything but scope-tokens (RFC 6749 §3.3): only a single space
// separates, so "a\u00a0pets:write" is not "a" and "pets:write".
func claimScopes(v any) (scopes []string, ok bool) {
	switch s := v.(type) {
	case nil:
		return nil, true
	case string:
		return keys.ParseScopes(s)
	case []any:
		out := make([]string, 0, len(s))
		for _, item := range s {
			str, isString := item.(string)
			if !isString || !keys.ValidScope(str) {
				return nil, false
			}
			out = append(out, str)
		}
		return out, true
	}
	return nil, false
}

// claimHeaders renders the configured claims as upstream headers. Strings,
// numbers and booleans are copied; arrays of them are joined by commas;
// objects, and values over 4 KiB, are left out. ok is false when a value
// holds characters no header may carry (control characters, CR, LF, NUL).
func claimHeaders(claims jwt.MapClaims, wanted []keys.ClaimHeader) (out []Header, ok bool) {
	for _, ch := range wanted {
		value, present := headerValue(claims[ch.Claim])
		if !present {
			continue
		}
		if len(value) > maxHeaderValueBytes {
			continue
		}
		if !safeHeaderValue(value) {
			return nil, false
		}
		out = append(out, Header{Name: ch.Header, Value: value})
	}
	return out, true
}

// headerValue renders a claim as text; present is false for what has no
// text form (absent, null, objects, or arrays holding them).
func headerValue(v any) (s string, present bool) {
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
	return s, s != ""
}

// ruleClaims converts a token's claims for the CEL rules, once per token
// verified: JSON numbers become int64 when whole, float64 otherwise.
func ruleClaims(claims jwt.MapClaims) map[string]any {
	out := make(map[string]any, len(claims))
	for k, v := range claims {
		out[k] = ruleValue(v)
	}
	return out
}

func ruleValue(v any) any {
	switch v := v.(type) {
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n
		}
		f, _ := v.Float64()
		return f
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = ruleValue(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = ruleValue(e)
		}
		return out
	}
	return v
}
