package model

import (
	"crypto/x509"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/internal/catalog"
	"github.com/tollgate/tollgate/internal/keys"
	"github.com/tollgate/tollgate/internal/ratelimit"
)

// Snapshot is a compiled, validated model. It is never modified after
// Compile returns; the request path reads the current one through a Store.
type Snapshot struct {
	// Version says which state of its source the snapshot was built from:
	// a file's digest, the control plane's version.
	Version  string
	LoadedAt time.Time

	Settings

	Catalog      *catalog.Catalog
	Applications map[string]*catalog.Application
	// Subscriptions refer to applications and APIs by id, so that a change
	// to one of the three leaves the others' compiled forms as they are.
	Subscriptions *catalog.Subscriptions
	APIKeys       *keys.APIKeyIndex

	Issuers           map[string]*keys.Issuer         // by iss claim value
	IssuerList        []*keys.Issuer                  // in config order
	ClientIDs         map[string]*catalog.Application // JWT client id -> application
	Revoked           map[string]time.Time            // revoked jti -> when the entry may be dropped
	RateLimitPolicies map[string]*ratelimit.Policy

	MTLS         MTLSPolicy
	Principals   *keys.PrincipalIndex                 // workload identities -> applications
	Certificates map[keys.Digest]*catalog.Application // pinned client certificates

	// ReservedHeaders are headers only Tollgate may set upstream besides
	// the identity headers (claim headers, the backend JWT header): a
	// client's copy is always removed.
	ReservedHeaders map[string]bool
	// ReservedHeaderList is ReservedHeaders in order, for listing them all
	// for removal whether or not the request carried them.
	ReservedHeaderList []string

	// Held counts resources held back because something they refer to
	// has not arrived yet (Input.Partial); they deny until it does.
	Held int
	// heldApps are the applications held back (their rate-limit policy
	// has not arrived), so that a change can still count them.
	heldApps map[string]bool
}

// Settings are the parts of a replica's bootstrap the decision reads: how
// its proxy sends requests, and what it does with unknown ones. They come
// from the replica's own file, whatever the source of resources.
type Settings struct {
	ClientIP       ClientIPPolicy
	HTTPShape      HTTPShape              // who calls the HTTP front end
	EscapedSlashes catalog.EscapedSlashes // what %2F and %5C in a path mean
	StripPort      bool                   // hostMatching.stripPort
	UnmatchedAllow bool
	BackendJWT     *BackendJWTPolicy // nil when disabled
}

// HTTPShape is the proxy that calls the HTTP front end, which says where
// the original request is read from.
type HTTPShape uint8

const (
	// ShapeEnvoy: Envoy's http_service sends the original request itself;
	// client-sent X-Original-* and X-Forwarded-* headers mean nothing.
	ShapeEnvoy HTTPShape = iota
	// ShapeNginx: nginx auth_request, with X-Original-URI and
	// X-Original-Method.
	ShapeNginx
	// ShapeForwardAuth: Traefik's ForwardAuth and Caddy's forward_auth,
	// with X-Forwarded-Method, -Host, -Uri and -Proto.
	ShapeForwardAuth
)

var shapeNames = [...]string{ShapeEnvoy: "envoy", ShapeNginx: "nginx", ShapeForwardAuth: "forwardAuth"}

func (s HTTPShape) String() string { return shapeNames[s] }

// MTLSPolicy says how client certificates and forwarded ones are trusted.
type MTLSPolicy struct {
	TrustXFCC   bool           // believe x-forwarded-client-cert
	CAPool      *x509.CertPool // verify certificates against it; nil: only pinned fingerprints count
	ForwardedBy string         // if set, the XFCC element used must carry By equal to it
}

// BackendJWTPolicy is the compiled backendJwt section.
type BackendJWTPolicy struct {
	Header string
	TTL    time.Duration
	Signer *keys.Signer
}

// ClientIPPolicy says when to take the client address from a header sent
// by a proxy rather than from the peer that connected.
type ClientIPPolicy struct {
	Header         string // lower case; "" never trusts a header
	TrustedProxies []netip.Prefix
}

// Trusts reports whether peer is a proxy whose forwarded address is believed.
func (p ClientIPPolicy) Trusts(peer netip.Addr) bool {
	peer = peer.Unmap()
	for _, t := range p.TrustedProxies {
		if t.Contains(peer) {
			return true
		}
	}
	return false
}

// Resolve returns the client address: peer itself, or, when peer is a
// trusted proxy, the address in v, the value of the configured header. For
// X-Forwarded-For the list is read from the right, skipping trusted
// proxies, so a client cannot choose its address by sending the header.
func (p ClientIPPolicy) Resolve(peer netip.Addr, v string) netip.Addr {
	if p.Header == "" || v == "" || !p.Trusts(peer) {
		return peer
	}
	if p.Header == "x-real-ip" {
		if a, err := netip.ParseAddr(strings.TrimSpace(v)); err == nil {
			return a.Unmap()
		}
		return peer
	}
	for v != "" {
		var hop string
		if i := strings.LastIndexByte(v, ','); i >= 0 {
			hop, v = v[i+1:], v[:i]
		} else {
			hop, v = v, ""
		}
		a, err := netip.ParseAddr(strings.TrimSpace(hop))
		if err != nil {
			return peer
		}
		a = a.Unmap()
		if !p.Trusts(a) {
			return a
		}
		peer = a
	}
	return peer
}

// Store holds the current snapshot. Readers never block; a reload swaps the
// pointer.
type Store struct {
	current atomic.Pointer[Snapshot]
}

// NewStore returns a store holding snap.
func NewStore(snap *Snapshot) *Store {
	s := &Store{}
	s.current.Store(snap)
	return s
}

// Load returns the current snapshot.
func (s *Store) Load() *Snapshot { return s.current.Load() }

// Swap installs snap and returns the previous one.
func (s *Store) Swap(snap *Snapshot) *Snapshot { return s.current.Swap(snap) }

// ParseHTTPShape reads envoy, nginx or forwardAuth ("" is envoy).
func ParseHTTPShape(s string) (HTTPShape, bool) {
	if s == "" {
		return ShapeEnvoy, true
	}
	for i, name := range shapeNames {
		if s == name {
			return HTTPShape(i), true
		}
	}
	return ShapeEnvoy, false
}
