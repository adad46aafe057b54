package config

import (
	"cmp"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/keys"
)

// Defaults and bounds of the JWT settings.
const (
	defaultLeeway        = 30 * time.Second
	maxLeeway            = 5 * time.Minute
	defaultScopesClaim   = "scope"
	defaultClientIDClaim = "azp"
	defaultBackendHeader = "x-jwt-assertion"
	defaultBackendTTL    = 5 * time.Minute
	minJWKSRefresh       = 10 * time.Second
	minJWKSMinRefresh    = time.Second
)

// headers a claim may not be copied into: the identity headers have their
// own meaning, and the rest would change how the request is routed.
var notClaimHeaders = []string{
	"x-consumer-id", "x-consumer-name", "x-authenticated-userid", "x-authenticated-scope", "x-credential-type",
	"authorization", "host", "content-length", "content-type", "transfer-encoding", "connection", "te",
}

// path resolves a configured file path against the config's directory.
func (c *compiler) path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.baseDir == "" {
		return p
	}
	return filepath.Join(c.baseDir, p)
}

func (c *compiler) issuers(in []Issuer, snap *Snapshot) {
	snap.Issuers = map[string]*keys.Issuer{}
	names := map[string]bool{}
	for i, is := range in {
		path := fmt.Sprintf("issuers[%d]", i)
		if c.checkID(path+".name", is.Name) {
			if names[is.Name] {
				c.addf(path+".name", "duplicate issuer name %q", is.Name)
			}
			names[is.Name] = true
		}
		switch {
		case is.Issuer == "":
			c.addf(path+".issuer", "required: the iss claim value of this issuer's tokens")
		case snap.Issuers[is.Issuer] != nil:
			c.addf(path+".issuer", "issuer %q is already configured", is.Issuer)
		}
		iss := &keys.Issuer{
			Name:                 is.Name,
			Issuer:               is.Issuer,
			Audiences:            is.Audiences,
			Leeway:               defaultLeeway,
			ScopesClaim:          cmp.Or(is.ScopesClaim, defaultScopesClaim),
			ClientIDClaim:        cmp.Or(is.ClientIDClaim, defaultClientIDClaim),
			SubscriptionRequired: is.SubscriptionRequired == nil || *is.SubscriptionRequired,
			JWKS: keys.JWKSSpec{
				Issuer:             is.Name,
				RefreshInterval:    cmp.Or(time.Duration(is.JWKSRefreshInterval), keys.DefaultJWKSRefreshInterval),
				MinRefreshInterval: cmp.Or(time.Duration(is.JWKSMinRefreshInterval), keys.DefaultJWKSMinRefreshInterval),
			},
		}
		if is.Leeway != 0 {
			iss.Leeway = time.Duration(is.Leeway)
		}
		if iss.Leeway > maxLeeway {
			c.addf(path+".leeway", "at most %v", maxLeeway)
		}
		if iss.JWKS.RefreshInterval < minJWKSRefresh {
			c.addf(path+".jwksRefreshInterval", "at least %v", minJWKSRefresh)
		}
		if iss.JWKS.MinRefreshInterval < minJWKSMinRefresh || iss.JWKS.MinRefreshInterval > iss.JWKS.RefreshInterval {
			c.addf(path+".jwksMinRefreshInterval", "between %v and jwksRefreshInterval", minJWKSMinRefresh)
		}
		for j, a := range is.Audiences {
			if a == "" {
				c.addf(fmt.Sprintf("%s.audiences[%d]", path, j), "an audience cannot be empty")
			}
		}
		c.jwksSource(path, is, &iss.JWKS)
		iss.ClaimHeaders = c.claimHeaders(path+".claimHeaders", is.ClaimHeaders, snap)
		if is.Issuer != "" && snap.Issuers[is.Issuer] == nil {
			snap.Issuers[is.Issuer] = iss
			snap.IssuerList = append(snap.IssuerList, iss)
		}
	}
}

func (c *compiler) jwksSource(path string, is Issuer, spec *keys.JWKSSpec) {
	switch {
	case is.JWKSURI == "" && is.JWKSFile == "":
		c.addf(path, "set jwksUri or jwksFile")
	case is.JWKSURI != "" && is.JWKSFile != "":
		c.addf(path, "set jwksUri or jwksFile, not both")
	case is.JWKSURI != "":
		u, err := url.Parse(is.JWKSURI)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			c.addf(path+".jwksUri", "want an https:// URL, got %q", is.JWKSURI)
		case u.Scheme == "http" && !isLoopback(u.Hostname()):
			c.addf(path+".jwksUri", "keys fetched over plain http could be replaced in transit; use https (http is allowed for loopback only)")
		}
		spec.URI = is.JWKSURI
		if is.JWKSCAFile != "" {
			spec.CAFile = c.path(is.JWKSCAFile)
			if _, err := os.ReadFile(spec.CAFile); err != nil {
				c.addf(path+".jwksCaFile", "%v", err)
			}
		}
	default:
		spec.File = c.path(is.JWKSFile)
		data, err := os.ReadFile(spec.File)
		if err == nil {
			_, err = keys.ParseJWKS(data)
		}
		if err != nil {
			c.addf(path+".jwksFile", "%v", err)
		}
		if is.JWKSCAFile != "" {
			c.addf(path+".jwksCaFile", "only for jwksUri")
		}
	}
}

func (c *compiler) mtls(in MTLS) MTLSPolicy {
	p := MTLSPolicy{TrustXFCC: in.TrustForwardedClientCert, ForwardedBy: in.ForwardedBy}
	if in.CAFile != "" {
		pool, err := keys.LoadCAPool(c.path(in.CAFile))
		if err != nil {
			c.addf("mtls.caFile", "%v", err)
		}
		p.CAPool = pool
	}
	if in.ForwardedBy != "" && !in.TrustForwardedClientCert {
		c.addf("mtls.forwardedBy", "only meaningful with trustForwardedClientCert: true")
	}
	return p
}

func isLoopback(host string) bool {
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
			c.addf(hpath, "empty claim name")
		case !validHeaderName(h):
			c.addf(hpath, "not a valid header name: %q", header)
		case slices.Contains(notClaimHeaders, h):
			c.addf(hpath, "header %s is reserved", h)
		default:
			out = append(out, keys.ClaimHeader{Claim: claim, Header: h})
			snap.ReservedHeaders[h] = true
		}
	}
	// map order is random; keep the upstream header order stable
	slices.SortFunc(out, func(a, b keys.ClaimHeader) int { return cmp.Compare(a.Header, b.Header) })
	return out
}

func (c *compiler) revoked(in []RevokedToken) map[string]time.Time {
	out := make(map[string]time.Time, len(in))
	for i, r := range in {
		if r.JTI == "" {
			c.addf(fmt.Sprintf("revokedTokens[%d].jti", i), "required")
			continue
		}
		if !r.ExpiresAt.IsZero() && r.ExpiresAt.Before(c.now) {
			continue // the token has expired anyway
		}
		out[r.JTI] = r.ExpiresAt
	}
	return out
}

func (c *compiler) backendJWT(in BackendJWT, snap *Snapshot) *BackendJWTPolicy {
	if !in.Enabled {
		return nil
	}
	p := &BackendJWTPolicy{
		Header: strings.ToLower(cmp.Or(in.Header, defaultBackendHeader)),
		TTL:    cmp.Or(time.Duration(in.TTL), defaultBackendTTL),
	}
	if !validHeaderName(p.Header) || slices.Contains(notClaimHeaders, p.Header) {
		c.addf("backendJwt.header", "not a usable header name: %q", in.Header)
	}
	if p.TTL < 10*time.Second || p.TTL > time.Hour {
		c.addf("backendJwt.ttl", "between 10s and 1h")
	}
	if in.SigningKeyFile == "" {
		c.addf("backendJwt.signingKeyFile", "required when backendJwt is enabled (a PEM EC, RSA or Ed25519 private key)")
		return p
	}
	signer, err := keys.LoadSigner(c.path(in.SigningKeyFile))
	if err != nil {
		c.addf("backendJwt.signingKeyFile", "%v", err)
	}
	p.Signer = signer
	snap.ReservedHeaders[p.Header] = true
	return p
}
