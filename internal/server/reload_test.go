package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate/internal/keys"
)

// liveHeap is the heap a full collection finds live.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC() // the second one frees what the first one's finalizers let go
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// reloadsSucceeded reads tollgate_config_reloads_total{result="success"}.
func reloadsSucceeded(t *testing.T, admin string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(body), "\n") {
		if strings.HasPrefix(line, `tollgate_config_reloads_total{result="success"}`) {
			return strings.Fields(line)[1]
		}
	}
	return "0"
}

// TestNoGrowthAcrossReloads reloads a config of many keys and
// applications again and again under JWT traffic, each with tokens of
// its own, and checks that the live heap does not grow with the reloads:
// nothing (a closure, a cached verdict) keeps an old snapshot alive.
func TestNoGrowthAcrossReloads(t *testing.T) {
	examples, err := filepath.Abs("../../examples/keys")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := keys.LoadSigner(filepath.Join(examples, "test-issuer.key"))
	if err != nil {
		t.Fatal(err)
	}
	const apps, keysPerApp = 5000, 2
	var cfg strings.Builder
	cfg.WriteString(listenAny)
	fmt.Fprintf(&cfg, "issuers:\n  - {name: idp, issuer: https://idp.test, jwksFile: %q}\n", filepath.Join(examples, "test-issuer.jwks.json"))
	cfg.WriteString("apis:\n  - {id: pets, basePath: /pets, security: [jwt, apiKey], operations: [{path: /**}]}\napplications:\n")
	for i := range apps {
		fmt.Fprintf(&cfg, "  - {id: app%d, clientIds: [client%d]}\n", i, i)
	}
	cfg.WriteString("subscriptions:\n")
	for i := range apps {
		fmt.Fprintf(&cfg, "  - {application: app%d, api: pets, state: active}\n", i)
	}
	cfg.WriteString("apiKeys:\n")
	for i := range apps * keysPerApp {
		fmt.Fprintf(&cfg, "  - {application: app%d, sha256: %s}\n", i%apps, keys.HashAPIKey(fmt.Sprint("key", i)))
	}

	before := liveHeap()
	signals := make(chan os.Signal, 1)
	r := startWith(t, cfg.String(), func(o *Options) { o.Signals = signals })
	admin, front := r.addr("admin"), ""
	poll(t, "ready", func() bool { return get(t, "http://"+admin+"/readyz") == 200 })
	poll(t, "the HTTP front end", func() bool { front = r.addr("http"); return front != "" })
	traffic := func(round int) {
		t.Helper()
		for i := range 100 {
			token, err := signer.Sign(jwt.MapClaims{"iss": "https://idp.test", "client_id": fmt.Sprint("client", i*7%apps),
				"exp": time.Now().Add(time.Hour).Unix(), "jti": fmt.Sprintf("r%d-%d", round, i)})
			if err != nil {
				t.Fatal(err)
			}
			if got := get(t, "http://"+front+"/pets/x", "Authorization", "Bearer "+token); got != 200 {
				t.Fatalf("round %d: a valid token got %d, want 200", round, got)
			}
		}
	}
	traffic(0)
	loaded := liveHeap()
	if loaded <= before {
		t.Fatalf("live heap %d after the load, not above %d before it", loaded, before)
	}
	model := loaded - before // what one loaded config costs, at most
	const reloads = 3
	for round := 1; round <= reloads; round++ {
		signals <- syscall.SIGHUP // a forced reload: compiled whole, a new snapshot
		want := fmt.Sprint(round)
		poll(t, "reload "+want, func() bool { return reloadsSucceeded(t, admin) == want })
		traffic(round)
	}
	after := liveHeap()
	t.Logf("live heap: %d before start, %d loaded, %d after %d reloads", before, loaded, after, reloads)
	// A snapshot kept per reload would add about model each time.
	if after > loaded && after-loaded > model/2 {
		t.Errorf("live heap grew by %d over %d reloads (the loaded config costs %d)", after-loaded, reloads, model)
	}
}

// startWith is start with Options adjusted by opt.
func startWith(t *testing.T, cfg string, opt func(*Options)) *running {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{addrs: map[string]string{}, stop: cancel, done: make(chan error, 1)}
	o := Options{ConfigPath: path, Version: "test", Listening: func(role, addr string) {
		r.mu.Lock()
		r.addrs[role] = addr
		r.mu.Unlock()
	}}
	opt(&o)
	go func() { r.done <- Run(ctx, o) }()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	poll(t, "the admin listener", func() bool { return r.addr("admin") != "" })
	return r
}
