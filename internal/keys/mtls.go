package keys

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/catalog"
)

// LoadCAPool reads a PEM bundle of CA certificates.
func LoadCAPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// ParseURLEncodedCerts decodes certificates as Envoy forwards them (in
// attributes.source.certificate and XFCC Cert/Chain): URL-encoded PEM.
func ParseURLEncodedCerts(s string) ([]*x509.Certificate, error) {
	decoded, err := url.PathUnescape(s)
	if err != nil {
		return nil, fmt.Errorf("certificate is not URL-encoded PEM: %w", err)
	}
	rest := []byte(decoded)
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return certs, nil
}

// Fingerprint is the SHA-256 of a certificate's DER encoding.
func Fingerprint(c *x509.Certificate) Digest { return sha256.Sum256(c.Raw) }

// ParseFingerprint accepts 64 hex digits, in either case, optionally in
// colon-separated pairs (as openssl prints them).
func ParseFingerprint(s string) (Digest, error) {
	return ParseDigest(strings.ToLower(strings.ReplaceAll(s, ":", "")))
}

// VerifyClientCert checks that cert chains to roots (through the
// intermediates given), is valid at now, and may be used for client
// authentication (a certificate that lists extended key usages must list
// clientAuth).
func VerifyClientCert(cert *x509.Certificate, intermediates []*x509.Certificate, roots *x509.CertPool, now time.Time) error {
	pool := x509.NewCertPool()
	for _, c := range intermediates {
		pool.AddCert(c)
	}
	_, err := cert.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: pool,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return err
}

// ValidAt reports whether now is within the certificate's validity.
func ValidAt(c *x509.Certificate, now time.Time) bool {
	return !now.Before(c.NotBefore) && !now.After(c.NotAfter)
}

// URISAN returns the certificate's first URI SAN (its SPIFFE ID in a
// mesh), or "".
func URISAN(c *x509.Certificate) string {
	if len(c.URIs) == 0 {
		return ""
	}
	return c.URIs[0].String()
}

// PrincipalIndex maps workload identities to applications: exact
// principals (any string Envoy reports: a SPIFFE ID, another URI, a
// subject) and SPIFFE patterns in which "*" stands for one path segment,
// such as spiffe://cluster.local/ns/shop/sa/*.
type PrincipalIndex struct {
	exact    map[string]*catalog.Application
	patterns []principalPattern // fewest wildcards first, then config order
}

type principalPattern struct {
	prefix    string   // "spiffe://trust-domain/"
	segments  []string // path segments; "*" matches any one
	wildcards int
	app       *catalog.Application
}

// NewPrincipalIndex returns an empty index.
func NewPrincipalIndex() *PrincipalIndex {
	return &PrincipalIndex{exact: map[string]*catalog.Application{}}
}

// Add maps principal (or a pattern) to app. It reports an error for a
// malformed pattern or a principal already mapped.
func (x *PrincipalIndex) Add(principal string, app *catalog.Application) error {
	if principal == "" {
		return errors.New("empty principal")
	}
	if !HasPattern(principal) {
		if other := x.exact[principal]; other != nil {
			return fmt.Errorf("principal %q already belongs to application %q", principal, other.ID)
		}
		x.exact[principal] = app
		return nil
	}
	rest, ok := strings.CutPrefix(principal, "spiffe://")
	domain, path, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || domain == "" || strings.Contains(domain, "*") {
		return fmt.Errorf("pattern %q: wildcards are for SPIFFE IDs, as in spiffe://cluster.local/ns/shop/sa/*", principal)
	}
	p := principalPattern{prefix: "spiffe://" + domain + "/", segments: strings.Split(path, "/"), app: app}
	for _, seg := range p.segments {
		switch {
		case seg == "*":
			p.wildcards++
		case seg == "" || strings.Contains(seg, "*"):
			return fmt.Errorf("pattern %q: * must be a whole path segment", principal)
		}
	}
	for _, other := range x.patterns {
		if other.prefix == p.prefix && slices.Equal(other.segments, p.segments) {
			return fmt.Errorf("pattern %q already belongs to application %q", principal, other.app.ID)
		}
	}
	x.patterns = append(x.patterns, p)
	slices.SortStableFunc(x.patterns, func(a, b principalPattern) int { return a.wildcards - b.wildcards })
	return nil
}

// Without returns a copy of the index without the principals of apps;
// x is left as it is. ok is false when one of them has a pattern:
// patterns are tried in config order, which a copy changed piecemeal
// cannot keep, so the caller builds the index afresh.
func (x *PrincipalIndex) Without(apps map[*catalog.Application]bool) (next *PrincipalIndex, ok bool) {
	for _, p := range x.patterns {
		if apps[p.app] {
			return nil, false
		}
	}
	next = &PrincipalIndex{exact: maps.Clone(x.exact), patterns: slices.Clip(x.patterns)}
	maps.DeleteFunc(next.exact, func(_ string, app *catalog.Application) bool { return apps[app] })
	return next, true
}

// HasPattern reports whether principal is a pattern rather than one
// principal.
func HasPattern(principal string) bool { return strings.Contains(principal, "*") }

// Lookup returns the application of principal: an exact entry first, then
// the pattern with the fewest wildcards that matches.
func (x *PrincipalIndex) Lookup(principal string) *catalog.Application {
	if x == nil || principal == "" {
		return nil
	}
	if app := x.exact[principal]; app != nil {
		return app
	}
	for i := range x.patterns {
		if x.patterns[i].matches(principal) {
			return x.patterns[i].app
		}
	}
	return nil
}

func (p *principalPattern) matches(principal string) bool {
	path, ok := strings.CutPrefix(principal, p.prefix)
	if !ok {
		return false
	}
	for i, seg := range p.segments {
		next, rest, found := strings.Cut(path, "/")
		if next == "" || (seg != "*" && seg != next) {
			return false
		}
		if last := i == len(p.segments)-1; last != !found {
			return false
		}
		path = rest
	}
	return true
}
