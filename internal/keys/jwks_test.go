package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func testRSA(t *testing.T) *rsa.PrivateKey {
	rsaOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatal(err)
		}
	})
	return rsaKey
}

func ecKey(t *testing.T, c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// jwk is one published key: kid, optional alg and use, and the key.
type jwk struct {
	kid, alg, use string
	key           crypto.PublicKey
}

func jwksDoc(t *testing.T, keys ...jwk) []byte {
	t.Helper()
	var set jwkset.JWKSMarshal
	for _, k := range keys {
		j, err := jwkset.NewJWKFromKey(k.key, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{
			KID: k.kid, ALG: jwkset.ALG(k.alg), USE: jwkset.USE(k.use)}})
		if err != nil {
			t.Fatal(err)
		}
		set.Keys = append(set.Keys, j.Marshal())
	}
	data, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseJWKS(t *testing.T) {
	ec := ecKey(t, elliptic.P256())
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	doc := jwksDoc(t,
		jwk{kid: "rsa", key: &testRSA(t).PublicKey},
		jwk{kid: "ec", alg: "ES256", use: "sig", key: &ec.PublicKey},
		jwk{kid: "ed", key: ed.Public()},
		jwk{kid: "enc", use: "enc", key: &ec.PublicKey}, // encryption key: skipped
	)
	// a symmetric key in the set is never a verification key
	doc = []byte(strings.Replace(string(doc), `"keys":[`, `"keys":[{"kty":"oct","kid":"hmac","k":"c2VjcmV0"},`, 1))
	set, err := ParseJWKS(doc)
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != 3 {
		t.Fatalf("%d usable keys, want 3", set.Len())
	}
	cases := []struct {
		kid, alg string
		ok       bool
	}{
		{"rsa", "RS256", true}, {"rsa", "PS512", true}, {"rsa", "ES256", false}, {"rsa", "HS256", false},
		{"ec", "ES256", true}, {"ec", "ES384", false}, {"ec", "RS256", false},
		{"ed", "EdDSA", true}, {"ed", "ES256", false},
		{"enc", "ES256", false}, {"hmac", "HS256", false}, {"missing", "RS256", false},
		{"", "RS256", false}, // no kid and more than one key
	}
	for _, tc := range cases {
		if _, ok := set.Find(tc.kid, tc.alg); ok != tc.ok {
			t.Errorf("Find(%q, %s) = %v, want %v", tc.kid, tc.alg, ok, tc.ok)
		}
	}

	single, err := ParseJWKS(jwksDoc(t, jwk{key: &ec.PublicKey}))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := single.Find("", "ES256"); !ok {
		t.Error("a token without kid does not match the only key of a set")
	}

	for name, bad := range map[string][]byte{
		"not JSON":     []byte("nope"),
		"no keys":      []byte(`{"keys":[]}`),
		"only oct":     []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`),
		"too large":    []byte(`{"keys":[` + strings.Repeat(" ", MaxJWKSBytes) + `]}`),
		"alg mismatch": jwksDoc(t, jwk{kid: "x", alg: "RS256", key: &ec.PublicKey}),
	} {
		_, err := ParseJWKS(bad)
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "%!") {
			t.Errorf("%s: error %q has a formatting fault", name, err)
		}
	}
	if _, err := ParseJWKS([]byte(`{"keys":[]}`)); err == nil || err.Error() != "JWK Set has no keys" {
		t.Errorf("empty set: %v", err)
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	weak, err := ParseJWKS(jwksDoc(t, jwk{kid: "weak", key: &small.PublicKey}, jwk{kid: "ec", key: &ec.PublicKey}))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := weak.Find("weak", "RS256"); ok {
		t.Error("a 1024-bit RSA key verifies")
	}
}

// idp is a local HTTPS JWKS endpoint whose document tests can change.
type idp struct {
	*httptest.Server
	doc    atomic.Pointer[[]byte]
	down   atomic.Bool
	hits   atomic.Int64
	caFile string
}

func newIDP(t *testing.T, doc []byte) *idp {
	p := &idp{}
	p.doc.Store(&doc)
	p.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		if p.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(*p.doc.Load())
	}))
	t.Cleanup(p.Close)
	p.caFile = filepath.Join(t.TempDir(), "ca.pem")
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.Certificate().Raw})
	if err := os.WriteFile(p.caFile, cert, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *idp) serve(doc []byte) { p.doc.Store(&doc) }

// results records the observed loads.
type results struct {
	ok, failed atomic.Int64
}

func (r *results) observe(_ string, ok bool) {
	if ok {
		r.ok.Add(1)
	} else {
		r.failed.Add(1)
	}
}

func startSource(t *testing.T, spec JWKSSpec, r *results) *JWKS {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel) // after Bind(nil): cleanups run last first
	m := NewJWKSManager(ctx, nil, r.observe)
	iss := &Issuer{Name: spec.Issuer, JWKS: spec}
	if err := m.Bind([]*Issuer{iss}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Bind(nil) })
	<-iss.Keys.Loaded()
	return iss.Keys
}

func TestJWKSRotation(t *testing.T) {
	k1, k2 := ecKey(t, elliptic.P256()), ecKey(t, elliptic.P256())
	p := newIDP(t, jwksDoc(t, jwk{kid: "k1", key: &k1.PublicKey}))
	var r results
	src := startSource(t, JWKSSpec{Issuer: "idp", URI: p.URL, CAFile: p.caFile,
		RefreshInterval: time.Hour, MinRefreshInterval: 50 * time.Millisecond}, &r)
	ctx := context.Background()

	if _, _, err := src.Key(ctx, "k1", "ES256"); err != nil {
		t.Fatalf("k1: %v", err)
	}
	// The IdP adds k2: the first token with kid k2 triggers an early refresh.
	p.serve(jwksDoc(t, jwk{kid: "k1", key: &k1.PublicKey}, jwk{kid: "k2", key: &k2.PublicKey}))
	waitFor(t, "the early refresh to be allowed", func() bool {
		_, _, err := src.Key(ctx, "k2", "ES256")
		return err == nil
	})
	if _, _, err := src.Key(ctx, "k1", "ES256"); err != nil {
		t.Fatalf("old kid after rotation: %v", err)
	}
	// The IdP drops k1: it keeps working until the set is refreshed...
	p.serve(jwksDoc(t, jwk{kid: "k2", key: &k2.PublicKey}))
	if _, _, err := src.Key(ctx, "k1", "ES256"); err != nil {
		t.Fatalf("k1 before the refresh: %v", err)
	}
	// ...which an unknown kid brings about.
	waitFor(t, "k1 to be removed", func() bool {
		_, _, _ = src.Key(ctx, "k3", "ES256")
		_, _, err := src.Key(ctx, "k1", "ES256")
		return err == ErrUnknownKey
	})

	// The IdP goes down: the last good keys stay.
	p.down.Store(true)
	failedBefore := r.failed.Load()
	waitFor(t, "a failed refresh", func() bool {
		_, _, _ = src.Key(ctx, "k9", "ES256")
		return r.failed.Load() > failedBefore
	})
	if _, _, err := src.Key(ctx, "k2", "ES256"); err != nil {
		t.Fatalf("k2 while the IdP is down: %v", err)
	}
	if src.LastSuccess().IsZero() || r.ok.Load() < 2 {
		t.Fatalf("successes %d, last %v", r.ok.Load(), src.LastSuccess())
	}
}

func TestJWKSUnknownKidIsRateLimited(t *testing.T) {
	k1 := ecKey(t, elliptic.P256())
	p := newIDP(t, jwksDoc(t, jwk{kid: "k1", key: &k1.PublicKey}))
	var r results
	src := startSource(t, JWKSSpec{Issuer: "idp", URI: p.URL, CAFile: p.caFile,
		RefreshInterval: time.Hour, MinRefreshInterval: time.Hour}, &r)
	before := p.hits.Load()
	for i := range 50 {
		if _, _, err := src.Key(context.Background(), "junk-"+string(rune('a'+i%26)), "ES256"); err != ErrUnknownKey {
			t.Fatalf("junk kid: %v", err)
		}
	}
	// The first load happened at start; no junk kid may cause another
	// within MinRefreshInterval.
	if n := p.hits.Load() - before; n != 0 {
		t.Fatalf("50 junk kids caused %d fetches, want 0 within the minimum interval", n)
	}
}

func TestJWKSScheduledRefreshAndTLS(t *testing.T) {
	k1, k2 := ecKey(t, elliptic.P256()), ecKey(t, elliptic.P256())
	p := newIDP(t, jwksDoc(t, jwk{kid: "k1", key: &k1.PublicKey}))
	var r results
	src := startSource(t, JWKSSpec{Issuer: "idp", URI: p.URL, CAFile: p.caFile,
		RefreshInterval: 50 * time.Millisecond, MinRefreshInterval: time.Hour}, &r)
	p.serve(jwksDoc(t, jwk{kid: "k2", key: &k2.PublicKey}))
	waitFor(t, "the scheduled refresh", func() bool { return src.Current().HasKeyID("k2") })

	// Without the CA bundle the endpoint's certificate is not trusted.
	var r2 results
	untrusted := startSource(t, JWKSSpec{Issuer: "idp2", URI: p.URL, RefreshInterval: time.Hour, MinRefreshInterval: time.Hour}, &r2)
	if untrusted.Current() != nil || r2.failed.Load() != 1 {
		t.Fatalf("an untrusted endpoint was accepted (failed=%d)", r2.failed.Load())
	}
}

func TestJWKSFileIsWatched(t *testing.T) {
	k1, k2 := ecKey(t, elliptic.P256()), ecKey(t, elliptic.P256())
	path := filepath.Join(t.TempDir(), "jwks.json")
	write := func(data []byte) {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(jwksDoc(t, jwk{kid: "k1", key: &k1.PublicKey}))
	var r results
	src := startSource(t, JWKSSpec{Issuer: "file", File: path, RefreshInterval: time.Hour, MinRefreshInterval: time.Second}, &r)
	if !src.Current().HasKeyID("k1") {
		t.Fatal("k1 not loaded")
	}
	write(jwksDoc(t, jwk{kid: "k2", key: &k2.PublicKey}))
	waitFor(t, "the file change", func() bool { return src.Current().HasKeyID("k2") })
	write([]byte("broken"))
	waitFor(t, "the failed load", func() bool { return r.failed.Load() == 1 })
	if !src.Current().HasKeyID("k2") {
		t.Fatal("a broken file replaced the last good keys")
	}
}

func TestNextFetch(t *testing.T) {
	interval := 10 * time.Minute
	wait, b := nextFetch(0, false, interval)
	if b != 0 || wait < 9*time.Minute || wait > 11*time.Minute {
		t.Fatalf("after success: wait %v backoff %v", wait, b)
	}
	var waits []time.Duration
	for range 12 {
		wait, b = nextFetch(b, true, interval)
		waits = append(waits, wait)
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300}
	for i, w := range want {
		if waits[i] != w*time.Second {
			t.Fatalf("backoff sequence %v", waits)
		}
	}
	if wait, _ := nextFetch(0, true, 2*time.Second); wait != time.Second {
		t.Fatalf("first backoff %v", wait)
	}
	if wait, _ := nextFetch(8*time.Second, true, 5*time.Second); wait != 5*time.Second {
		t.Fatalf("backoff above the interval: %v", wait)
	}
}

func TestSigner(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, block *pem.Block) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, append([]byte("comment before the key\n"), pem.EncodeToMemory(block)...), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	ec := ecKey(t, elliptic.P384())
	ecDER, _ := x509.MarshalECPrivateKey(ec)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKCS8PrivateKey(ed)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	cases := []struct {
		path string
		alg  string // "" = must fail
	}{
		{write("ec.pem", &pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}), "ES384"},
		{write("rsa.pem", &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(testRSA(t))}), "RS256"},
		{write("ed.pem", &pem.Block{Type: "PRIVATE KEY", Bytes: edDER}), "EdDSA"},
		{write("weak.pem", &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(small)}), ""},
		{write("cert.pem", &pem.Block{Type: "CERTIFICATE", Bytes: []byte("x")}), ""},
		{filepath.Join(dir, "missing.pem"), ""},
	}
	for _, tc := range cases {
		s, err := LoadSigner(tc.path)
		if tc.alg == "" {
			if err == nil {
				t.Errorf("%s: accepted", filepath.Base(tc.path))
			}
			continue
		}
		if err != nil || s.Alg() != tc.alg {
			t.Fatalf("%s: %v, alg %v", filepath.Base(tc.path), err, s)
		}
		set, err := ParseJWKS(s.PublicJWKS())
		if err != nil {
			t.Fatalf("%s: published JWKS: %v", tc.alg, err)
		}
		if _, ok := set.Find(s.KeyID(), s.Alg()); !ok {
			t.Fatalf("%s: the published JWKS does not hold kid %s", tc.alg, s.KeyID())
		}
	}
}

// TestThumbprint checks the kid against the example of RFC 7638 §3.1.
func TestThumbprint(t *testing.T) {
	m := jwkset.JWKMarshal{KTY: jwkset.KtyRSA, E: "AQAB",
		N: "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
	}
	if got := thumbprint(m); got != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Fatalf("thumbprint %s", got)
	}
}
