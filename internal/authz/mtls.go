package authz

import (
	"crypto/x509"
	"encoding/hex"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/internal/keys"
)

// HeaderXFCC is Envoy's x-forwarded-client-cert.
const HeaderXFCC = "x-forwarded-client-cert"

const certCacheSlots = 1 << 12

var (
	mtlsBadCertificate = invalidCert("The client certificate could not be verified.")
	mtlsExpired        = invalidCert("The client certificate is not valid at this time.")
	mtlsBadXFCC        = invalidCert("The x-forwarded-client-cert header is malformed.")
	mtlsWrongProxy     = invalidCert("The x-forwarded-client-cert element was not added by the trusted proxy.")
	mtlsNoIdentity     = invalidCert("The x-forwarded-client-cert element names no identity.")
	mtlsBadPrincipal   = invalidCert("The client identity holds characters that cannot be passed on.")
)

func invalidCert(desc string) Denial {
	d := denyInvalidCredentials
	d.Description = desc
	return d
}

// certVerdict is what the cache remembers about one presented certificate.
// It depends on the CA bundle only (the application is looked up per
// check), so it outlives snapshots that share the bundle: a key or a
// subscription changed does not make every certificate be verified again.
type certVerdict struct {
	pool        *x509.CertPool // the mtls.caFile bundle it was verified against; nil: none
	until       time.Time      // the certificate's NotAfter, or a short while for a refusal
	fingerprint keys.Digest
	uri         string // URI SAN, trusted only when the certificate verified against the CA
	denial      *Denial
}

// mtlsAuthenticator identifies the calling workload. Sources, in order:
// the principal Envoy authenticated for the direct peer
// (attributes.source.principal, what Istio sends), the peer certificate
// Envoy forwards with include_peer_certificate, and — only when the config
// trusts it — the nearest element of x-forwarded-client-cert.
type mtlsAuthenticator struct {
	certs    *slotCache[*certVerdict]
	verified atomic.Int64 // certificates parsed and verified (tests)
}

func newMTLSAuthenticator() *mtlsAuthenticator {
	return &mtlsAuthenticator{certs: newSlotCache[*certVerdict](certCacheSlots)}
}

func (a *mtlsAuthenticator) present(c *check) bool {
	r := c.req
	return r.SourcePrincipal != "" || r.SourceCertificate != "" ||
		(c.snap.MTLS.TrustXFCC && r.Headers.Get(HeaderXFCC) != "")
}

func (a *mtlsAuthenticator) verify(c *check) (Identity, *Denial) {
	r := c.req
	switch {
	case r.SourcePrincipal != "":
		id, denial := identifyPrincipal(c, r.SourcePrincipal)
		// Envoy derives the principal from the certificate it also sends
		// (URI SAN, else DNS SAN, else subject); a certificate pinned by
		// fingerprint may have no principal an application lists.
		if denial != nil && r.SourceCertificate != "" {
			return a.identifyCert(c, r.SourceCertificate, "")
		}
		return id, denial
	case r.SourceCertificate != "":
		return a.identifyCert(c, r.SourceCertificate, "")
	}
	// Every line of the header: a proxy that appends a line of its own must
	// not let the client's first line be read as the nearest element.
	elements, err := keys.ParseXFCC(r.Headers.Joined(HeaderXFCC))
	if err != nil {
		return Identity{}, &mtlsBadXFCC
	}
	nearest := elements[len(elements)-1]
	if by := c.snap.MTLS.ForwardedBy; by != "" && nearest.By != by {
		return Identity{}, &mtlsWrongProxy
	}
	switch {
	case nearest.Cert != "":
		return a.identifyCert(c, nearest.Cert, nearest.Chain)
	case len(nearest.URI) > 0:
		return identifyPrincipal(c, nearest.URI[0])
	case nearest.Hash != "":
		fp, err := keys.ParseFingerprint(nearest.Hash)
		if err != nil {
			return Identity{}, &mtlsBadXFCC
		}
		return identifyFingerprint(c, fp)
	}
	return Identity{}, &mtlsNoIdentity
}

// identifyPrincipal maps an authenticated principal to its application.
func identifyPrincipal(c *check, principal string) (Identity, *Denial) {
	if !safeHeaderValue(principal) {
		return Identity{}, &mtlsBadPrincipal // it becomes x-authenticated-userid
	}
	app := c.snap.Principals.Lookup(principal)
	if app == nil {
		return Identity{Subject: principal, Principal: principal}, unknownWorkload()
	}
	return Identity{Application: app, Subject: principal, Principal: principal}, nil
}

// identifyFingerprint maps a pinned certificate to its application.
func identifyFingerprint(c *check, fp keys.Digest) (Identity, *Denial) {
	app := c.snap.Certificates[fp]
	subject := hex.EncodeToString(fp[:])
	if app == nil {
		return Identity{Subject: subject}, unknownWorkload()
	}
	return Identity{Application: app, Subject: subject}, nil
}

func unknownWorkload() *Denial {
	d := denyForbidden
	d.Description = "The client identity is not allowed to call this API."
	return &d
}

// identifyCert verifies a forwarded certificate (through the cache) and
// maps it to an application: a pinned fingerprint first, then, if the
// certificate verified against mtls.caFile, its URI SAN as a principal.
func (a *mtlsAuthenticator) identifyCert(c *check, cert, chain string) (Identity, *Denial) {
	key := keyOf(cert) // usually no chain; a URL-encoded PEM cannot spell keyOf's length prefixes
	if chain != "" {
		key = keyOf(cert, chain)
	}
	v, ok := a.certs.get(&key)
	if !ok || v.pool != c.snap.MTLS.CAPool || !c.now.Before(v.until) {
		a.verified.Add(1)
		if v = verifyCert(c, cert, chain); !v.until.IsZero() {
			a.certs.put(&key, v)
		}
	}
	if v.denial != nil {
		return Identity{}, v.denial
	}
	if app := c.snap.Certificates[v.fingerprint]; app != nil {
		return Identity{Application: app, Subject: hex.EncodeToString(v.fingerprint[:]), Principal: v.uri}, nil
	}
	if v.uri != "" {
		return identifyPrincipal(c, v.uri)
	}
	return identifyFingerprint(c, v.fingerprint)
}

// verifyCert parses and checks a certificate. Without a CA bundle only
// its validity period is checked, and only its fingerprint can identify
// it: nothing vouches for its names.
func verifyCert(c *check, cert, chain string) *certVerdict {
	v := &certVerdict{pool: c.snap.MTLS.CAPool}
	// Refusals are remembered only after signature work (a chain that did
	// not verify): what fails to parse is cheap to refuse again, and
	// caching it would let junk evict real entries.
	refuse := func(d *Denial, remember bool) *certVerdict {
		v.denial = d
		if remember {
			v.until = c.now.Add(negativeTTL)
		}
		return v
	}
	certs, err := keys.ParseURLEncodedCerts(cert)
	if err != nil {
		return refuse(&mtlsBadCertificate, false)
	}
	leaf := certs[0]
	var intermediates []*x509.Certificate
	if chain != "" {
		if intermediates, err = keys.ParseURLEncodedCerts(chain); err != nil {
			return refuse(&mtlsBadCertificate, false)
		}
	}
	intermediates = append(intermediates, certs[1:]...)
	if !keys.ValidAt(leaf, c.now) {
		return refuse(&mtlsExpired, false)
	}
	if pool := c.snap.MTLS.CAPool; pool != nil {
		if err := keys.VerifyClientCert(leaf, intermediates, pool, c.now); err != nil {
			return refuse(&mtlsBadCertificate, true)
		}
		v.uri = keys.URISAN(leaf)
	}
	v.fingerprint = keys.Fingerprint(leaf)
	v.until = leaf.NotAfter
	return v
}
