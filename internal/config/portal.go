package config

import (
	"cmp"
	"crypto/rand"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Portal is cp.yaml's portal section: the developer portal at /portal/,
// served with the admin API when resources live in a store.
type Portal struct {
	Enabled          *bool  `yaml:"enabled"`          // default: on with a store
	AnonymousCatalog *bool  `yaml:"anonymousCatalog"` // default true: the catalog without signing in
	Title            string `yaml:"title"`            // default "Tollgate developer portal"
	// GatewayURL is where the API pages' try-it sends calls: the Envoy
	// (or nginx, Caddy) in front of the enforcers. None: no try-it.
	GatewayURL      string          `yaml:"gatewayUrl"`
	GatewayCAFile   string          `yaml:"gatewayCaFile"`
	SessionKeyFile  string          `yaml:"sessionKeyFile"`  // 32 bytes or more; default a random key per start
	SessionLifetime string          `yaml:"sessionLifetime"` // default 8h
	Accounts        []PortalAccount `yaml:"accounts"`
	OIDC            *PortalOIDC     `yaml:"oidc"`
}

// PortalAccount is a local account: for the quickstart and small
// installations; an identity provider (oidc) for everything else.
type PortalAccount struct {
	Name         string `yaml:"name"`
	PasswordHash string `yaml:"passwordHash"` // bcrypt ($2a$, $2b$ or $2y$)
	Role         string `yaml:"role"`         // admin | publisher | developer
}

// PortalOIDC signs users in with an OpenID provider: authorization code
// with PKCE (S256).
type PortalOIDC struct {
	Issuer       string   `yaml:"issuer"`
	ClientID     string   `yaml:"clientId"`
	ClientSecret string   `yaml:"clientSecret"` // usually "${PORTAL_CLIENT_SECRET}"; none for a public client
	RedirectURL  string   `yaml:"redirectUrl"`  // https://portal.example.com/portal/callback
	Scopes       []string `yaml:"scopes"`       // default [openid, profile, email]
	RolesClaim   string   `yaml:"rolesClaim"`   // default "roles"
	SubjectClaim string   `yaml:"subjectClaim"` // default "sub": who the user is, the owner of their applications
	DefaultRole  string   `yaml:"defaultRole"`  // for users whose roles claim names none; default developer
	CAFile       string   `yaml:"caFile"`       // the provider's CA, if not the system's
	Name         string   `yaml:"name"`         // the sign-in button's label; default "your identity provider"
}

// PortalSettings is the compiled portal section.
type PortalSettings struct {
	Enabled          bool
	AnonymousCatalog bool
	Title            string
	GatewayURL       string
	GatewayCAFile    string
	SessionKey       []byte // never empty: from the file or random
	SessionLifetime  time.Duration
	Accounts         []PortalAccount
	OIDC             *PortalOIDC
}

// minSessionKey is the shortest session key accepted: it seals cookies
// (AES-256-GCM).
const minSessionKey = 32

func (c *compiler) portal(in Portal, store bool) PortalSettings {
	out := PortalSettings{
		Enabled:          store,
		AnonymousCatalog: true,
		Title:            cmp.Or(in.Title, "Tollgate developer portal"),
		GatewayCAFile:    c.path(in.GatewayCAFile),
	}
	if in.Enabled != nil {
		out.Enabled = *in.Enabled
	}
	if in.AnonymousCatalog != nil {
		out.AnonymousCatalog = *in.AnonymousCatalog
	}
	if out.Enabled && !store {
		c.Addf("portal.enabled", "the portal needs a store (source.store): it changes applications, subscriptions and keys")
	}
	if in.GatewayURL != "" {
		if u, err := url.Parse(in.GatewayURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
			c.Addf("portal.gatewayUrl", "want an http(s) URL such as https://api.example.com, got %q", in.GatewayURL)
		} else {
			out.GatewayURL = strings.TrimSuffix(in.GatewayURL, "/")
		}
	}
	lifetime := cmp.Or(in.SessionLifetime, "8h")
	if d, err := time.ParseDuration(lifetime); err != nil || d < time.Minute || d > 30*24*time.Hour {
		c.Addf("portal.sessionLifetime", "want a duration from 1m to 720h, got %q", lifetime)
	} else {
		out.SessionLifetime = d
	}
	if in.SessionKeyFile != "" {
		key, err := os.ReadFile(c.path(in.SessionKeyFile))
		switch {
		case err != nil:
			c.Addf("portal.sessionKeyFile", "%v", err)
		case len(strings.TrimSpace(string(key))) < minSessionKey:
			c.Addf("portal.sessionKeyFile", "want at least %d bytes (for example: openssl rand -hex 32)", minSessionKey)
		default:
			out.SessionKey = []byte(strings.TrimSpace(string(key)))
		}
	} else {
		out.SessionKey = make([]byte, minSessionKey)
		_, _ = rand.Read(out.SessionKey)
	}
	names := map[string]bool{}
	for i, a := range in.Accounts {
		path := fmt.Sprintf("portal.accounts[%d]", i)
		c.ID(path+".name", a.Name)
		if names[a.Name] {
			c.Addf(path+".name", "duplicate account %q", a.Name)
		}
		names[a.Name] = true
		if _, err := bcrypt.Cost([]byte(a.PasswordHash)); err != nil {
			c.Addf(path+".passwordHash", "want a bcrypt hash ($2b$...): enforcer portal hash-password makes one")
		}
		if !validRole(a.Role) {
			c.Addf(path+".role", "want admin, publisher or developer, got %q", a.Role)
		}
		out.Accounts = append(out.Accounts, a)
	}
	if o := in.OIDC; o != nil {
		v := *o
		v.CAFile = c.path(o.CAFile)
		v.RolesClaim = cmp.Or(o.RolesClaim, "roles")
		v.SubjectClaim = cmp.Or(o.SubjectClaim, "sub")
		v.DefaultRole = cmp.Or(o.DefaultRole, RoleDeveloper)
		v.Name = cmp.Or(o.Name, "your identity provider")
		if len(v.Scopes) == 0 {
			v.Scopes = []string{"openid", "profile", "email"}
		}
		if u, err := url.Parse(v.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			c.Addf("portal.oidc.issuer", "want the provider's issuer URL, got %q", v.Issuer)
		}
		if v.ClientID == "" {
			c.Addf("portal.oidc.clientId", "required")
		}
		if u, err := url.Parse(v.RedirectURL); err != nil || u.Host == "" || !strings.HasSuffix(u.Path, "/portal/callback") {
			c.Addf("portal.oidc.redirectUrl", "want this portal's callback URL, ending in /portal/callback, got %q", v.RedirectURL)
		}
		if !validRole(v.DefaultRole) {
			c.Addf("portal.oidc.defaultRole", "want admin, publisher or developer, got %q", v.DefaultRole)
		}
		out.OIDC = &v
	}
	if out.Enabled && len(out.Accounts) == 0 && out.OIDC == nil && !out.AnonymousCatalog {
		c.Addf("portal", "nobody can use it: add accounts or oidc, or leave anonymousCatalog on")
	}
	return out
}
