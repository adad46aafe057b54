package xdssource

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/controlplane"
	"github.com/tollgate/tollgate/internal/keys"
	"github.com/tollgate/tollgate/internal/model"
	"github.com/tollgate/tollgate/internal/resources"
	"github.com/tollgate/tollgate/internal/testpki"
)

// plane runs a control plane in process and returns its xDS address.
func plane(t *testing.T, dir, resources string) string {
	t.Helper()
	return planeWith(t, dir, resources, "127.0.0.1:0", config.TLSFiles{})
}

// planeWith runs a control plane listening for xDS at xdsAddr with tls.
func planeWith(t *testing.T, dir, resources, xdsAddr string, tls config.TLSFiles) string {
	t.Helper()
	writeFile(t, filepath.Join(dir, "resources.yaml"), resources)
	addr := make(chan string, 2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- controlplane.Run(ctx, controlplane.Options{
			Config: &config.ControlPlaneConfig{
				Listen: config.ControlPlaneListen{XDS: xdsAddr, API: "127.0.0.1:0"},
				TLS:    tls,
				Source: config.Source{File: filepath.Join(dir, "resources.yaml")},
			},
			Listening: func(role, a string) {
				if role == "xds" {
					addr <- a
				}
			},
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case a := <-addr:
		return a
	case err := <-done:
		t.Fatalf("control plane stopped: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("control plane did not listen")
	}
	return ""
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// replica runs a client against addr until the test ends.
func replica(t *testing.T, addr, stateDir, baseDir string) (*Client, *model.Store) {
	t.Helper()
	return runClient(t, Options{Address: addr, Node: "r1", StateDir: stateDir, BaseDir: baseDir, ResyncAfterNack: 50 * time.Millisecond})
}

// runClient runs a client with o (quick backoff, its own store) until
// the test ends.
func runClient(t *testing.T, o Options) (*Client, *model.Store) {
	t.Helper()
	o.Store = model.NewStore(&model.Snapshot{})
	o.BackoffBase, o.BackoffMax = 10*time.Millisecond, 50*time.Millisecond
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return c, o.Store
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const appAndKeys = `applications:
  - {id: shop}
apiKeys:
  - {application: shop, name: one, sha256: %064x}
`

// TestPersistedStateServedWithoutControlPlane: what a replica applied is
// written to its state directory, and a replica started with that
// directory and no control plane serves it.
func TestPersistedStateServedWithoutControlPlane(t *testing.T) {
	stateDir := t.TempDir()
	addr := plane(t, t.TempDir(), fmt.Sprintf(appAndKeys, 1))
	c, store := replica(t, addr, stateDir, t.TempDir())
	<-c.Loaded()
	if store.Load().APIKeys.Len() != 1 {
		t.Fatal("the synced key is not served")
	}
	eventually(t, "the state to be written", func() bool {
		h, err := readState(stateDir)
		return err == nil && h != nil && len(h[resources.ApiKey]) == 1
	})

	// Nothing listens here: the replica has only its state.
	store2 := model.NewStore(&model.Snapshot{})
	offline, err := New(Options{Address: "127.0.0.1:1", Node: "r2", StateDir: stateDir, Store: store2})
	if err != nil {
		t.Fatal(err)
	}
	ok, err := offline.LoadState()
	if err != nil || !ok {
		t.Fatalf("LoadState = %v, %v", ok, err)
	}
	select {
	case <-offline.Loaded():
	default:
		t.Fatal("a replica serving its state is not loaded")
	}
	if store2.Load().APIKeys.Len() != 1 || offline.Status().Source != "state" {
		t.Fatalf("persisted state not served: %d keys, source %q", store2.Load().APIKeys.Len(), offline.Status().Source)
	}
}

// TestDamagedStateIsNotServed: a truncated state file is reported and
// left unused.
func TestDamagedStateIsNotServed(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf(statePattern, 3)), []byte{0x0a, 0xff}, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{Address: "127.0.0.1:1", Node: "r", StateDir: dir, Store: model.NewStore(&model.Snapshot{})})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := c.LoadState(); ok || err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("LoadState = %v, %v; want a damaged-state error", ok, err)
	}
}

func jwks(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := keys.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	return s.PublicJWKS()
}

// TestRefusedResponseKeepsStateAndResyncs: an issuer whose key file the
// replica does not have is refused (the old state kept, the refusal in
// the status); the good issuer that travelled in the same response
// arrives once the bad one is gone, through the resync.
func TestRefusedResponseKeepsStateAndResyncs(t *testing.T) {
	cpDir, replicaDir := t.TempDir(), t.TempDir()
	good := jwks(t)
	for _, f := range []struct{ dir, name string }{{cpDir, "good.json"}, {cpDir, "bad.json"}, {replicaDir, "good.json"}} {
		if err := os.WriteFile(filepath.Join(f.dir, f.name), good, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	issuers := `issuers:
  - {name: good, issuer: "https://good.example", jwksFile: good.json}
  - {name: bad, issuer: "https://bad.example", jwksFile: bad.json}
`
	addr := plane(t, cpDir, fmt.Sprintf(appAndKeys, 1)+issuers)
	c, store := replica(t, addr, "", replicaDir)
	eventually(t, "the issuers to be refused", func() bool {
		n := c.Status().LastNack
		return n != nil && n.Type == "Issuer" && strings.Contains(n.Error, "bad.json")
	})
	eventually(t, "the other kinds to be applied", func() bool { return store.Load().APIKeys.Len() == 1 })
	if len(store.Load().IssuerList) != 0 {
		t.Fatal("a refused response changed the served issuers")
	}

	writeFile(t, filepath.Join(cpDir, "resources.yaml"), fmt.Sprintf(appAndKeys, 1)+
		"issuers:\n  - {name: good, issuer: \"https://good.example\", jwksFile: good.json}\n")
	eventually(t, "the good issuer to arrive", func() bool {
		l := store.Load().IssuerList
		return len(l) == 1 && l[0].Issuer == "https://good.example"
	})
}

// TestUnmatchedAllowWaitsForEveryKind: until every kind has arrived once,
// an API may be missing, so unmatched requests are denied whatever the
// replica's unmatched setting; once in step, the setting applies.
func TestUnmatchedAllowWaitsForEveryKind(t *testing.T) {
	store := model.NewStore(&model.Snapshot{})
	c, err := New(Options{Address: "127.0.0.1:1", Node: "r", Store: store, Settings: model.Settings{UnmatchedAllow: true}})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := c.compile(held{}, compiled{}, false)
	if err != nil || snap.UnmatchedAllow {
		t.Fatalf("partial sync: UnmatchedAllow = %v (%v), want false", snap != nil && snap.UnmatchedAllow, err)
	}
	c.markSynced()
	if !store.Load().UnmatchedAllow {
		t.Fatal("in step with the control plane, unmatched: allow does not apply")
	}
}

// TestMutualTLS: a control plane that requires client certificates
// serves a replica that presents one signed by its CA, and refuses one
// that presents none.
func TestMutualTLS(t *testing.T) {
	ca, err := testpki.NewCA("tollgate-xds-ca")
	if err != nil {
		t.Fatal(err)
	}
	pki := t.TempDir()
	caFile := filepath.Join(pki, "ca.crt")
	if err := testpki.WriteFile(caFile, ca.Cert); err != nil {
		t.Fatal(err)
	}
	serverCert, serverKey := ca.WriteKeyPair(t, testpki.Leaf{CommonName: "controlplane", DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, pki, "server")
	clientCert, clientKey := ca.WriteKeyPair(t, testpki.Leaf{CommonName: "replica"}, pki, "client")

	xds := planeWith(t, t.TempDir(), fmt.Sprintf(appAndKeys, 1), "localhost:0",
		config.TLSFiles{CAFile: caFile, CertFile: serverCert, KeyFile: serverKey})
	_, port, _ := net.SplitHostPort(xds)
	target := "localhost:" + port
	run := func(tlsFiles TLS) (*Client, *model.Store) {
		return runClient(t, Options{Address: target, TLS: tlsFiles, Node: "r"})
	}
	_, store := run(TLS{CAFile: caFile, CertFile: clientCert, KeyFile: clientKey})
	eventually(t, "the key over mutual TLS", func() bool { return store.Load().APIKeys != nil && store.Load().APIKeys.Len() == 1 })

	anonymous, _ := run(TLS{CAFile: caFile})
	eventually(t, "the handshake to fail", func() bool { return anonymous.Status().LastError != "" })
	if s := anonymous.Status(); s.Synced || s.Resources["ApiKey"] != 0 {
		t.Fatalf("a replica without a client certificate was served: %+v", s)
	}
}

// TestKeyChangesAreIncrementalAndJournalled: a key added and one removed
// are applied without recompiling the rest (the new snapshot shares the
// old one's catalog and applications), and a replica started from the
// state directory afterwards holds exactly the new keys.
func TestKeyChangesAreIncrementalAndJournalled(t *testing.T) {
	cpDir, stateDir := t.TempDir(), t.TempDir()
	twoKeys := fmt.Sprintf(appAndKeys, 1) + fmt.Sprintf("  - {application: shop, name: two, sha256: %064x}\n", 2)
	addr := plane(t, cpDir, twoKeys)
	c, store := replica(t, addr, stateDir, t.TempDir())
	<-c.Loaded()
	before := store.Load()
	writeFile(t, filepath.Join(cpDir, "resources.yaml"),
		fmt.Sprintf(appAndKeys, 1)+fmt.Sprintf("  - {application: shop, name: three, sha256: %064x}\n", 3))
	eventually(t, "the key change", func() bool {
		k := store.Load().APIKeys
		return k.Len() == 2 && has(k, digestN(t, 3)) && !has(k, digestN(t, 2))
	})
	after := store.Load()
	if after.Catalog != before.Catalog || reflect.ValueOf(after.Applications).Pointer() != reflect.ValueOf(before.Applications).Pointer() {
		t.Error("a key change recompiled the catalog or the applications")
	}
	eventually(t, "the change persisted", func() bool {
		h, err := readState(stateDir)
		if err != nil || h == nil {
			return false
		}
		_, three := h[resources.ApiKey][fmt.Sprintf("%064x", 3)]
		return three
	})
	restarted, err := New(Options{Address: "127.0.0.1:1", Node: "r", StateDir: stateDir, Store: model.NewStore(&model.Snapshot{})})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := restarted.LoadState(); !ok || err != nil {
		t.Fatalf("LoadState = %v, %v", ok, err)
	}
	if k := restarted.o.Store.Load().APIKeys; k.Len() != 2 || has(k, digestN(t, 2)) || !has(k, digestN(t, 3)) {
		t.Fatal("the restarted replica does not hold the journalled keys")
	}
}

func has(x *keys.APIKeyIndex, d keys.Digest) bool {
	_, ok := x.Get(d)
	return ok
}

func digestN(t *testing.T, i int) keys.Digest {
	t.Helper()
	d, err := keys.ParseDigest(fmt.Sprintf("%064x", i))
	if err != nil {
		t.Fatal(err)
	}
	return d
}
