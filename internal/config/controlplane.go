package config

import (
	"cmp"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/tollgate/tollgate/internal/model"
)

// ControlPlane is the enforcer's controlPlane section: take resources
// from a control plane over xDS instead of from this file.
type ControlPlane struct {
	Address  string   `yaml:"address"`
	TLS      TLSFiles `yaml:"tls"`
	Node     string   `yaml:"node"`
	StateDir string   `yaml:"stateDir"`
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
}

// resourceKeys are the File's resource sections, which a replica wired to
// a control plane must not set.
var resourceKeys = []string{"issuers", "revokedTokens", "apis", "applications", "subscriptions", "apiKeys", "mtls", "rateLimitPolicies"}

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
}

// ControlPlaneListen are the control plane's two listeners.
type ControlPlaneListen struct {
	XDS string `yaml:"xds"`
	API string `yaml:"api"`
}

// Source says where the control plane's resources come from.
type Source struct {
	File string `yaml:"file"` // a YAML file or a directory of them, watched
}

// Default control-plane listener addresses.
const (
	DefaultXDSAddr = "127.0.0.1:18000"
	DefaultAPIAddr = "127.0.0.1:18080"
)

// ControlPlaneConfig is a compiled cp.yaml.
type ControlPlaneConfig struct {
	Listen ControlPlaneListen
	TLS    TLSFiles
	Source Source // File resolved against cp.yaml's directory
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
		Listen: ControlPlaneListen{XDS: cmp.Or(f.Listen.XDS, DefaultXDSAddr), API: cmp.Or(f.Listen.API, DefaultAPIAddr)},
		TLS:    c.tlsFiles("tls", f.TLS, false),
		Source: Source{File: c.path(f.Source.File)},
	}
	c.plaintextOnLoopback("listen.xds", out.Listen.XDS, out.TLS)
	if _, _, err := net.SplitHostPort(out.Listen.API); err != nil {
		c.Addf("listen.api", "want host:port, got %q", out.Listen.API)
	}
	if out.Source.File == "" {
		c.Addf("source.file", "required: the YAML file or directory of resources to serve")
	}
	for _, p := range c.Problems {
		problems = append(problems, Problem{Path: p.Path, Msg: p.Msg})
	}
	if len(problems) > 0 || dropped > 0 {
		return nil, capProblems(problems, dropped)
	}
	return out, nil
}
