package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testpg"
	"github.com/tollgate/tollgate/internal/testredis"
)

const storeAdminToken = "e2e-admin-token"

// startStoreControlPlane runs `enforcer controlplane` on a database, with
// one admin token; xdsAddr is fixed so that a restart is found where the
// replicas look.
func startStoreControlPlane(t *testing.T, dir, xdsAddr, store string) *controlPlane {
	t.Helper()
	sum := sha256.Sum256([]byte(storeAdminToken))
	cp := filepath.Join(dir, "cp.yaml")
	yaml := fmt.Sprintf("listen: {xds: %q, api: \"127.0.0.1:0\"}\nsource: {store: %s}\nauth: {tokens: [{name: ops, sha256: %s, role: admin}]}\n",
		xdsAddr, store, hex.EncodeToString(sum[:]))
	if err := os.WriteFile(cp, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, cp, []string{"controlplane", "--config", cp, "--log-level", "debug"}, "xds", "api")
	p.waitReady("/readyz")
	return &controlPlane{enforcer: p, dir: dir, xdsAddr: xdsAddr}
}

// admin runs `enforcer admin` against a control plane.
func admin(t *testing.T, cp *controlPlane, args ...string) string {
	t.Helper()
	cmd := exec.Command(enforcerBin, append([]string{"admin"}, args...)...)
	cmd.Env = append(os.Environ(), "TOLLGATE_SERVER="+cp.APIURL(), "TOLLGATE_TOKEN="+storeAdminToken)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("enforcer admin %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String()
}

var printedKey = regexp.MustCompile(`(?m)^key: (tg_[0-9a-z]{12}_[0-9A-Za-z]{38})$`)
var printedID = regexp.MustCompile(`(?m)^id:\s+([0-9a-z]{12})$`)

// withinASecond waits up to one second, the propagation the admin API
// promises, for every replica to answer want.
func withinASecond(t *testing.T, what string, replicas []*enforcer, path, key string, want int) {
	t.Helper()
	for i, r := range replicas {
		waitFor(t, fmt.Sprintf("replica %d: %s (%d)", i+1, what, want), time.Second, func() bool {
			return keyStatus(t, r, path, key) == want
		})
	}
}

// The quickstart walkthrough on a control plane with a database and two
// enforcers: an OpenAPI import, publish, an application, a subscription,
// a key — allowed on both within a second of the command returning —
// then revoked, and refused on both within a second.
func TestStoreWalkthrough(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			dir := t.TempDir()
			store := "{sqlite: tollgate.db}"
			if backend == "postgres" {
				store = fmt.Sprintf("{postgres: %q}", testpg.Database(t))
			}
			xdsAddr := fmt.Sprintf("127.0.0.1:%d", testredis.FreePort(t))
			cp := startStoreControlPlane(t, dir, xdsAddr, store)
			replicas := []*enforcer{startReplica(t, "r1", xdsAddr, t.TempDir(), true), startReplica(t, "r2", xdsAddr, t.TempDir(), true)}

			admin(t, cp, "apis", "import", "--file", "../examples/store/petstore.openapi.yaml", "--publish")
			admin(t, cp, "apps", "create", "--id", "mobile", "--name", "Mobile app")
			admin(t, cp, "subscriptions", "create", "--app", "mobile", "--api", "petstore-v1")
			out := admin(t, cp, "keys", "create", "mobile", "--name", "laptop")
			m, id := printedKey.FindStringSubmatch(out), printedID.FindStringSubmatch(out)
			if m == nil || id == nil {
				t.Fatalf("keys create printed no key and id:\n%s", out)
			}
			key := m[1]
			withinASecond(t, "the new key allowed", replicas, "/petstore/v1/pets", key, 200)
			withinASecond(t, "a public operation", replicas, "/petstore/v1/health", "", 200)
			for _, r := range replicas {
				if strings.Contains(r.Logs(), key) {
					t.Fatal("a replica logged the secret")
				}
			}
			// Both replicas report what they let through, and it shows in
			// the usage of the application's API.
			waitFor(t, "the allowed requests in enforcer admin usage", 10*time.Second, func() bool {
				var u struct {
					Totals struct{ Requests, Errors, Throttled int } `json:"totals"`
				}
				out := admin(t, cp, "--json", "usage", "--application", "mobile", "--api", "petstore-v1")
				return json.Unmarshal([]byte(out), &u) == nil && u.Totals.Requests >= len(replicas) && u.Totals.Errors == 0
			})

			// Regenerated with a grace period: both keys work, then only the
			// new one.
			out = admin(t, cp, "keys", "regenerate", "mobile", id[1], "--grace", "2s")
			m2, id2 := printedKey.FindStringSubmatch(out), printedID.FindStringSubmatch(out)
			if m2 == nil || id2 == nil {
				t.Fatalf("keys regenerate printed no key and id:\n%s", out)
			}
			withinASecond(t, "the regenerated key allowed", replicas, "/petstore/v1/pets", m2[1], 200)
			withinASecond(t, "the old key in its grace period", replicas, "/petstore/v1/pets", key, 200)
			everyReplica(t, "the old key after its grace period", replicas, "/petstore/v1/pets", key, 401)
			withinASecond(t, "the regenerated key still allowed", replicas, "/petstore/v1/pets", m2[1], 200)
			key = m2[1]

			admin(t, cp, "keys", "revoke", "mobile", id2[1])
			withinASecond(t, "the revoked key refused", replicas, "/petstore/v1/pets", key, 401)
			if strings.Contains(cp.Logs(), key) {
				t.Fatal("the control plane logged the secret")
			}

			if backend != "postgres" {
				return
			}
			// A control plane restarted on the database keeps every record.
			second := printedKey.FindStringSubmatch(admin(t, cp, "keys", "create", "mobile", "--name", "second"))[1]
			withinASecond(t, "the second key allowed", replicas, "/petstore/v1/pets", second, 200)
			before := admin(t, cp, "--output", "json", "export")
			cp.stop()
			cp = startStoreControlPlane(t, dir, xdsAddr, store)
			if after := admin(t, cp, "--output", "json", "export"); after != before {
				t.Fatalf("the records changed across a restart:\n--- before\n%s\n--- after\n%s", before, after)
			}
			everyReplica(t, "the second key after the restart", replicas, "/petstore/v1/pets", second, 200)
			everyReplica(t, "the revoked key after the restart", replicas, "/petstore/v1/pets", key, 401)
		})
	}
}
