package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestControlPlaneSection(t *testing.T) {
	tests := []struct {
		name, yaml string
		path, msg  string // a wanted problem; "" for a valid config
	}{
		{name: "loopback plaintext", yaml: "controlPlane: {address: 127.0.0.1:18000, node: r1}\n"},
		{name: "localhost plaintext", yaml: "controlPlane: {address: localhost:18000, node: r1}\n"},
		{name: "remote plaintext", yaml: "controlPlane: {address: cp.tollgate.svc:18000, node: r1}\n",
			path: "controlPlane.address", msg: "plaintext is allowed on loopback only"},
		{name: "no port", yaml: "controlPlane: {address: cp, node: r1}\n", path: "controlPlane.address", msg: "want host:port"},
		{name: "resources beside a control plane",
			yaml: "controlPlane: {address: 127.0.0.1:18000, node: r1}\napis: []\napplications: []\n",
			path: "apis", msg: "resources come from the control plane"},
		{name: "key without certificate",
			yaml: "controlPlane: {address: cp:18000, node: r1, tls: {caFile: ca.pem, keyFile: k.pem}}\n",
			path: "controlPlane.tls", msg: "certFile and keyFile go together"},
		{name: "tls without CA",
			yaml: "controlPlane: {address: cp:18000, node: r1, tls: {certFile: c.pem, keyFile: k.pem}}\n",
			path: "controlPlane.tls.caFile", msg: "required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Compile([]byte(tc.yaml), noEnv)
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("unexpected problems: %v", err)
				}
				if cfg.ControlPlane.Address == "" || cfg.ControlPlane.Node != "r1" {
					t.Fatalf("controlPlane = %+v", cfg.ControlPlane)
				}
				return
			}
			ps := problemsOf(t, err)
			if _, ok := findProblem(ps, tc.path, tc.msg); !ok {
				t.Fatalf("no problem at %s containing %q in:\n%v", tc.path, tc.msg, ps)
			}
		})
	}
}

func TestControlPlaneNodeDefaultsToHostname(t *testing.T) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		t.Skip("no hostname here")
	}
	cfg, err := Compile([]byte("controlPlane: {address: 127.0.0.1:1}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ControlPlane.Node != host {
		t.Fatalf("node = %q, want the hostname %q", cfg.ControlPlane.Node, host)
	}
}

func TestLoadControlPlane(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg, err := LoadControlPlane(write("cp.yaml", "source: {file: resources}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen.XDS != DefaultXDSAddr || cfg.Listen.API != DefaultAPIAddr || cfg.Source.File != filepath.Join(dir, "resources") {
		t.Fatalf("config = %+v", cfg)
	}
	_, err = LoadControlPlane(write("bad.yaml", "listen: {xds: \"0.0.0.0:18000\"}\nsource: {}\nextra: 1\n"))
	ps := problemsOf(t, err)
	for _, want := range []struct{ path, msg string }{
		{"listen.xds", "plaintext is allowed on loopback only"},
		{"source", "required"},
		{"extra", "unknown"},
	} {
		if _, ok := findProblem(ps, want.path, want.msg); !ok {
			t.Errorf("no problem at %s containing %q in:\n%v", want.path, want.msg, ps)
		}
	}
}

func TestLoadResources(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("apis.yaml", "apis:\n  - {id: orders, security: [apiKey], operations: [{path: /**}]}\n")
	write("apps.yml", "applications:\n  - {id: shop}\nsubscriptions:\n  - {application: shop, api: orders, state: active}\n")
	write(".hidden.yaml", "this is not yaml: [")
	write("notes.txt", "ignored")
	set, err := LoadResources(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Resources.Apis) != 1 || len(set.Resources.Applications) != 1 || len(set.Resources.Subscriptions) != 1 {
		t.Fatalf("resources = %v", set.Resources)
	}
	before := set.Digest

	// A problem in the second file is reported in that file, at its own
	// index; a bootstrap section is refused.
	write("apps.yml", "applications:\n  - {id: shop}\n  - {id: \"bad id\"}\nsubscriptions:\n  - {application: nobody, api: orders, state: active}\nlisten: {grpc: \":1\"}\n")
	_, err = LoadResources(dir)
	ps := problemsOf(t, err)
	for _, want := range []struct {
		path string
		line int
		msg  string
	}{
		{"apps.yml: applications[1].id", 3, ""},
		{"apps.yml: subscriptions[0].application", 5, "unknown application"},
		{"apps.yml: listen", 6, "not a resource"},
	} {
		p, ok := findProblem(ps, want.path, want.msg)
		if !ok {
			t.Errorf("no problem at %s in:\n%v", want.path, ps)
			continue
		}
		if p.Line != want.line {
			t.Errorf("%s: line %d, want %d", want.path, p.Line, want.line)
		}
	}
	write("apps.yml", "applications:\n  - {id: shop}\nsubscriptions:\n  - {application: shop, api: orders, state: blocked}\n")
	set, err = LoadResources(dir)
	if err != nil {
		t.Fatal(err)
	}
	if set.Digest == before {
		t.Error("the digest did not change with the files")
	}
}

func TestPeekAdmin(t *testing.T) {
	tests := []struct {
		name, yaml string
		addr       string
		ok         bool
	}{
		{"no listen block", "apis: []\n", DefaultAdminAddr, true},
		{"block", "apis: []\nlisten:\n  # the admin port\n  admin: 127.0.0.1:9901\n  grpc: 127.0.0.1:0\nlimits: {}\n", "127.0.0.1:9901", true},
		{"flow", "listen: {admin: \"127.0.0.1:9902\"}\n", "127.0.0.1:9902", true},
		{"listen without admin", "listen: {grpc: \"127.0.0.1:0\"}\n", DefaultAdminAddr, true},
		{"environment", "listen: {admin: \"${ADMIN}\"}\n", "127.0.0.1:9903", true},
		{"document marker", "---\nlisten: {admin: \"127.0.0.1:9904\"}\n", "", false},
		{"repeated", "listen: {}\nlisten: {}\n", "", false},
		{"broken", "listen: {admin: [\n", "", false},
		{"top-level flow mapping", "{listen: {admin: \"127.0.0.1:9905\"}}\n", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, ok := PeekAdmin([]byte(tc.yaml), envOf(map[string]string{"ADMIN": "127.0.0.1:9903"}))
			if addr != tc.addr || ok != tc.ok {
				t.Fatalf("PeekAdmin = %q, %v; want %q, %v", addr, ok, tc.addr, tc.ok)
			}
		})
	}
}

// FuzzPeekAdmin checks that the early read of the admin address never
// disagrees with the full decode when it claims to know.
func FuzzPeekAdmin(f *testing.F) {
	f.Add([]byte("listen: {admin: 127.0.0.1:1}\n"))
	f.Add([]byte("listen:\n  admin: 127.0.0.1:2\napis: []\n"))
	f.Add([]byte("apis: []\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		addr, ok := PeekAdmin(data, noEnv)
		if !ok {
			return
		}
		cfg, err := Compile(data, noEnv)
		if err != nil {
			return // the full decode refuses the file: serve does not start
		}
		if strings.TrimSpace(cfg.Listen.Admin) != addr {
			t.Fatalf("PeekAdmin read %q, the config says %q", addr, cfg.Listen.Admin)
		}
	})
}

// TestControlPlaneExample keeps examples/controlplane loadable: the
// control plane's config and resources, and the replica's config.
func TestControlPlaneExample(t *testing.T) {
	dir := filepath.Join("..", "..", "examples", "controlplane")
	cp, err := LoadControlPlane(filepath.Join(dir, "cp.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	set, err := LoadResources(cp.Source.File)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Resources.Apis) == 0 || len(set.Resources.ApiKeys) == 0 {
		t.Fatalf("example resources: %v", set.Resources)
	}
	replica, err := Load(filepath.Join(dir, "replica.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if replica.ControlPlane.Address != cp.Listen.XDS {
		t.Fatalf("the replica dials %s, the control plane listens on %s", replica.ControlPlane.Address, cp.Listen.XDS)
	}
}

func TestControlPlaneStoreAndAuth(t *testing.T) {
	token := strings.Repeat("ab", 32)
	tests := []struct {
		name, yaml string
		path, msg  string // a wanted problem; "" for a valid config
	}{
		{name: "sqlite with a token", yaml: "source: {store: {sqlite: tollgate.db}}\nauth: {tokens: [{name: ops, sha256: " + token + ", role: admin}]}\n"},
		{name: "postgres with an issuer", yaml: "source: {store: {postgres: \"postgres://u@db/tollgate\"}}\nauth: {issuer: {issuer: https://idp, jwksUri: https://idp/jwks}}\n"},
		{name: "store without auth", yaml: "source: {store: {sqlite: tollgate.db}}\n", path: "auth", msg: "required with a store"},
		{name: "file and store", yaml: "source: {file: r.yaml, store: {sqlite: t.db}}\n", path: "source", msg: "not both"},
		{name: "two databases", yaml: "source: {store: {sqlite: t.db, postgres: \"postgres://x\"}}\nauth: {tokens: [{name: ops, sha256: " + token + ", role: admin}]}\n",
			path: "source.store", msg: "not both"},
		{name: "postgres not a URL", yaml: "source: {store: {postgres: \"host=db\"}}\n", path: "source.store.postgres", msg: "postgres:// URL"},
		{name: "bad role", yaml: "source: {store: {sqlite: t.db}}\nauth: {tokens: [{name: ops, sha256: " + token + ", role: root}]}\n", path: "auth.tokens[0].role", msg: "want admin"},
		{name: "plaintext token", yaml: "source: {store: {sqlite: t.db}}\nauth: {tokens: [{name: ops, sha256: secret, role: admin}]}\n", path: "auth.tokens[0].sha256", msg: "64 hex"},
		{name: "remote api in plaintext", yaml: "listen: {api: \"0.0.0.0:18080\"}\nsource: {store: {sqlite: t.db}}\nauth: {tokens: [{name: ops, sha256: " + token + ", role: admin}]}\n",
			path: "listen.api", msg: "loopback only"},
		{name: "issuer without keys", yaml: "source: {store: {sqlite: t.db}}\nauth: {issuer: {issuer: https://idp}}\n", path: "auth.issuer", msg: "jwksUri or jwksFile"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "cp.yaml")
			if err := os.WriteFile(p, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := LoadControlPlane(p)
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("unexpected problems: %v", err)
				}
				if s := cfg.Source.Store.SQLite; s != "" && s != filepath.Join(dir, "tollgate.db") {
					t.Fatalf("sqlite path %q not resolved against cp.yaml", s)
				}
				if is := cfg.Auth.Issuer; is != nil && (is.RolesClaim != "roles" || is.SubjectClaim != "sub") {
					t.Fatalf("issuer defaults: %+v", is)
				}
				return
			}
			ps := problemsOf(t, err)
			if _, ok := findProblem(ps, tc.path, tc.msg); !ok {
				t.Fatalf("no problem at %s containing %q in:\n%v", tc.path, tc.msg, ps)
			}
		})
	}
}
