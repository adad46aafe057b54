package controlplane

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/model"
	"github.com/tollgate/tollgate/internal/testpg"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testpg.StopShared()
	os.Exit(code)
}

const storeToken = "test-admin-token"

// startStorePlane runs a control plane on a store, with one admin token.
func startStorePlane(t testing.TB, store config.StoreSource) (xds, api string, stop func()) {
	t.Helper()
	sum := sha256.Sum256([]byte(storeToken))
	addrs := make(chan [2]string, 2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			Config: &config.ControlPlaneConfig{
				Listen: config.ControlPlaneListen{XDS: "127.0.0.1:0", API: "127.0.0.1:0"},
				Source: config.Source{Store: store},
				Auth:   config.AdminAuth{Tokens: []config.AdminToken{{Name: "ops", SHA256: hex.EncodeToString(sum[:]), Role: config.RoleAdmin}}},
			},
			// Long: a change must arrive by notification, not by polling.
			PollInterval: time.Hour,
			Listening:    func(role, addr string) { addrs <- [2]string{role, addr} },
		})
	}()
	for range 2 {
		select {
		case a := <-addrs:
			if a[0] == "xds" {
				xds = a[1]
			} else {
				api = a[1]
			}
		case err := <-done:
			t.Fatalf("control plane stopped: %v", err)
		case <-time.After(20 * time.Second):
			t.Fatal("control plane did not listen")
		}
	}
	var stopped bool
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return xds, api, stop
}

func call(t *testing.T, api, method, path string, body any, want int) map[string]any {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+api+path, rd)
	req.Header.Set("Authorization", "Bearer "+storeToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, res.StatusCode, want, b)
	}
	out := map[string]any{}
	_ = json.Unmarshal(b, &out)
	return out
}

// replicaSees polls a replica until cond holds of its snapshot.
func replicaSees(t *testing.T, s *model.Store, what string, cond func(*model.Snapshot) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(s.Load()) {
		if time.Now().After(deadline) {
			t.Fatalf("replica never saw: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func hasKey(secret string) func(*model.Snapshot) bool {
	return func(s *model.Snapshot) bool {
		if s.APIKeys == nil {
			return false
		}
		_, ok := s.APIKeys.Lookup(secret)
		return ok
	}
}

func not(f func(*model.Snapshot) bool) func(*model.Snapshot) bool {
	return func(s *model.Snapshot) bool { return !f(s) }
}

func subscribed(app, api string) func(*model.Snapshot) bool {
	return func(s *model.Snapshot) bool {
		return s.Subscriptions != nil && s.Subscriptions.Get(app, api) != nil
	}
}

func hasAPI(id string) func(*model.Snapshot) bool {
	return func(s *model.Snapshot) bool { return s.Catalog != nil && s.Catalog.API(id) != nil }
}

// walkthrough drives the admin API of one control plane and watches what
// the replicas of every control plane receive.
func walkthrough(t *testing.T, api string, replicas ...*model.Store) {
	t.Helper()
	all := func(what string, cond func(*model.Snapshot) bool) {
		t.Helper()
		for _, r := range replicas {
			replicaSees(t, r, what, cond)
		}
	}
	call(t, api, "POST", "/api/v1/apis", map[string]any{"id": "petstore", "basePath": "/petstore", "security": []string{"apiKey"},
		"operations": []any{map[string]any{"path": "/pets"}}}, 201)
	call(t, api, "POST", "/api/v1/applications", map[string]any{"id": "mobile"}, 201)
	call(t, api, "PATCH", "/api/v1/apis/petstore", map[string]any{"state": "published"}, 200)
	all("a published API", hasAPI("petstore"))
	call(t, api, "POST", "/api/v1/subscriptions", map[string]any{"application": "mobile", "api": "petstore"}, 201)
	key := call(t, api, "POST", "/api/v1/applications/mobile/keys", map[string]any{"name": "ci"}, 201)
	secret := key["key"].(string)
	all("the new key", hasKey(secret))
	all("the subscription", subscribed("mobile", "petstore"))

	// Regenerate: both keys work for the grace period, then only the new.
	next := call(t, api, "POST", "/api/v1/applications/mobile/keys/"+key["id"].(string)+"/regenerate", map[string]any{"grace": "2s"}, 201)
	all("the regenerated key", hasKey(next["key"].(string)))
	for _, r := range replicas {
		snap := r.Load()
		k, ok := snap.APIKeys.Lookup(secret)
		if !ok || k.Expired(time.Now()) || !k.Expired(time.Now().Add(3*time.Second)) {
			t.Fatalf("the old key in its grace period: found %v, %+v", ok, k)
		}
	}
	call(t, api, "POST", "/api/v1/applications/mobile/keys/"+next["id"].(string)+"/revoke", nil, 200)
	all("the revoked key gone", not(hasKey(next["key"].(string))))

	call(t, api, "PATCH", "/api/v1/apis/petstore", map[string]any{"state": "retired"}, 200)
	all("the retired API gone", not(hasAPI("petstore")))
	all("its subscriptions gone", not(subscribed("mobile", "petstore")))
}

func TestStoreSourceServesTheAdminAPI(t *testing.T) {
	xds, api, _ := startStorePlane(t, config.StoreSource{SQLite: filepath.Join(t.TempDir(), "tollgate.db")})
	walkthrough(t, api, propagationReplica(t, xds, "r1"))
}

// Two control planes on one PostgreSQL database, a replica on each: a
// change made through one reaches both replicas (LISTEN/NOTIFY; polling
// is an hour here). A control plane restarted on the database keeps every
// record.
func TestPostgresControlPlanes(t *testing.T) {
	db := config.StoreSource{Postgres: testpg.Database(t)}
	xdsA, apiA, _ := startStorePlane(t, db)
	xdsB, _, stopB := startStorePlane(t, db)
	ra, rb := propagationReplica(t, xdsA, "ra"), propagationReplica(t, xdsB, "rb")
	walkthrough(t, apiA, ra, rb)

	after := call(t, apiA, "POST", "/api/v1/applications/mobile/keys", map[string]any{"name": "after"}, 201)
	stopB()
	xdsB, apiB, _ := startStorePlane(t, db)
	rb2 := propagationReplica(t, xdsB, "rb2")
	keysList := call(t, apiB, "GET", "/api/v1/applications/mobile/keys", nil, 200)
	if keysList["total"] != 3.0 {
		t.Fatalf("keys after a restart: %v", keysList)
	}
	replicaSees(t, rb2, "a key made before the restart", hasKey(after["key"].(string)))
}
