package keys

import (
	"crypto/x509"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/catalog"
	"github.com/tollgate/tollgate/internal/testpki"
)

func TestPrincipalIndex(t *testing.T) {
	cart, shop, any, edge := &catalog.Application{ID: "cart"}, &catalog.Application{ID: "shop"},
		&catalog.Application{ID: "any-ns"}, &catalog.Application{ID: "edge"}
	x := NewPrincipalIndex()
	for principal, app := range map[string]*catalog.Application{
		"spiffe://cluster.local/ns/shop/sa/cart": cart,
		"spiffe://cluster.local/ns/shop/sa/*":    shop,
		"spiffe://cluster.local/ns/*/sa/*":       any,
		"CN=edge-gateway,O=Example":              edge,
	} {
		if err := x.Add(principal, app); err != nil {
			t.Fatal(err)
		}
	}
	cases := map[string]*catalog.Application{
		"spiffe://cluster.local/ns/shop/sa/cart":     cart, // exact beats patterns
		"spiffe://cluster.local/ns/shop/sa/checkout": shop, // one wildcard beats two
		"spiffe://cluster.local/ns/billing/sa/api":   any,
		"CN=edge-gateway,O=Example":                  edge,
		"spiffe://cluster.local/ns/shop/sa":          nil, // too short
		"spiffe://cluster.local/ns/shop/sa/cart/x":   nil, // too long
		"spiffe://cluster.local/ns/shop/sa/":         nil, // empty segment
		"spiffe://other.domain/ns/shop/sa/cart":      nil, // another trust domain
		"spiffe://cluster.local.evil/ns/shop/sa/x":   nil,
		"": nil,
	}
	for principal, want := range cases {
		if got := x.Lookup(principal); got != want {
			t.Errorf("Lookup(%q) = %v, want %v", principal, got, want)
		}
	}
	for _, bad := range []string{"", "spiffe://*/ns/a", "spiffe://td/ns/a*", "https://td/*", "spiffe://td/ns//*",
		"spiffe://cluster.local/ns/shop/sa/cart", "spiffe://cluster.local/ns/shop/sa/*"} {
		if err := x.Add(bad, cart); err == nil {
			t.Errorf("Add(%q) accepted", bad)
		}
	}
}

func TestClientCertificates(t *testing.T) {
	mesh, err := testpki.NewCA("mesh")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := testpki.NewCA("other")
	roots := x509.NewCertPool()
	roots.AddCert(mesh.Cert)
	now := time.Now()
	issue := func(ca *testpki.CA, l testpki.Leaf) *x509.Certificate { return ca.MustIssue(t, l) }
	const spiffe = "spiffe://cluster.local/ns/shop/sa/cart"
	cases := []struct {
		name   string
		cert   *x509.Certificate
		valid  bool // within its validity period
		verify bool // chains to the mesh CA for client auth
	}{
		{"valid workload certificate", issue(mesh, testpki.Leaf{URI: spiffe}), true, true},
		{"no extended key usage", issue(mesh, testpki.Leaf{URI: spiffe, ExtKeyUsage: []x509.ExtKeyUsage{}}), true, true},
		{"expired", issue(mesh, testpki.Leaf{URI: spiffe, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)}), false, false},
		{"not yet valid", issue(mesh, testpki.Leaf{URI: spiffe, NotBefore: now.Add(time.Hour), NotAfter: now.Add(48 * time.Hour)}), false, false},
		{"another CA", issue(other, testpki.Leaf{URI: spiffe}), true, false},
		{"server certificate only", issue(mesh, testpki.Leaf{URI: spiffe, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}), true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			certs, err := ParseURLEncodedCerts(testpki.URLEncoded(tc.cert))
			if err != nil || len(certs) != 1 || !certs[0].Equal(tc.cert) {
				t.Fatalf("round trip: %v", err)
			}
			if got := ValidAt(certs[0], now); got != tc.valid {
				t.Errorf("ValidAt = %v", got)
			}
			if err := VerifyClientCert(certs[0], nil, roots, now); (err == nil) != tc.verify {
				t.Errorf("VerifyClientCert: %v, want ok=%v", err, tc.verify)
			}
			if URISAN(certs[0]) != spiffe {
				t.Errorf("URI SAN %q", URISAN(certs[0]))
			}
		})
	}

	for _, bad := range []string{"", "%zz", url.PathEscape("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"), "plain text"} {
		if _, err := ParseURLEncodedCerts(bad); err == nil {
			t.Errorf("ParseURLEncodedCerts(%q) accepted", bad)
		}
	}
	leaf := cases[0].cert
	fp := Fingerprint(leaf)
	for _, s := range []string{fp.String(), toColons(fp.String())} {
		if got, err := ParseFingerprint(s); err != nil || got != fp {
			t.Errorf("ParseFingerprint(%q) = %v, %v", s, got, err)
		}
	}
}

// toColons writes a hex fingerprint as openssl prints it: AB:CD:...
func toColons(hexs string) string {
	pairs := make([]string, 0, len(hexs)/2)
	for i := 0; i < len(hexs); i += 2 {
		pairs = append(pairs, strings.ToUpper(hexs[i:i+2]))
	}
	return strings.Join(pairs, ":")
}
