package keys

import (
	"context"
	"crypto/elliptic"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/filewatch"
	"github.com/tollgate/tollgate/internal/filewatch/filewatchtest"
)

// replaceFile writes data next to path and renames it into place.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func inotifyInstances(t *testing.T) int {
	t.Helper()
	n, err := filewatchtest.InotifyInstances()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func newFileManager(ctx context.Context, r *results) *JWKSManager {
	return NewJWKSManagerWithOptions(ctx, JWKSManagerOptions{
		Observe:   r.observe,
		FileWatch: filewatch.Options{Debounce: 20 * time.Millisecond},
	})
}

// TestJWKSFileSourcesShareOneWatcher binds more jwksFile issuers than
// Linux's default limit of 128 inotify instances per user, and checks
// that they load, share one instance, and still see a change.
func TestJWKSFileSourcesShareOneWatcher(t *testing.T) {
	const issuerCount = 200
	k1, k2 := ecKey(t, elliptic.P256()), ecKey(t, elliptic.P256())
	oldDoc, newDoc := jwksDoc(t, jwk{kid: "k1", key: &k1.PublicKey}), jwksDoc(t, jwk{kid: "k2", key: &k2.PublicKey})
	root := t.TempDir()
	issuers := make([]*Issuer, issuerCount)
	for i := range issuers {
		// Half share a directory, half have one each.
		path := filepath.Join(root, "shared", fmt.Sprintf("idp-%d.json", i))
		if i%2 == 1 {
			path = filepath.Join(root, fmt.Sprintf("idp-%d", i), "jwks.json")
		}
		replaceFile(t, path, oldDoc)
		issuers[i] = &Issuer{Name: fmt.Sprint("idp-", i), JWKS: JWKSSpec{Issuer: fmt.Sprint("idp-", i), File: path}}
	}

	before := inotifyInstances(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var r results
	m := newFileManager(ctx, &r)
	if err := m.Bind(issuers); err != nil {
		t.Fatalf("binding %d file issuers: %v", issuerCount, err)
	}
	for _, iss := range issuers {
		if !iss.Keys.Current().HasKeyID("k1") {
			t.Fatalf("%s: keys not loaded", iss.Name)
		}
	}
	if got := inotifyInstances(t) - before; got != 1 {
		t.Errorf("%d file issuers hold %d inotify instances, want 1", issuerCount, got)
	}

	for _, i := range []int{136, 137} { // one in the shared directory, one not
		replaceFile(t, issuers[i].JWKS.File, newDoc)
		waitFor(t, "the change of "+issuers[i].Name, func() bool { return issuers[i].Keys.Current().HasKeyID("k2") })
	}
	if !issuers[138].Keys.Current().HasKeyID("k1") {
		t.Error("an unchanged file in the shared directory lost its keys")
	}

	cancel()
	waitFor(t, "the watcher to close with the manager's context", func() bool { return inotifyInstances(t) == before })
}

// TestJWKSManagerWatchesFilesOnlyIfAny checks that the shared watcher is
// not started for endpoint-only issuers.
func TestJWKSManagerWatchesFilesOnlyIfAny(t *testing.T) {
	k1 := ecKey(t, elliptic.P256())
	p := newIDP(t, jwksDoc(t, jwk{kid: "k1", key: &k1.PublicKey}))
	before := inotifyInstances(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var r results
	m := newFileManager(ctx, &r)
	iss := &Issuer{Name: "idp", JWKS: JWKSSpec{Issuer: "idp", URI: p.URL, CAFile: p.caFile,
		RefreshInterval: time.Hour, MinRefreshInterval: time.Hour}}
	if err := m.Bind([]*Issuer{iss}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Bind(nil) }()
	if got := inotifyInstances(t) - before; got != 0 {
		t.Errorf("an endpoint issuer started %d inotify instances, want 0", got)
	}
}

// TestJWKSUnboundFileSourceStops rebinds without one of two file issuers
// and checks that its file is no longer read.
func TestJWKSUnboundFileSourceStops(t *testing.T) {
	k1, k2 := ecKey(t, elliptic.P256()), ecKey(t, elliptic.P256())
	oldDoc, newDoc := jwksDoc(t, jwk{kid: "k1", key: &k1.PublicKey}), jwksDoc(t, jwk{kid: "k2", key: &k2.PublicKey})
	dir := t.TempDir()
	dropped := &Issuer{Name: "dropped", JWKS: JWKSSpec{Issuer: "dropped", File: filepath.Join(dir, "dropped.json")}}
	kept := &Issuer{Name: "kept", JWKS: JWKSSpec{Issuer: "kept", File: filepath.Join(dir, "kept.json")}}
	replaceFile(t, dropped.JWKS.File, oldDoc)
	replaceFile(t, kept.JWKS.File, oldDoc)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var r results
	m := newFileManager(ctx, &r)
	if err := m.Bind([]*Issuer{dropped, kept}); err != nil {
		t.Fatal(err)
	}
	keptAgain := &Issuer{Name: "kept", JWKS: kept.JWKS}
	if err := m.Bind([]*Issuer{keptAgain}); err != nil {
		t.Fatal(err)
	}
	if keptAgain.Keys != kept.Keys || len(m.Sources()) != 1 {
		t.Fatalf("rebinding: kept source reused %v, %d sources", keptAgain.Keys == kept.Keys, len(m.Sources()))
	}

	// The dropped file changes first: had it still been watched, it would
	// have been re-read by the time the kept one has been re-read twice.
	replaceFile(t, dropped.JWKS.File, newDoc)
	replaceFile(t, kept.JWKS.File, newDoc)
	waitFor(t, "the kept issuer's change", func() bool { return kept.Keys.Current().HasKeyID("k2") })
	replaceFile(t, kept.JWKS.File, oldDoc)
	waitFor(t, "the kept issuer's second change", func() bool { return kept.Keys.Current().HasKeyID("k1") })
	if dropped.Keys.Current().HasKeyID("k2") {
		t.Error("an unbound source still re-read its file")
	}
}
