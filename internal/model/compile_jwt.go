package model

import (
	"cmp"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/keys"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// Defaults and bounds of the JWT settings.
const (
	defaultLeeway        = 30 * time.Second
	maxLeeway            = 5 * time.Minute
	defaultScopesClaim   = "scope"
	defaultClientIDClaim = "azp"
	minJWKSRefresh       = 10 * time.Second
	minJWKSMinRefresh    = time.Second
)

func (c *compiler) issuers(in []*tollgatev1.Issuer, snap *Snapshot) {
	snap.Issuers = map[string]*keys.Issuer{}
	names := map[string]bool{}
	for i, is := range in {
		is = orEmpty(is)
		path := fmt.Sprintf("issuers[%d]", i)
		if c.ID(path+".name", is.GetName()) {
			if names[is.GetName()] {
				c.Addf(path+".name", "duplicate issuer name %q", is.GetName())
			}
			names[is.GetName()] = true
		}
		switch {
		case is.GetIssuer() == "":
			c.Addf(path+".issuer", "required: the iss claim value of this issuer's tokens")
		case snap.Issuers[is.GetIssuer()] != nil:
			c.Addf(path+".issuer", "issuer %q is already configured", is.GetIssuer())
		}
		iss := &keys.Issuer{
			Name:                 is.GetName(),
			Issuer:               is.GetIssuer(),
			Audiences:            is.GetAudiences(),
			Leeway:               defaultLeeway,
			ScopesClaim:          cmp.Or(is.GetScopesClaim(), defaultScopesClaim),
			ClientIDClaim:        cmp.Or(is.GetClientIdClaim(), defaultClientIDClaim),
			SubscriptionRequired: is.SubscriptionRequired == nil || is.GetSubscriptionRequired(),
			JWKS: keys.JWKSSpec{
				Issuer:             is.GetName(),
				RefreshInterval:    cmp.Or(is.GetJwksRefreshInterval().AsDuration(), keys.DefaultJWKSRefreshInterval),
				MinRefreshInterval: cmp.Or(is.GetJwksMinRefreshInterval().AsDuration(), keys.DefaultJWKSMinRefreshInterval),
			},
		}
		if d := is.GetLeeway().AsDuration(); d != 0 {
			iss.Leeway = d
		}
		if iss.Leeway > maxLeeway {
			c.Addf(path+".leeway", "at most %v", maxLeeway)
		}
		if iss.JWKS.RefreshInterval < minJWKSRefresh {
			c.Addf(path+".jwksRefreshInterval", "at least %v", minJWKSRefresh)
		}
		if iss.JWKS.MinRefreshInterval < minJWKSMinRefresh || iss.JWKS.MinRefreshInterval > iss.JWKS.RefreshInterval {
			c.Addf(path+".jwksMinRefreshInterval", "between %v and jwksRefreshInterval", minJWKSMinRefresh)
		}
		for j, a := range is.GetAudiences() {
			if a == "" {
				c.Addf(fmt.Sprintf("%s.audiences[%d]", path, j), "an audience cannot be empty")
			}
		}
		c.jwksSource(path, is, &iss.JWKS)
		iss.ClaimHeaders = c.claimHeaders(path+".claimHeaders", is.GetClaimHeaders(), snap)
		iss.Seal()
		if is.GetIssuer() != "" && snap.Issuers[is.GetIssuer()] == nil {
			snap.Issuers[is.GetIssuer()] = iss
			snap.IssuerList = append(snap.IssuerList, iss)
		}
	}
}

func (c *compiler) jwksSource(path string, is *tollgatev1.Issuer, spec *keys.JWKSSpec) {
	switch {
	case is.GetJwksUri() == "" && is.GetJwksFile() == "":
		c.Addf(path, "set jwksUri or jwksFile")
	case is.GetJwksUri() != "" && is.GetJwksFile() != "":
		c.Addf(path, "set jwksUri or jwksFile, not both")
	case is.GetJwksUri() != "":
		u, err := url.Parse(is.GetJwksUri())
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			c.Addf(path+".jwksUri", "want an https:// URL, got %q", is.GetJwksUri())
		case u.Scheme == "http" && !IsLoopback(u.Hostname()):
			c.Addf(path+".jwksUri", "keys fetched over plain http could be replaced in transit; use https (http is allowed for loopback only)")
		}
		spec.URI = is.GetJwksUri()
		if is.GetJwksCaFile() != "" {
			spec.CAFile = c.path(is.GetJwksCaFile())
			if _, err := os.ReadFile(spec.CAFile); err != nil {
				c.Addf(path+".jwksCaFile", "%v", err)
			}
		}
	default:
		spec.File = c.path(is.GetJwksFile())
		data, err := os.ReadFile(spec.File)
		if err == nil {
			_, err = keys.ParseJWKS(data)
		}
		if err != nil {
			c.Addf(path+".jwksFile", "%v", err)
		}
		if is.GetJwksCaFile() != "" {
			c.Addf(path+".jwksCaFile", "only for jwksUri")
		}
	}
}

func (c *compiler) mtls(in *tollgatev1.MtlsSettings) MTLSPolicy {
	p := MTLSPolicy{TrustXFCC: in.GetTrustForwardedClientCert(), ForwardedBy: in.GetForwardedBy()}
	if in.GetCaFile() != "" {
		pool, err := keys.LoadCAPool(c.path(in.GetCaFile()))
		if err != nil {
			c.Addf("mtls.caFile", "%v", err)
		}
		p.CAPool = pool
	}
	if in.GetForwardedBy() != "" && !in.GetTrustForwardedClientCert() {
		c.Addf("mtls.forwardedBy", "only meaningful with trustForwardedClientCert: true")
	}
	return p
}

// IsLoopback reports whether host (a name or an address) is this
// machine: "localhost" or a loopback address.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *compiler) claimHeaders(path string, in map[string]string, snap *Snapshot) []keys.ClaimHeader {
	var out []keys.ClaimHeader
	for claim, header := range in {
		hpath := path + "." + claim
		h := strings.ToLower(header)
		switch {
		case claim == "":
			c.Addf(hpath, "empty claim name")
		case !ValidHeaderName(h):
			c.Addf(hpath, "not a valid header name: %q", header)
		case slices.Contains(NotForTokens, h):
			c.Addf(hpath, "header %s is reserved", h)
		default:
			out = append(out, keys.ClaimHeader{Claim: claim, Header: h})
			snap.ReservedHeaders[h] = true
		}
	}
	// map order is random; keep the upstream header order stable
	slices.SortFunc(out, func(a, b keys.ClaimHeader) int { return cmp.Compare(a.Header, b.Header) })
	return out
}

func (c *compiler) revoked(in []*tollgatev1.RevokedToken) map[string]time.Time {
	out := make(map[string]time.Time, len(in))
	for i, r := range in {
		r = orEmpty(r)
		if r.GetJti() == "" {
			c.Addf(fmt.Sprintf("revokedTokens[%d].jti", i), "required")
			continue
		}
		var expires time.Time
		if r.GetExpiresAt() != nil {
			expires = r.GetExpiresAt().AsTime()
		}
		if !expires.IsZero() && expires.Before(c.in.Now) {
			continue // the token has expired anyway
		}
		out[r.GetJti()] = expires
	}
	return out
}
