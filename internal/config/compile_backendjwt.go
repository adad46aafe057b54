package config

import (
	"cmp"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/keys"
	"github.com/tollgate/tollgate/internal/model"
)

// Defaults of the backendJwt section.
const (
	defaultBackendHeader = "x-jwt-assertion"
	defaultBackendTTL    = 5 * time.Minute
)

// path resolves a configured file path against the config's directory.
func (c *compiler) path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.baseDir == "" {
		return p
	}
	return filepath.Join(c.baseDir, p)
}

func (c *compiler) backendJWT(in BackendJWT) *model.BackendJWTPolicy {
	if !in.Enabled {
		return nil
	}
	p := &model.BackendJWTPolicy{
		Header: strings.ToLower(cmp.Or(in.Header, defaultBackendHeader)),
		TTL:    cmp.Or(time.Duration(in.TTL), defaultBackendTTL),
	}
	if !model.ValidHeaderName(p.Header) || slices.Contains(model.NotForTokens, p.Header) {
		c.Addf("backendJwt.header", "not a usable header name: %q", in.Header)
	}
	if p.TTL < 10*time.Second || p.TTL > time.Hour {
		c.Addf("backendJwt.ttl", "between 10s and 1h")
	}
	if in.SigningKeyFile == "" {
		c.Addf("backendJwt.signingKeyFile", "required when backendJwt is enabled (a PEM EC, RSA or Ed25519 private key)")
		return p
	}
	signer, err := keys.LoadSigner(c.path(in.SigningKeyFile))
	if err != nil {
		c.Addf("backendJwt.signingKeyFile", "%v", err)
	}
	p.Signer = signer
	return p
}
