package ratelimit

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testredis"
)

// benchItems is a realistic decision: a subscription policy with a burst
// limit and a daily quota, and an API-wide limit. Each parallel worker has
// its own application, so workers do not contend on keys.
func benchItems(worker int64) []Item {
	sub := &Policy{Name: "gold", Limits: []Limit{{Requests: 1e6, Per: time.Second, Burst: 1000}, {Requests: 1e9, Per: 24 * time.Hour}}}
	api := &Policy{Name: "api", Limits: []Limit{{Requests: 1e6, Per: time.Second, Burst: 1000}}}
	items := sub.AppendItems(nil, ScopeSubscription, fmt.Sprintf("app%d:petstore", worker))
	return api.AppendItems(items, ScopeAPI, fmt.Sprintf("petstore%d", worker))
}

func benchStore(b *testing.B, s Store) {
	var workers atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		items := benchItems(workers.Add(1))
		res := make([]Result, len(items))
		for pb.Next() {
			if _, err := s.Admit(context.Background(), items, res); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkAdmitMemory: decisions per second against the in-process store.
func BenchmarkAdmitMemory(b *testing.B) {
	benchStore(b, NewMemoryStore(MemoryOptions{}))
}

// BenchmarkAdmitRedis: decisions per second against a local redis-server,
// 16 concurrent decisions per CPU; reports Redis round trips per decision.
func BenchmarkAdmitRedis(b *testing.B) {
	srv := testredis.Start(b)
	s, err := NewRedisStore(RedisOptions{Addrs: []string{srv.Addr}, Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	// load the script once, outside the measurement
	items := benchItems(0)
	if _, err := s.Admit(context.Background(), items, make([]Result, len(items))); err != nil {
		b.Fatal(err)
	}
	before := srv.CommandCalls("evalsha") + srv.CommandCalls("eval")
	b.SetParallelism(16)
	b.ResetTimer()
	benchStore(b, s)
	b.StopTimer()
	calls := srv.CommandCalls("evalsha") + srv.CommandCalls("eval") - before
	b.ReportMetric(float64(calls)/float64(b.N), "roundtrips/op")
}
