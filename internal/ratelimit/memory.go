package ratelimit

import (
	"context"
	"hash/maphash"
	"slices"
	"sync"
	"time"
)

// Store evaluates the items of one decision at once and fills results
// (len(results) >= len(items)). allowed is true only if every item admits;
// then all are consumed, otherwise none is. An error means the store could
// not answer; results are then meaningless.
type Store interface {
	Admit(ctx context.Context, items []Item, results []Result) (allowed bool, err error)
}

// Clock tells the time.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

const memoryShards = 64

// MemoryStore keeps TATs in this process: the embedded default, right for
// one replica (and the fallback while Redis is away). Keys are spread over
// shards, each with its own lock, so concurrent decisions on different
// keys rarely meet; a decision locks its shards in a fixed order, so it is
// atomic across its items without deadlock.
type MemoryStore struct {
	clock  Clock
	seed   maphash.Seed
	shards [memoryShards]memoryShard
}

type memoryShard struct {
	mu   sync.Mutex
	tats map[string]int64 // unix nanoseconds
}

// NewMemoryStore returns an empty store. clock may be nil (system time).
func NewMemoryStore(clock Clock) *MemoryStore {
	if clock == nil {
		clock = systemClock{}
	}
	s := &MemoryStore{clock: clock, seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].tats = map[string]int64{}
	}
	return s
}

func (s *MemoryStore) shardOf(key string) int {
	return int(maphash.String(s.seed, key) % memoryShards)
}

// Admit implements Store.
func (s *MemoryStore) Admit(_ context.Context, items []Item, results []Result) (bool, error) {
	var locked [memoryShards]bool
	var idx [16]int
	shards := idx[:0]
	for _, it := range items {
		i := s.shardOf(it.Key)
		if !locked[i] {
			locked[i] = true
			shards = append(shards, i)
		}
	}
	slices.Sort(shards)
	for _, i := range shards {
		s.shards[i].mu.Lock()
	}
	defer func() {
		for _, i := range shards {
			s.shards[i].mu.Unlock()
		}
	}()

	now := s.clock.Now().UnixNano()
	var tatBuf [16]int64
	newTATs := tatBuf[:0]
	allowed := true
	for k, it := range items {
		tat, r := gcra(s.shards[s.shardOf(it.Key)].tats[it.Key], now, it)
		results[k] = r
		allowed = allowed && r.Allowed
		newTATs = append(newTATs, tat)
	}
	if allowed {
		for k, it := range items {
			s.shards[s.shardOf(it.Key)].tats[it.Key] = newTATs[k]
		}
	}
	return allowed, nil
}

// Sweep drops keys whose TAT has passed: they are as good as fresh. It
// returns how many remain.
func (s *MemoryStore) Sweep() int {
	now := s.clock.Now().UnixNano()
	left := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for k, tat := range sh.tats {
			if tat <= now {
				delete(sh.tats, k)
			}
		}
		left += len(sh.tats)
		sh.mu.Unlock()
	}
	return left
}

// SweepEvery sweeps on a schedule until ctx is done.
func (s *MemoryStore) SweepEvery(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Sweep()
		}
	}
}
