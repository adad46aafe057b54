package server

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testredis"
)

// running is a replica run in process.
type running struct {
	mu    sync.Mutex
	addrs map[string]string
	stop  context.CancelFunc
	done  chan error
}

func (r *running) addr(role string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addrs[role]
}

func start(t *testing.T, cfg string) *running {
	t.Helper()
	return startWith(t, cfg, func(*Options) {})
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func get(t *testing.T, url string, header ...string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

const listenAny = "listen: {grpc: \"127.0.0.1:0\", http: \"127.0.0.1:0\", admin: \"127.0.0.1:0\"}\n"

// TestRunServesAndStops drives a replica with a file source in process:
// ready, deciding, and stopped promptly when its context ends.
func TestRunServesAndStops(t *testing.T) {
	r := start(t, listenAny+`apis:
  - {id: open, basePath: /open, security: [none], operations: [{path: /**}]}
`)
	poll(t, "ready", func() bool { return get(t, "http://"+r.addr("admin")+"/readyz") == 200 })
	if got := get(t, "http://"+r.addr("http")+"/open/x"); got != 200 {
		t.Errorf("public API: %d, want 200", got)
	}
	if got := get(t, "http://"+r.addr("http")+"/closed"); got != 404 {
		t.Errorf("unmatched: %d, want 404", got)
	}
	if got := get(t, "http://"+r.addr("admin")+"/controlplane"); got != 404 {
		t.Errorf("/controlplane with a file source: %d, want 404", got)
	}
	r.stop()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		r.done <- nil // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// TestLiveButNotReadyWithoutState: a replica whose control plane is away
// and that has no persisted state answers liveness, reports not ready,
// and denies everything, even with unmatched: allow.
func TestLiveButNotReadyWithoutState(t *testing.T) {
	port := testredis.FreePort(t) // nothing listens there
	r := start(t, listenAny+fmt.Sprintf("unmatched: allow\ncontrolPlane: {address: \"127.0.0.1:%d\", node: r1, stateDir: %q}\n",
		port, t.TempDir()))
	admin := "http://" + r.addr("admin")
	if got := get(t, admin+"/healthz"); got != 200 {
		t.Fatalf("/healthz: %d, want 200", got)
	}
	poll(t, "the HTTP front end", func() bool { return r.addr("http") != "" })
	if got := get(t, admin+"/readyz"); got != 503 {
		t.Errorf("/readyz with no state: %d, want 503", got)
	}
	if got := get(t, "http://"+r.addr("http")+"/anything"); got != 404 {
		t.Errorf("a request with no state loaded: %d, want a 404 denial", got)
	}
	if got := get(t, admin+"/controlplane"); got != 200 {
		t.Errorf("/controlplane: %d, want 200", got)
	}
}
