package config

import (
	"cmp"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/model"
)

// ControlPlane is the enforcer's controlPlane section: take resources
// from a control plane over xDS instead of from this file.
type ControlPlane struct {
	Address  string   `yaml:"address"`
	TLS      TLSFiles `yaml:"tls"`
	Node     string   `yaml:"node"`
	StateDir string   `yaml:"stateDir"`
	// Usage says how usage is reported to the control plane.
	Usage ControlPlaneUsage `yaml:"usage"`
}

// TLSFiles name a CA bundle and a certificate with its key, all PEM.
type TLSFiles struct {
	CAFile   string `yaml:"caFile"`
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
}

// Enabled reports whether any TLS file is set.
func (t TLSFiles) Enabled() bool { return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" }

// ControlPlaneSettings is the compiled controlPlane section; Address is
// empty when resources come from the file.
type ControlPlaneSettings struct {
	Address  string
	TLS      TLSFiles // paths resolved against the config file's directory
	Node     string
	StateDir string
	// BaseDir is where relative paths in resources from the control plane
	// (an issuer's jwksFile, the mTLS caFile) are taken from: this file's
	// directory.
	BaseDir string
	Usage   UsageSettings
}

// resourceKeys are the File's resource sections, which a replica wired to
// a control plane must not set.
var resourceKeys = []string{"issuers", "revokedTokens", "apis", "applications", "subscriptions", "apiKeys", "mtls", "rateLimitPolicies", "management"}

func (c *compiler) controlPlane(in ControlPlane, lines map[string]int) ControlPlaneSettings {
	if _, set := lines["controlPlane"]; !set {
		return ControlPlaneSettings{}
	}
	out := ControlPlaneSettings{
		Address:  in.Address,
		TLS:      c.tlsFiles("controlPlane.tls", in.TLS, true),
		Node:     in.Node,
		StateDir: c.path(in.StateDir),
		BaseDir:  c.baseDir,
		Usage:    c.usage(in.Usage),
	}
	if out.Node == "" {
		out.Node, _ = os.Hostname()
	}
	c.Text("controlPlane.node", out.Node)
	if out.Node == "" {
		c.Addf("controlPlane.node", "required: this replica's name as the control plane lists it")
	}
	c.plaintextOnLoopback("controlPlane.address", in.Address, out.TLS)
	for _, key := range resourceKeys {
		if _, set := lines[key]; set {
			c.Addf(key, "with controlPlane set, resources come from the control plane: remove this section")
		}
	}
	return out
}

// tlsFiles resolves and checks a tls section. client says whether a
// certificate is optional (a replica may verify the control plane without
// presenting one of its own).
func (c *compiler) tlsFiles(path string, in TLSFiles, client bool) TLSFiles {
	out := TLSFiles{CAFile: c.path(in.CAFile), CertFile: c.path(in.CertFile), KeyFile: c.path(in.KeyFile)}
	if (in.CertFile == "") != (in.KeyFile == "") {
		c.Addf(path, "certFile and keyFile go together")
	}
	if client && in.Enabled() && in.CAFile == "" {
		c.Addf(path+".caFile", "required with tls: the CA that signed the control plane's certificate")
	}
	if !client && in.Enabled() && in.CertFile == "" {
		c.Addf(path+".certFile", "required with tls: the control plane's own certificate")
	}
	for _, f := range []struct{ key, file string }{{"caFile", out.CAFile}, {"certFile", out.CertFile}, {"keyFile", out.KeyFile}} {
		if f.file == "" {
			continue
		}
		if _, err := os.Stat(f.file); err != nil {
			c.Addf(path+"."+f.key, "%v", err)
		}
	}
	return out
}

// plaintextOnLoopback checks a host:port and refuses plaintext to or from
// anything but this machine: resources carry key hashes and policies.
func (c *compiler) plaintextOnLoopback(path, addr string, tls TLSFiles) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		c.Addf(path, "want host:port, got %q", addr)
		return
	}
	if !tls.Enabled() && !model.IsLoopback(host) {
		c.Addf(path, "plaintext is allowed on loopback only: set tls (caFile, certFile, keyFile) for %s", addr)
	}
}

// ControlPlaneFile is cp.yaml, the control plane's own config.
type ControlPlaneFile struct {
	Listen ControlPlaneListen `yaml:"listen"`
	TLS    TLSFiles           `yaml:"tls"`
	Source Source             `yaml:"source"`
	Auth   AdminAuth          `yaml:"auth"`
	Portal Portal             `yaml:"portal"`
	Usage  UsageRetention     `yaml:"usage"`
}

// ControlPlaneListen are the control plane's two listeners.
type ControlPlaneListen struct {
	XDS string `yaml:"xds"`
	API string `yaml:"api"`
}

// Source says where the control plane's resources come from.
type Source struct {
	File  string      `yaml:"file"` // a YAML file or a directory of them, watched
	Store StoreSource `yaml:"store"`
}

// StoreSource is the database behind the admin API: one of the two.
type StoreSource struct {
	SQLite   string `yaml:"sqlite"`   // a file path
	Postgres string `yaml:"postgres"` // postgres://user:password@host/db?sslmode=...
}

// Set reports whether a database is configured.
func (s StoreSource) Set() bool { return s.SQLite != "" || s.Postgres != "" }

// AdminAuth says who may call the admin API: bearer tokens that are
// static (stored as SHA-256) or JWTs from one issuer.
type AdminAuth struct {
	Tokens []AdminToken `yaml:"tokens"`
	Issuer *AdminIssuer `yaml:"issuer"`
}

// AdminToken is a static bootstrap token.
type AdminToken struct {
	Name   string `yaml:"name"`
	SHA256 string `yaml:"sha256"` // hex SHA-256 of the token
	Role   string `yaml:"role"`   // admin | publisher | developer
}

// AdminIssuer accepts JWTs whose roles claim names the caller's role.
type AdminIssuer struct {
	Issuer       string   `yaml:"issuer"`
	JwksURI      string   `yaml:"jwksUri"`
	JwksFile     string   `yaml:"jwksFile"`
	JwksCAFile   string   `yaml:"jwksCaFile"`
	Audiences    []string `yaml:"audiences"`
	RolesClaim   string   `yaml:"rolesClaim"`   // default "roles": a string or an array
	SubjectClaim string   `yaml:"subjectClaim"` // default "sub": the caller, and the owner of what a developer creates
	Leeway       string   `yaml:"leeway"`       // default 30s
}

// Admin API roles.
const (
	RoleAdmin     = "admin"
	RolePublisher = "publisher"
	RoleDeveloper = "developer"
)

// Default control-plane listener addresses.
const (
	DefaultXDSAddr = "127.0.0.1:18000"
	DefaultAPIAddr = "127.0.0.1:18080"
)

// ControlPlaneConfig is a compiled cp.yaml.
type ControlPlaneConfig struct {
	Listen ControlPlaneListen
	TLS    TLSFiles
	Source Source // File and Store.SQLite resolved against cp.yaml's directory
	Auth   AdminAuth
	Portal PortalSettings
	// BaseDir is cp.yaml's directory: relative paths in stored resources
	// are checked against it, as in a file source.
	BaseDir string
	Usage   UsageStorage
}

// LoadControlPlane reads and checks cp.yaml.
func LoadControlPlane(path string) (*ControlPlaneConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading control-plane config: %w", err)
	}
	var f ControlPlaneFile
	_, problems, dropped, err := parse(data, &f, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	c := compiler{baseDir: filepath.Dir(path)}
	out := &ControlPlaneConfig{
		Listen:  ControlPlaneListen{XDS: cmp.Or(f.Listen.XDS, DefaultXDSAddr), API: cmp.Or(f.Listen.API, DefaultAPIAddr)},
		TLS:     c.tlsFiles("tls", f.TLS, false),
		Source:  Source{File: c.path(f.Source.File), Store: StoreSource{SQLite: c.path(f.Source.Store.SQLite), Postgres: f.Source.Store.Postgres}},
		Auth:    c.adminAuth(f.Auth),
		BaseDir: c.baseDir,
		Usage:   c.usageStorage(f.Usage),
	}
	c.plaintextOnLoopback("listen.xds", out.Listen.XDS, out.TLS)
	if _, _, err := net.SplitHostPort(out.Listen.API); err != nil {
		c.Addf("listen.api", "want host:port, got %q", out.Listen.API)
	}
	switch store := out.Source.Store; {
	case out.Source.File == "" && !store.Set():
		c.Addf("source", "required: file (a YAML file or directory of resources) or store (sqlite or postgres)")
	case out.Source.File != "" && store.Set():
		c.Addf("source", "set file or store, not both")
	case store.SQLite != "" && store.Postgres != "":
		c.Addf("source.store", "set sqlite or postgres, not both")
	case store.Postgres != "" && !strings.HasPrefix(store.Postgres, "postgres://") && !strings.HasPrefix(store.Postgres, "postgresql://"):
		c.Addf("source.store.postgres", "want a postgres:// URL")
	}
	if out.Source.Store.Set() {
		if len(out.Auth.Tokens) == 0 && out.Auth.Issuer == nil {
			c.Addf("auth", "required with a store: tokens or an issuer, since the admin API can change everything")
		}
		if host, _, err := net.SplitHostPort(out.Listen.API); err == nil && !out.TLS.Enabled() && !model.IsLoopback(host) {
			c.Addf("listen.api", "bearer tokens in plaintext are allowed on loopback only: set tls for %s", out.Listen.API)
		}
	}
	out.Portal = c.portal(f.Portal, out.Source.Store.Set())
	for _, p := range c.Problems {
		problems = append(problems, Problem{Path: p.Path, Msg: p.Msg})
	}
	if len(problems) > 0 || dropped > 0 {
		return nil, capProblems(problems, dropped)
	}
	return out, nil
}

// adminAuth resolves and checks the auth section.
func (c *compiler) adminAuth(in AdminAuth) AdminAuth {
	out := AdminAuth{}
	names := map[string]bool{}
	for i, t := range in.Tokens {
		path := fmt.Sprintf("auth.tokens[%d]", i)
		c.ID(path+".name", t.Name)
		if names[t.Name] {
			c.Addf(path+".name", "duplicate token name %q", t.Name)
		}
		names[t.Name] = true
		if b, err := hex.DecodeString(t.SHA256); err != nil || len(b) != 32 {
			c.Addf(path+".sha256", "want the 64 hex characters of the token's SHA-256")
		}
		if !validRole(t.Role) {
			c.Addf(path+".role", "want admin, publisher or developer, got %q", t.Role)
		}
		t.SHA256 = strings.ToLower(t.SHA256)
		out.Tokens = append(out.Tokens, t)
	}
	if is := in.Issuer; is != nil {
		v := *is
		v.JwksFile, v.JwksCAFile = c.path(is.JwksFile), c.path(is.JwksCAFile)
		v.RolesClaim = cmp.Or(is.RolesClaim, "roles")
		v.SubjectClaim = cmp.Or(is.SubjectClaim, "sub")
		v.Leeway = cmp.Or(is.Leeway, "30s")
		if v.Issuer == "" {
			c.Addf("auth.issuer.issuer", "required: the iss value of admin tokens")
		}
		if (v.JwksURI == "") == (v.JwksFile == "") {
			c.Addf("auth.issuer", "set jwksUri or jwksFile")
		}
		if d, err := time.ParseDuration(v.Leeway); err != nil || d < 0 {
			c.Addf("auth.issuer.leeway", "want a duration such as 30s, got %q", v.Leeway)
		}
		out.Issuer = &v
	}
	return out
}

func validRole(r string) bool { return r == RoleAdmin || r == RolePublisher || r == RoleDeveloper }
