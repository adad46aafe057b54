package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testredis"
)

// controlPlane is a control plane process serving a resource file.
type controlPlane struct {
	*enforcer
	dir     string // holds cp.yaml and resources.yaml
	xdsAddr string
}

// startControlPlane writes cp.yaml and resources.yaml into dir and runs
// `enforcer controlplane`; xdsAddr is fixed so that a restart is found by
// the replicas where they look.
func startControlPlane(t *testing.T, dir, xdsAddr, resources string) *controlPlane {
	t.Helper()
	if resources != "" {
		writeAtomically(t, filepath.Join(dir, "resources.yaml"), resources)
	}
	cp := filepath.Join(dir, "cp.yaml")
	yaml := fmt.Sprintf("listen: {xds: %q, api: \"127.0.0.1:0\"}\nsource: {file: resources.yaml}\n", xdsAddr)
	if err := os.WriteFile(cp, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, cp, []string{"controlplane", "--config", cp, "--log-level", "debug"}, "xds", "api")
	p.waitReady("/readyz")
	return &controlPlane{enforcer: p, dir: dir, xdsAddr: xdsAddr}
}

func (c *controlPlane) APIURL() string { return "http://" + c.addrs["api"] }

// setResources replaces resources.yaml atomically, as GitOps tools do.
func (c *controlPlane) setResources(t *testing.T, resources string) {
	t.Helper()
	writeAtomically(t, filepath.Join(c.dir, "resources.yaml"), resources)
}

func writeAtomically(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

type replicaView struct {
	Node     string            `json:"node"`
	Acked    map[string]string `json:"acked"`
	LastNack *struct {
		Type, Version, Error string
	} `json:"lastNack"`
}

func (c *controlPlane) replicas(t *testing.T) []replicaView {
	t.Helper()
	resp, err := http.Get(c.APIURL() + "/api/v1/replicas")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Items []replicaView }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Items
}

// startReplica runs an enforcer wired to the control plane at xdsAddr,
// with its state in stateDir. It waits for readiness only when ready.
func startReplica(t *testing.T, node, xdsAddr, stateDir string, ready bool) *enforcer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	cfg := listenAnyPort + fmt.Sprintf("controlPlane: {address: %q, node: %q, stateDir: %q, usage: {interval: 100ms}}\n", xdsAddr, node, stateDir)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	e := startProcess(t, path, []string{"serve", "--config", path, "--log-level", "debug"}, "grpc", "http", "admin")
	if ready {
		e.waitReady("/readyz")
	}
	return e
}

// kill ends the process at once, as a crash or an evicted pod does.
func (e *enforcer) kill() {
	_ = e.cmd.Process.Kill()
	<-e.done
}

// keyStatus is the HTTP front end's answer for a request with an API key.
func keyStatus(t *testing.T, e *enforcer, path, key string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", e.HTTPURL()+path, nil)
	if key != "" {
		req.Header.Set("apikey", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// everyReplica waits until each replica answers want.
func everyReplica(t *testing.T, what string, replicas []*enforcer, path, key string, want int) {
	t.Helper()
	for i, r := range replicas {
		waitFor(t, fmt.Sprintf("replica %d: %s (%d)", i+1, what, want), 10*time.Second, func() bool {
			return keyStatus(t, r, path, key) == want
		})
	}
}

// cpResources builds a resource file: the orders API, application shop
// subscribed to it in state subState, and the given key hashes.
func cpResources(subState string, keyHashes []string, extra string) string {
	var b strings.Builder
	b.WriteString(`apis:
  - id: orders
    basePath: /orders
    security: [apiKey]
    operations: [{path: "/**"}]
applications:
  - {id: shop, name: Shop}
subscriptions:
  - {application: shop, api: orders, state: ` + subState + `}
`)
	b.WriteString("apiKeys:\n")
	for i, h := range keyHashes {
		fmt.Fprintf(&b, "  - {application: shop, name: key-%d, sha256: %s}\n", i, h)
	}
	b.WriteString(extra)
	return b.String()
}

func TestControlPlaneReplicas(t *testing.T) {
	cpDir := t.TempDir()
	xdsAddr := fmt.Sprintf("127.0.0.1:%d", testredis.FreePort(t))
	const key1, key2 = "tgk_first-key", "tgk_second-key"
	cp := startControlPlane(t, cpDir, xdsAddr, cpResources("active", []string{sha(key1)}, ""))
	var replicas []*enforcer
	var stateDirs []string
	for i := range 3 {
		dir := t.TempDir()
		stateDirs = append(stateDirs, dir)
		replicas = append(replicas, startReplica(t, fmt.Sprintf("replica-%d", i+1), xdsAddr, dir, true))
	}
	everyReplica(t, "first key allowed", replicas, "/orders/1", key1, 200)
	everyReplica(t, "no key refused", replicas, "/orders/1", "", 401)

	t.Run("key added and revoked", func(t *testing.T) {
		cp.setResources(t, cpResources("active", []string{sha(key1), sha(key2)}, ""))
		everyReplica(t, "new key allowed", replicas, "/orders/1", key2, 200)
		cp.setResources(t, cpResources("active", []string{sha(key2)}, ""))
		everyReplica(t, "revoked key refused", replicas, "/orders/1", key1, 401)
		everyReplica(t, "other key still allowed", replicas, "/orders/1", key2, 200)
	})

	t.Run("subscription blocked and unblocked", func(t *testing.T) {
		cp.setResources(t, cpResources("blocked", []string{sha(key2)}, ""))
		everyReplica(t, "blocked subscription refused", replicas, "/orders/1", key2, 401)
		cp.setResources(t, cpResources("active", []string{sha(key2)}, ""))
		everyReplica(t, "unblocked subscription allowed", replicas, "/orders/1", key2, 200)
	})

	t.Run("API added and removed", func(t *testing.T) {
		billing := `  - {id: billing, basePath: /billing, security: [apiKey], operations: [{path: "/**"}]}
`
		withBilling := strings.Replace(cpResources("active", []string{sha(key2)}, ""), "applications:", billing+"applications:", 1)
		withBilling = strings.Replace(withBilling, "apiKeys:", "  - {application: shop, api: billing, state: active}\napiKeys:", 1)
		everyReplica(t, "unknown API not matched", replicas, "/billing/1", key2, 404)
		cp.setResources(t, withBilling)
		everyReplica(t, "added API allowed", replicas, "/billing/1", key2, 200)
		cp.setResources(t, cpResources("active", []string{sha(key2)}, ""))
		everyReplica(t, "removed API not matched", replicas, "/billing/1", key2, 404)
	})

	t.Run("bad resource refused and visible", func(t *testing.T) {
		// The issuer's key file exists beside the control plane's resources
		// but not beside the replicas' configs: every replica refuses it.
		signer, _ := newSigner(t)
		if err := os.WriteFile(filepath.Join(cpDir, "keys.json"), signer.PublicJWKS(), 0o600); err != nil {
			t.Fatal(err)
		}
		issuer := "issuers:\n  - {name: idp, issuer: \"https://idp.example\", jwksFile: keys.json}\n"
		const key3 = "tgk_third-key"
		// The key travels in another response and is applied; the issuer
		// is refused.
		cp.setResources(t, cpResources("active", []string{sha(key2), sha(key3)}, issuer))
		waitFor(t, "every replica to report a NACK", 10*time.Second, func() bool {
			views := cp.replicas(t)
			nacked := 0
			for _, v := range views {
				if v.LastNack != nil && v.LastNack.Type == "Issuer" && strings.Contains(v.LastNack.Error, "keys.json") {
					nacked++
				}
			}
			return len(views) == 3 && nacked == 3
		})
		everyReplica(t, "old state kept", replicas, "/orders/1", key2, 200)
		everyReplica(t, "unrelated change applied", replicas, "/orders/1", key3, 200)
		for i, r := range replicas {
			if got := r.Metric("tollgate_controlplane_updates_total", "type", "Issuer", "result", "refused"); got < 1 {
				t.Errorf("replica %d: refused Issuer updates = %v, want ≥ 1", i+1, got)
			}
		}
		cp.setResources(t, cpResources("active", []string{sha(key2)}, ""))
		everyReplica(t, "key removed with the bad issuer", replicas, "/orders/1", key3, 401)
	})

	t.Run("control plane down, replica restarted, control plane back", func(t *testing.T) {
		cp.kill()
		for i, r := range replicas {
			waitFor(t, fmt.Sprintf("replica %d to see the control plane gone", i+1), 10*time.Second, func() bool {
				return r.Metric("tollgate_controlplane_connected") == 0
			})
		}
		everyReplica(t, "serving without the control plane", replicas, "/orders/1", key2, 200)

		// A replica restarted while the control plane is away serves its
		// persisted state.
		replicas[2].stop()
		replicas[2] = startReplica(t, "replica-3", xdsAddr, stateDirs[2], true)
		if !replicas[2].hasLog("serving the persisted state until the control plane answers") {
			t.Errorf("restarted replica did not say it serves its persisted state:\n%s", replicas[2].Logs())
		}
		everyReplica(t, "restarted replica serving its state", replicas[2:], "/orders/1", key2, 200)
		everyReplica(t, "restarted replica refusing the revoked key", replicas[2:], "/orders/1", key1, 401)

		applied := make([]int, len(replicas))
		for i, r := range replicas {
			applied[i] = r.countLogs("applied an update from the control plane")
		}
		cp = startControlPlane(t, cpDir, xdsAddr, "")
		waitFor(t, "every replica to reconnect", 15*time.Second, func() bool {
			views := cp.replicas(t)
			acked := 0
			for _, v := range views {
				if len(v.Acked) == 8 {
					acked++
				}
			}
			return acked == 3
		})
		// Resource versions are content hashes, the same after a restart:
		// the replicas hold every version already, so nothing is resent,
		// recompiled or flushed.
		for i, r := range replicas {
			if got := r.countLogs("applied an update from the control plane"); got != applied[i] {
				t.Errorf("replica %d applied %d updates on reconnecting, want none", i+1, got-applied[i])
			}
		}
		everyReplica(t, "serving after the control plane is back", replicas, "/orders/1", key2, 200)
		cp.setResources(t, cpResources("active", []string{sha(key1), sha(key2)}, ""))
		everyReplica(t, "changes flow again", replicas, "/orders/1", key1, 200)
	})
}

// TestControlPlaneLargeSync sends a state far above gRPC's 4 MiB message
// limit: it arrives in pieces and is applied as one.
func TestControlPlaneLargeSync(t *testing.T) {
	const n = 60000
	hashes := make([]string, n)
	for i := range hashes {
		hashes[i] = sha(fmt.Sprintf("tgk_bulk-%d", i))
	}
	res := cpResources("active", hashes, "")
	if len(res) < 5<<20 {
		t.Fatalf("resource file is %d bytes; the test needs more than 5 MiB", len(res))
	}
	xdsAddr := fmt.Sprintf("127.0.0.1:%d", testredis.FreePort(t))
	startControlPlane(t, t.TempDir(), xdsAddr, res)
	stateDir := t.TempDir()
	r := startReplica(t, "replica-bulk", xdsAddr, stateDir, true)
	for _, i := range []int{0, n / 2, n - 1} {
		if got := keyStatus(t, r, "/orders/1", fmt.Sprintf("tgk_bulk-%d", i)); got != 200 {
			t.Errorf("key %d: status %d, want 200", i, got)
		}
	}
	if got := r.countLogs("applied an update from the control plane", "type", "ApiKey"); got != 1 {
		t.Errorf("the keys were applied in %d updates, want 1 (pieces applied together)", got)
	}

	// Restarted with its state, the replica names all 60,000 keys and
	// their versions in its first request (over 4 MiB): it is sent nothing.
	r.stop()
	r = startReplica(t, "replica-bulk", xdsAddr, stateDir, true)
	waitFor(t, "the restarted replica to be in step", 20*time.Second, func() bool {
		resp, err := http.Get(r.AdminURL() + "/controlplane")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var st struct{ Synced bool }
		return json.NewDecoder(resp.Body).Decode(&st) == nil && st.Synced
	})
	if got := r.countLogs("applied an update from the control plane"); got != 0 {
		t.Errorf("the restarted replica applied %d updates, want none", got)
	}
	if got := keyStatus(t, r, "/orders/1", fmt.Sprintf("tgk_bulk-%d", n-1)); got != 200 {
		t.Errorf("after the restart: status %d, want 200", got)
	}
}
