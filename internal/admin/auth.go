package admin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/keys"
)

// Caller is who sent a request, and with what role.
type Caller struct {
	Name string // a token's name or a JWT's subject: the owner of what a developer creates
	Role string
}

func (c Caller) admin() bool     { return c.Role == config.RoleAdmin }
func (c Caller) publisher() bool { return c.Role == config.RoleAdmin || c.Role == config.RolePublisher }
func (c Caller) developer() bool { return c.Role == config.RoleDeveloper }

// Authenticator checks bearer tokens: static ones by their SHA-256, JWTs
// against the configured issuer's keys.
type Authenticator struct {
	tokens map[[sha256.Size]byte]config.AdminToken
	issuer *keys.Issuer
	cfg    *config.AdminIssuer
	leeway time.Duration
	parser *jwt.Parser
}

// maxTokenBytes bounds a bearer token before any work is done on it.
const maxTokenBytes = 8 << 10

// NewAuthenticator starts the issuer's key source (if any), which runs
// until ctx is done.
func NewAuthenticator(ctx context.Context, cfg config.AdminAuth, log *slog.Logger) (*Authenticator, error) {
	a := &Authenticator{tokens: map[[sha256.Size]byte]config.AdminToken{}}
	for _, t := range cfg.Tokens {
		b, err := hex.DecodeString(t.SHA256)
		if err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("auth token %q: want the hex SHA-256 of the token", t.Name)
		}
		a.tokens[[sha256.Size]byte(b)] = t
	}
	if is := cfg.Issuer; is != nil {
		leeway, err := time.ParseDuration(is.Leeway)
		if err != nil {
			return nil, fmt.Errorf("auth.issuer.leeway: %w", err)
		}
		a.cfg, a.leeway = is, leeway
		a.issuer = &keys.Issuer{Name: "admin", Issuer: is.Issuer, Audiences: is.Audiences, Leeway: leeway,
			JWKS: keys.JWKSSpec{Issuer: "admin", URI: is.JwksURI, File: is.JwksFile, CAFile: is.JwksCAFile,
				RefreshInterval: 5 * time.Minute, MinRefreshInterval: 30 * time.Second}}
		if err := keys.NewJWKSManager(ctx, log, nil).Bind([]*keys.Issuer{a.issuer}); err != nil {
			return nil, fmt.Errorf("auth.issuer: %w", err)
		}
		a.parser = jwt.NewParser(jwt.WithValidMethods(keys.SigningAlgorithms), jwt.WithIssuer(is.Issuer),
			jwt.WithExpirationRequired(), jwt.WithLeeway(leeway), jwt.WithIssuedAt())
	}
	return a, nil
}

var errUnauthenticated = &Error{Status: http.StatusUnauthorized, Code: CodeUnauthenticated,
	Message: "send Authorization: Bearer with a token of this control plane or of its issuer"}

// Authenticate identifies the caller of a request.
func (a *Authenticator) Authenticate(r *http.Request) (Caller, *Error) {
	h := r.Header.Values("Authorization")
	if len(h) != 1 {
		return Caller{}, errUnauthenticated
	}
	scheme, token, ok := strings.Cut(h[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || len(token) > maxTokenBytes {
		return Caller{}, errUnauthenticated
	}
	if t, ok := a.tokens[sha256.Sum256([]byte(token))]; ok {
		return Caller{Name: t.Name, Role: t.Role}, nil
	}
	if a.parser == nil || strings.Count(token, ".") != 2 {
		return Caller{}, errUnauthenticated
	}
	c, err := a.verify(r.Context(), token)
	if err != nil {
		return Caller{}, &Error{Status: http.StatusUnauthorized, Code: CodeUnauthenticated, Message: "token not accepted: " + err.Error()}
	}
	return c, nil
}

func (a *Authenticator) verify(ctx context.Context, token string) (Caller, error) {
	claims := jwt.MapClaims{}
	_, err := a.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		alg, _ := t.Header["alg"].(string)
		k, _, err := a.issuer.Keys.Key(ctx, kid, alg)
		if err != nil {
			return nil, err
		}
		return k.Key, nil
	})
	if err != nil {
		return Caller{}, errors.New("signature, issuer or lifetime invalid")
	}
	aud, _ := claims.GetAudience()
	if !a.issuer.AudienceOK(aud) {
		return Caller{}, errors.New("audience not accepted")
	}
	sub, _ := claims[a.cfg.SubjectClaim].(string)
	if !ValidOwner(sub) {
		return Caller{}, fmt.Errorf("claim %s must name the caller", a.cfg.SubjectClaim)
	}
	role := HighestRole(claims[a.cfg.RolesClaim])
	if role == "" {
		return Caller{}, fmt.Errorf("claim %s names no role of this API (admin, publisher, developer)", a.cfg.RolesClaim)
	}
	return Caller{Name: sub, Role: role}, nil
}

// HighestRole reads a roles claim (a string, space-separated, or an
// array) and keeps the strongest role it names.
func HighestRole(v any) string {
	var names []string
	switch x := v.(type) {
	case string:
		names = strings.Fields(x)
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok {
				names = append(names, s)
			}
		}
	}
	for _, r := range []string{config.RoleAdmin, config.RolePublisher, config.RoleDeveloper} {
		if slices.Contains(names, r) {
			return r
		}
	}
	return ""
}

// ValidOwner accepts a caller name that is safe to store and show:
// printable ASCII without spaces, at most 256 bytes.
func ValidOwner(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
