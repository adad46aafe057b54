package config

import (
	"cmp"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/internal/catalog"
	"github.com/tollgate/tollgate/internal/keys"
	"github.com/tollgate/tollgate/internal/ratelimit"
)

// Snapshot is a compiled, validated config. It is never modified after
// Compile returns; the request path reads the current one through a Store.
type Snapshot struct {
	Source   string // file it was read from ("" in tests)
	Digest   [sha256.Size]byte
	LoadedAt time.Time

	Listen         Listen
	ClientIP       ClientIPPolicy
	Catalog        *catalog.Catalog
	Applications   map[string]*catalog.Application
	APIKeys        *keys.APIKeyIndex
	UnmatchedAllow bool

	Issuers           map[string]*keys.Issuer         // by iss claim value
	IssuerList        []*keys.Issuer                  // in config order
	ClientIDs         map[string]*catalog.Application // JWT client id -> application
	Revoked           map[string]time.Time            // revoked jti -> when the entry may be dropped
	BackendJWT        *BackendJWTPolicy               // nil when disabled
	RateLimitPolicies map[string]*ratelimit.Policy
	RateLimit         RateLimitSettings // the store; changes need a restart
	Analytics         AnalyticsSettings // changes need a restart
	Tracing           TracingSettings   // changes need a restart
	PProf             bool              // /debug/pprof on the admin port; changes need a restart

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

	HTTPShape      HTTPShape              // who calls the HTTP front end
	EscapedSlashes catalog.EscapedSlashes // what %2F and %5C in a path mean
	Limits         LimitSettings          // changes need a restart
	AccessLogPeers []netip.Prefix         // empty: any peer; changes need a restart
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

// LimitSettings is the compiled limits section.
type LimitSettings struct {
	MaxRequestBytes      int
	MaxConcurrentStreams uint32
	// MemoryLimit is "auto" (follow the container's limit unless
	// GOMEMLIMIT is set), "off", or a size in bytes in MemoryLimitBytes.
	MemoryLimit      string
	MemoryLimitBytes int64
}

// RateLimitSettings is the compiled rateLimit section.
type RateLimitSettings struct {
	Store         string // memory or redis
	MemoryMaxKeys int    // bound on the memory store (and the Redis store's local fallback)
	Redis         ratelimit.RedisOptions
	FailureMode   ratelimit.FailureMode
	FallbackShare float64
}

// AnalyticsSettings is the compiled analytics section.
type AnalyticsSettings struct {
	Events      string // "" (none), "stdout" or a file path
	FileMaxMB   int
	FileBackups int
}

// TracingSettings is the compiled tracing section.
type TracingSettings struct {
	OTLPEndpoint string // "": off
	SampleRatio  float64
}

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

// Load reads and compiles the config file at path. ${VAR} is taken from
// the process environment.
func Load(path string) (*Snapshot, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	snap, err := compileIn(data, os.LookupEnv, filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	snap.Source = path
	return snap, nil
}

// Compile parses and validates a config document. The error, if any, is
// Problems: every problem found, each with its YAML path.
func Compile(data []byte, lookupEnv func(string) (string, bool)) (*Snapshot, error) {
	return compileIn(data, lookupEnv, "")
}

// compileIn compiles with relative file paths (JWKS files, keys, CA
// bundles) taken relative to baseDir, the config file's directory.
func compileIn(data []byte, lookupEnv func(string) (string, bool), baseDir string) (*Snapshot, error) {
	var f File
	lines, problems, dropped, err := parse(data, &f, lookupEnv)
	if err != nil {
		return nil, err
	}
	c := compiler{lines: lines, decodeFailed: decodeFailed(problems), baseDir: baseDir, now: time.Now()}
	snap := c.compile(&f)
	// Validation runs on whatever decoded, so that one run reports every
	// problem; it stays quiet about values that failed to decode.
	for _, p := range c.problems {
		if !c.decodeFailed(p.Path) {
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 || dropped > 0 {
		slices.SortStableFunc(problems, func(a, b Problem) int {
			return cmp.Compare(lineOrLast(a.Line), lineOrLast(b.Line))
		})
		return nil, capProblems(problems, dropped)
	}
	snap.Digest = sha256.Sum256(data)
	snap.LoadedAt = time.Now()
	return snap, nil
}

// decodeFailed returns a test of whether a path, or a list or mapping
// that contains it, failed to decode.
func decodeFailed(ps Problems) func(path string) bool {
	failed := make(map[string]bool, len(ps))
	for _, p := range ps {
		failed[p.Path] = true
	}
	return func(path string) bool {
		for {
			if failed[path] {
				return true
			}
			i := strings.LastIndexAny(path, ".[")
			if i <= 0 {
				return false
			}
			path = path[:i]
		}
	}
}

func lineOrLast(line int) int {
	if line == 0 {
		return math.MaxInt
	}
	return line
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
