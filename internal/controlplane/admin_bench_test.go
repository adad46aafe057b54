package controlplane

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/model"
	"github.com/tollgate/tollgate/internal/testpg"
)

// benchStores are the two databases the admin API runs on.
func benchStores(b *testing.B) map[string]func() config.StoreSource {
	return map[string]func() config.StoreSource{
		"sqlite": func() config.StoreSource {
			return config.StoreSource{SQLite: filepath.Join(b.TempDir(), "tollgate.db")}
		},
		"postgres": func() config.StoreSource { return config.StoreSource{Postgres: testpg.Database(b)} },
	}
}

// post is one admin API write; it fails the benchmark on an unexpected
// status.
func post(b testing.TB, client *http.Client, api, path string, body any) map[string]any {
	j, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", "http://"+api+path, bytes.NewReader(j))
	req.Header.Set("Authorization", "Bearer "+storeToken)
	res, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusCreated && res.StatusCode != http.StatusOK {
		b.Fatalf("POST %s: %d %s", path, res.StatusCode, data)
	}
	out := map[string]any{}
	_ = json.Unmarshal(data, &out)
	return out
}

// BenchmarkAdminWrites creates applications through the admin API: each
// a validated, audited transaction that the control plane then pushes to
// its replicas. Sequential writes measure one client's latency;
// concurrent ones (8 clients) what the store sustains.
func BenchmarkAdminWrites(b *testing.B) {
	for name, store := range benchStores(b) {
		for _, clients := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/clients=%d", name, clients), func(b *testing.B) {
				_, api, _ := startStorePlane(b, store())
				client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
				var next sync.Mutex
				n := 0
				b.ResetTimer()
				began := time.Now()
				var wg sync.WaitGroup
				for range clients {
					wg.Go(func() {
						for {
							next.Lock()
							i := n
							n++
							next.Unlock()
							if i >= b.N {
								return
							}
							post(b, client, api, "/api/v1/applications", map[string]any{"id": fmt.Sprintf("app-%d", i)})
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64(b.N)/time.Since(began).Seconds(), "writes/s")
			})
		}
	}
}

// BenchmarkAdminPropagation times a new API key from the admin API's
// answer until two replicas' snapshots hold it — the snapshot a Check is
// decided on. On PostgreSQL the replicas are on two control planes, so
// the change crosses LISTEN/NOTIFY. 200 keys, one every 20 ms.
func BenchmarkAdminPropagation(b *testing.B) {
	for name, store := range benchStores(b) {
		b.Run(name, func(b *testing.B) {
			src := store()
			xdsA, api, _ := startStorePlane(b, src)
			xdsB := xdsA
			if name == "postgres" {
				xdsB, _, _ = startStorePlane(b, src)
			}
			replicas := []*model.Store{propagationReplica(b, xdsA, "ra"), propagationReplica(b, xdsB, "rb")}
			client := &http.Client{}
			post(b, client, api, "/api/v1/apis", map[string]any{"id": "orders", "state": "published", "security": []string{"apiKey"},
				"operations": []any{map[string]any{"path": "/**"}}})
			post(b, client, api, "/api/v1/applications", map[string]any{"id": "shop"})
			for range b.N {
				var took []time.Duration
				tick := time.NewTicker(20 * time.Millisecond)
				for range 200 {
					<-tick.C
					key := post(b, client, api, "/api/v1/applications/shop/keys", map[string]any{})["key"].(string)
					answered := time.Now()
					for _, r := range replicas {
						replicaHolds(b, r, key)
						took = append(took, time.Since(answered))
					}
				}
				tick.Stop()
				slices.Sort(took)
				at := func(p float64) time.Duration { return took[min(int(p*float64(len(took))), len(took)-1)] }
				b.ReportMetric(float64(at(0.5).Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(at(0.99).Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "max-ms")
			}
		})
	}
}

// replicaHolds polls finely until a replica's snapshot holds a key.
func replicaHolds(b testing.TB, s *model.Store, key string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if snap := s.Load(); snap.APIKeys != nil {
			if _, ok := snap.APIKeys.Lookup(key); ok {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatal("a key never reached a replica")
		}
		time.Sleep(100 * time.Microsecond)
	}
}
