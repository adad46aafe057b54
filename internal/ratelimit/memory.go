package ratelimit

import (
	"context"
	"hash/maphash"
	"maps"
	"math"
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

const (
	memoryShards = 64

	// DefaultMemoryMaxKeys bounds a MemoryStore whose options leave MaxKeys
	// at 0: some 16 MB of heap with typical keys.
	DefaultMemoryMaxKeys = 100_000

	// evictionSample is how many entries a full shard looks at to choose
	// the one to evict.
	evictionSample = 8

	// A shard's map is rebuilt after a sweep once it has shrunk below a
	// quarter of its peak, if the peak was at least this many keys: below
	// that the table is too small to be worth copying.
	rebuildMinPeak = 256
)

// MemoryOptions configure a MemoryStore.
type MemoryOptions struct {
	Clock Clock // nil: the system clock
	// MaxKeys bounds how many keys the store holds, whatever the callers
	// send; 0 (or less) means DefaultMemoryMaxKeys. The bound is kept per shard, as
	// MaxKeys/64 each (at least 1).
	MaxKeys int
	// OnEvict, if set, is told how many keys were evicted before their TAT
	// had passed, because their shard was full. It is called outside the
	// store's locks, possibly from many goroutines at once, and must not
	// block.
	OnEvict func(n int)
}

// MemoryStore keeps TATs in this process: the embedded default, right for
// one replica (and the fallback while Redis is away). Keys are spread over
// shards, each with its own lock, so concurrent decisions on different
// keys rarely meet; a decision locks its shards in a fixed order, so it is
// atomic across its items without deadlock.
//
// Each shard holds at most maxPerShard keys. To store one more, a full
// shard drops keys whose TAT has passed (forgetting them loses nothing:
// a full pass finds them all, paced so that a flood of new keys costs
// O(1) each) or, if it finds none, evicts the entry with the smallest TAT
// among a few sampled, and remembers that TAT as the floor of the entry's
// limit shape: a key the shard does not hold starts from max(now, floor)
// rather than now. Forgetting a key therefore only makes keys of its
// shape stricter, never looser, and a floor stops mattering once it has
// passed.
type MemoryStore struct {
	clock       Clock
	seed        maphash.Seed
	maxPerShard int
	onEvict     func(n int)
	shards      [memoryShards]memoryShard
}

// limitShape is what makes two TATs comparable: keys with the same
// interval and tolerance are limited alike.
type limitShape struct{ interval, tolerance time.Duration }

type memoryEntry struct {
	tat   int64 // unix nanoseconds
	shape limitShape
}

type memoryShard struct {
	mu      sync.Mutex
	entries map[string]memoryEntry
	// floors holds, per shape, the largest TAT evicted before it had
	// passed; nil until the first eviction.
	floors map[limitShape]int64
	// soonestTAT is a lower bound on the TATs held: before it, no key can
	// have expired, so looking for expired keys is pointless.
	soonestTAT int64
	// insertsSinceScan paces full passes for expired keys, so that a
	// flood of new keys costs O(1) each rather than O(maxPerShard).
	insertsSinceScan int
	peak             int // largest len(entries) since the map was made
}

// NewMemoryStore returns an empty store.
func NewMemoryStore(o MemoryOptions) *MemoryStore {
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = DefaultMemoryMaxKeys
	}
	if o.OnEvict == nil {
		o.OnEvict = func(int) {}
	}
	s := &MemoryStore{clock: o.Clock, seed: maphash.MakeSeed(),
		maxPerShard: max(o.MaxKeys/memoryShards, 1), onEvict: o.OnEvict}
	for i := range s.shards {
		s.shards[i].entries = map[string]memoryEntry{}
		s.shards[i].soonestTAT = math.MaxInt64
	}
	return s
}

func (s *MemoryStore) shardOf(key string) int {
	return int(maphash.String(s.seed, key) % memoryShards)
}

// Admit implements Store.
func (s *MemoryStore) Admit(_ context.Context, items []Item, results []Result) (bool, error) {
	var locked [memoryShards]bool
	var idx, ofBuf [16]int
	shards, shardOfItem := idx[:0], ofBuf[:0]
	for _, it := range items {
		i := s.shardOf(it.Key)
		shardOfItem = append(shardOfItem, i)
		if !locked[i] {
			locked[i] = true
			shards = append(shards, i)
		}
	}
	slices.Sort(shards)
	for _, i := range shards {
		s.shards[i].mu.Lock()
	}

	now := s.clock.Now().UnixNano()
	var tatBuf [16]int64
	newTATs := tatBuf[:0]
	allowed := true
	for k, it := range items {
		tat, r := gcra(s.shards[shardOfItem[k]].tatOf(it), now, it)
		results[k] = r
		allowed = allowed && r.Allowed
		newTATs = append(newTATs, tat)
	}
	evicted := 0
	if allowed {
		for k, it := range items {
			evicted += s.shards[shardOfItem[k]].store(it, newTATs[k], now, s.maxPerShard)
		}
	}

	for _, i := range shards {
		s.shards[i].mu.Unlock()
	}
	if evicted > 0 {
		s.onEvict(evicted)
	}
	return allowed, nil
}

// tatOf returns the TAT to evaluate it from: the key's own, or, for a key
// the shard does not hold, the floor of its shape (0: none).
func (sh *memoryShard) tatOf(it Item) int64 {
	if e, held := sh.entries[it.Key]; held {
		return e.tat
	}
	if sh.floors == nil {
		return 0
	}
	return sh.floors[limitShape{it.Interval, it.Tolerance}]
}

// store records tat for it.Key, making room if the key is new and the
// shard is full. It returns how many live keys it evicted.
func (sh *memoryShard) store(it Item, tat, now int64, maxKeys int) (evicted int) {
	before := len(sh.entries)
	sh.entries[it.Key] = memoryEntry{tat: tat, shape: limitShape{it.Interval, it.Tolerance}}
	if len(sh.entries) == before {
		return 0 // an update: TATs only grow, soonestTAT still holds
	}
	sh.soonestTAT = min(sh.soonestTAT, tat)
	sh.insertsSinceScan++
	if len(sh.entries) > maxKeys {
		evicted = sh.makeRoom(now, it.Key, maxKeys)
	}
	sh.peak = max(sh.peak, len(sh.entries))
	return evicted
}

// makeRoom removes one key other than keep, preferring keys whose TAT has
// passed, and returns how many live keys it evicted (0 or 1).
func (sh *memoryShard) makeRoom(now int64, keep string, maxKeys int) int {
	// A full pass finds every expired key, but only when one may exist
	// and at most once per maxKeys/8 new keys.
	if now >= sh.soonestTAT && sh.insertsSinceScan >= maxKeys/8 {
		sh.dropExpired(now)
		if len(sh.entries) <= maxKeys {
			return 0
		}
	}
	// Go's map iteration starts at a random place: the first entries are
	// a sample.
	var victim string
	var victimEntry memoryEntry
	seen := 0
	for k, e := range sh.entries {
		if k == keep {
			continue
		}
		if e.tat <= now {
			delete(sh.entries, k) // as good as fresh: nothing to remember
			return 0
		}
		if seen == 0 || e.tat < victimEntry.tat {
			victim, victimEntry = k, e
		}
		if seen++; seen == evictionSample {
			break
		}
	}
	delete(sh.entries, victim)
	if sh.floors == nil {
		sh.floors = map[limitShape]int64{}
	}
	if victimEntry.tat > sh.floors[victimEntry.shape] {
		sh.floors[victimEntry.shape] = victimEntry.tat
	}
	return 1
}

// dropExpired deletes the keys whose TAT has passed and the floors that
// have passed, and makes soonestTAT exact again.
func (sh *memoryShard) dropExpired(now int64) {
	soonest := int64(math.MaxInt64)
	for k, e := range sh.entries {
		if e.tat <= now {
			delete(sh.entries, k)
		} else {
			soonest = min(soonest, e.tat)
		}
	}
	maps.DeleteFunc(sh.floors, func(_ limitShape, floor int64) bool { return floor <= now })
	sh.soonestTAT = soonest
	sh.insertsSinceScan = 0
}

// Sweep drops keys whose TAT has passed: they are as good as fresh. A
// shard left with under a quarter of its peak is copied into a new map,
// since Go maps do not shrink. It returns how many keys remain.
func (s *MemoryStore) Sweep() int {
	now := s.clock.Now().UnixNano()
	left := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.dropExpired(now)
		if sh.peak >= rebuildMinPeak && len(sh.entries) < sh.peak/4 {
			sh.rebuild()
		}
		left += len(sh.entries)
		sh.mu.Unlock()
	}
	return left
}

// rebuild copies the entries into a map sized for them. (maps.Clone would
// keep the old table's size.)
func (sh *memoryShard) rebuild() {
	fresh := make(map[string]memoryEntry, len(sh.entries))
	maps.Copy(fresh, sh.entries)
	sh.entries = fresh
	sh.peak = len(fresh)
}

// Len returns how many keys the store holds.
func (s *MemoryStore) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.entries)
		sh.mu.Unlock()
	}
	return n
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
