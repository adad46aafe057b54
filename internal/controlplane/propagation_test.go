package controlplane

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"

	"github.com/tollgate/tollgate/internal/keys"
	"github.com/tollgate/tollgate/internal/model"
	"github.com/tollgate/tollgate/internal/resources"
	"github.com/tollgate/tollgate/internal/xdssource"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// BenchmarkPropagation measures how long a change takes from the control
// plane accepting it (its caches updated) until three replicas, each with
// its own stream over loopback, decide with it: 1,000 keys added one at a
// time at 100 a second, over 10,000 keys of 1,000 applications. It
// reports the 50th, 99th and last percentiles over every change and
// replica (-benchtime 1x is one such run).
func BenchmarkPropagation(b *testing.B) {
	const replicas, changes, rate, baseKeys, apps = 3, 1000, 100, 10_000, 1000
	for range b.N {
		cs, addr := propagationPlane(b)
		set := propagationBase(b, baseKeys, apps)
		if _, err := cs.apply(set); err != nil {
			b.Fatal(err)
		}
		var stores []*model.Store
		for i := range replicas {
			stores = append(stores, propagationReplica(b, addr, fmt.Sprint("r", i)))
		}
		for _, s := range stores {
			waitFor(b, s, digestOf(baseKeys-1))
		}
		var mu sync.Mutex
		var took []time.Duration
		var wg sync.WaitGroup
		tick := time.NewTicker(time.Second / rate)
		b.ResetTimer()
		for i := range changes {
			<-tick.C
			k := &tollgatev1.ApiKey{Application: "app0", Sha256: fmt.Sprintf("%064x", baseKeys+i)}
			next := maps.Clone(set)
			next[resources.ApiKey] = maps.Clone(set[resources.ApiKey])
			next[resources.ApiKey][resources.NameOf(resources.ApiKey, k)] = k
			set = next
			if _, err := cs.apply(set); err != nil {
				b.Fatal(err)
			}
			accepted := time.Now()
			for _, s := range stores {
				wg.Add(1)
				go func() {
					defer wg.Done()
					waitFor(b, s, digestOf(baseKeys+i))
					mu.Lock()
					took = append(took, time.Since(accepted))
					mu.Unlock()
				}()
			}
		}
		wg.Wait()
		tick.Stop()
		b.StopTimer()
		slices.Sort(took)
		at := func(p float64) time.Duration { return took[min(int(p*float64(len(took))), len(took)-1)] }
		b.ReportMetric(float64(at(0.5).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(at(0.99).Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "max-ms")
	}
}

// propagationPlane serves the caches over Delta xDS on a free port.
func propagationPlane(b *testing.B) (*caches, string) {
	cs := newCaches("bench/", DefaultChunkBytes)
	ctx, cancel := context.WithCancel(context.Background())
	srv := grpc.NewServer()
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(srv, deltaOnly{serverv3.NewServer(ctx, cs.mux, newReplicas(newMetrics(), time.Now))})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	b.Cleanup(func() { srv.Stop(); cancel() })
	return cs, l.Addr().String()
}

func propagationBase(b *testing.B, nkeys, apps int) resources.Set {
	r := &tollgatev1.Resources{Apis: []*tollgatev1.Api{{Id: "api", BasePath: "/api", Security: []string{"apiKey"},
		Operations: []*tollgatev1.Operation{{Path: "/x"}}}}}
	for i := range apps {
		id := fmt.Sprint("app", i)
		r.Applications = append(r.Applications, &tollgatev1.Application{Id: id})
		r.Subscriptions = append(r.Subscriptions, &tollgatev1.Subscription{Application: id, Api: "api", State: "active"})
	}
	for i := range nkeys {
		r.ApiKeys = append(r.ApiKeys, &tollgatev1.ApiKey{Application: fmt.Sprint("app", i%apps), Sha256: fmt.Sprintf("%064x", i)})
	}
	set, err := resources.Split(r)
	if err != nil {
		b.Fatal(err)
	}
	for t := range set {
		set[t] = maps.Clone(set[t]) // owned: the benchmark adds to them
	}
	return set
}

func propagationReplica(b testing.TB, addr, node string) *model.Store {
	store := model.NewStore(&model.Snapshot{})
	c, err := xdssource.New(xdssource.Options{Address: addr, Node: node, Store: store,
		BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	return store
}

func digestOf(i int) keys.Digest {
	d, _ := keys.ParseDigest(fmt.Sprintf("%064x", i))
	return d
}

// waitFor polls a replica's store for a key, finely: what is measured is
// the moment it is there. It gives up after ten seconds.
func waitFor(b *testing.B, s *model.Store, d keys.Digest) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if snap := s.Load(); snap.APIKeys != nil {
			if _, ok := snap.APIKeys.Get(d); ok {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Errorf("key %s not on a replica after 10s", d)
			return
		}
		time.Sleep(100 * time.Microsecond)
	}
}
