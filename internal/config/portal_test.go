package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPortalSection(t *testing.T) {
	store := "source: {store: {sqlite: t.db}}\nauth: {tokens: [{name: ops, sha256: " + strings.Repeat("ab", 32) + ", role: admin}]}\n"
	hash := "$2a$04$C5SDWPAT2zI1TifoPdPsi.0hWILFeXjExbDDaBH1/ff0rUEwp0urO"
	oidc := "oidc: {issuer: https://idp.example.com, clientId: portal, redirectUrl: https://portal.example.com/portal/callback}"
	tests := []struct {
		name, yaml string
		path, msg  string // a wanted problem; "" for a valid config
		check      func(*testing.T, PortalSettings)
	}{
		{name: "on by default with a store", yaml: store, check: func(t *testing.T, p PortalSettings) {
			if !p.Enabled || !p.AnonymousCatalog || len(p.SessionKey) < 32 || p.SessionLifetime.Hours() != 8 {
				t.Fatalf("defaults: %+v", p)
			}
		}},
		{name: "off with a file", yaml: "source: {file: r.yaml}\n", check: func(t *testing.T, p PortalSettings) {
			if p.Enabled {
				t.Fatal("a file source has no portal")
			}
		}},
		{name: "asked for with a file", yaml: "source: {file: r.yaml}\nportal: {enabled: true}\n", path: "portal.enabled", msg: "needs a store"},
		{name: "accounts and oidc", yaml: store + "portal: {accounts: [{name: alice, role: developer, passwordHash: \"" + hash + "\"}], " + oidc + "}\n",
			check: func(t *testing.T, p PortalSettings) {
				if len(p.Accounts) != 1 || p.OIDC.RolesClaim != "roles" || p.OIDC.SubjectClaim != "sub" || p.OIDC.DefaultRole != "developer" ||
					strings.Join(p.OIDC.Scopes, " ") != "openid profile email" {
					t.Fatalf("portal: %+v %+v", p, p.OIDC)
				}
			}},
		{name: "plaintext password", yaml: store + "portal: {accounts: [{name: alice, role: developer, passwordHash: secret}]}\n",
			path: "portal.accounts[0].passwordHash", msg: "bcrypt"},
		{name: "bad role", yaml: store + "portal: {accounts: [{name: alice, role: root, passwordHash: \"" + hash + "\"}]}\n",
			path: "portal.accounts[0].role", msg: "want admin"},
		{name: "twice the same account", yaml: store + "portal: {accounts: [{name: a, role: developer, passwordHash: \"" + hash + "\"}, {name: a, role: developer, passwordHash: \"" + hash + "\"}]}\n",
			path: "portal.accounts[1].name", msg: "duplicate"},
		{name: "gateway not a URL", yaml: store + "portal: {gatewayUrl: \"ftp://x\"}\n", path: "portal.gatewayUrl", msg: "http(s) URL"},
		{name: "session lifetime", yaml: store + "portal: {sessionLifetime: 10s}\n", path: "portal.sessionLifetime", msg: "1m to 720h"},
		{name: "short session key", yaml: store + "portal: {sessionKeyFile: short.key}\n", path: "portal.sessionKeyFile", msg: "at least 32"},
		{name: "oidc without client", yaml: store + "portal: {oidc: {issuer: https://idp, redirectUrl: https://p/portal/callback}}\n",
			path: "portal.oidc.clientId", msg: "required"},
		{name: "oidc callback elsewhere", yaml: store + "portal: {oidc: {issuer: https://idp, clientId: c, redirectUrl: https://p/cb}}\n",
			path: "portal.oidc.redirectUrl", msg: "/portal/callback"},
		{name: "nobody can use it", yaml: store + "portal: {anonymousCatalog: false}\n", path: "portal", msg: "nobody can use it"},
		{name: "unknown key", yaml: store + "portal: {anonymous: true}\n", path: "portal.anonymous", msg: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "short.key"), []byte("too short"), 0o600); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, "cp.yaml")
			if err := os.WriteFile(p, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := LoadControlPlane(p)
			if tc.path == "" {
				if err != nil {
					t.Fatalf("unexpected problems: %v", err)
				}
				tc.check(t, cfg.Portal)
				return
			}
			ps := problemsOf(t, err)
			if _, ok := findProblem(ps, tc.path, tc.msg); !ok {
				t.Fatalf("no problem at %s containing %q in:\n%v", tc.path, tc.msg, ps)
			}
		})
	}
}

// The quickstart's portal accounts load.
func TestStoreExamplePortal(t *testing.T) {
	cp, err := LoadControlPlane(filepath.Join("..", "..", "examples", "store", "cp.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !cp.Portal.Enabled || len(cp.Portal.Accounts) != 3 || cp.Portal.GatewayURL == "" {
		t.Fatalf("portal: %+v", cp.Portal)
	}
}
