package ratelimit

import (
	"context"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// All tests here run on a fakeClock (or in a synctest bubble): the store's
// time moves only when a test moves it, so every count is exact.

var (
	daily     = Limit{Requests: 100, Per: 24 * time.Hour}                // T = 14m24s, no burst
	perMinute = Limit{Requests: 5, Per: time.Minute, Burst: 2}           // T = 12s, 3 at once
	perSecond = Limit{Requests: 10, Per: time.Second, Burst: 4}          // T = 100ms, 5 at once
	hourly    = Limit{Requests: 4, Per: time.Hour, Burst: 3}             // T = 15m, 4 at once
	shortTerm = Limit{Requests: 2, Per: 10 * time.Second, Burst: 1}      // T = 5s, 2 at once
	longTerm  = Limit{Requests: 1000, Per: 7 * 24 * time.Hour, Burst: 9} // lives for days
)

func newTestClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

// admitN asks n times for key under l and returns how many were admitted.
func admitN(s *MemoryStore, key string, l Limit, n int) int {
	items := []Item{item(key, l)}
	res := make([]Result, 1)
	admitted := 0
	for range n {
		if ok, _ := s.Admit(context.Background(), items, res); ok {
			admitted++
		}
	}
	return admitted
}

// keysInShard returns n distinct keys, named prefix0, prefix1, ..., that
// s keeps in shard.
func keysInShard(s *MemoryStore, shard, n int, prefix string) []string {
	var keys []string
	for i := 0; len(keys) < n; i++ {
		if k := prefix + strconv.Itoa(i); s.shardOf(k) == shard {
			keys = append(keys, k)
		}
	}
	return keys
}

// TestMemoryStoreCap offers every shard twice the keys it may hold, all
// live: a daily quota of 100, which a client may spend at once, so the
// floors of evicted keys never refuse a new one and every key is stored.
func TestMemoryStoreCap(t *testing.T) {
	quota := Limit{Requests: 100, Per: 24 * time.Hour, Burst: 99}
	for _, tc := range []struct {
		name        string
		maxKeys     int
		wantInShard int
	}{
		{"default", 0, DefaultMemoryMaxKeys / memoryShards},
		{"a multiple of the shards", 640, 10},
		{"rounded down per shard", 1000, 15},
		{"at least one per shard", 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evicted := 0
			s := NewMemoryStore(MemoryOptions{Clock: newTestClock(), MaxKeys: tc.maxKeys, OnEvict: func(n int) { evicted += n }})
			var offered [memoryShards]int
			keys := 0
			for ; slices.Min(offered[:]) <= 2*tc.wantInShard; keys++ {
				key := "tg:{anon:10.0." + strconv.Itoa(keys) + "}:p:0"
				sh := s.shardOf(key)
				offered[sh]++
				if admitN(s, key, quota, 1) != 1 {
					t.Fatalf("key %d refused", keys)
				}
				if n := len(s.shards[sh].entries); n > tc.wantInShard {
					t.Fatalf("after %d keys, shard %d holds %d, more than its %d", keys+1, sh, n, tc.wantInShard)
				}
			}
			bound := tc.maxKeys
			if bound == 0 {
				bound = DefaultMemoryMaxKeys
			}
			if n, want := s.Len(), tc.wantInShard*memoryShards; n != want || n > max(bound, memoryShards) {
				t.Errorf("the store holds %d keys, want %d (MaxKeys %d)", n, want, tc.maxKeys)
			}
			// Each key past a full shard evicted one live key.
			if want := keys - tc.wantInShard*memoryShards; evicted != want {
				t.Errorf("OnEvict counted %d, want %d", evicted, want)
			}
		})
	}
}

// TestMemoryStoreEviction fills one shard (4 keys), then stores one more
// key and checks which keys went and what the shard remembers of them.
func TestMemoryStoreEviction(t *testing.T) {
	type request struct {
		limit Limit
		n     int // requests at once
	}
	for _, tc := range []struct {
		name       string
		before     []request     // keys k0, k1, ... in order
		wait       time.Duration // between those and the new key
		wantHeld   []int         // of k0, k1, ..., besides the new key
		wantFloor  map[limitShape]time.Duration
		wantEvicts int
	}{
		{
			name:     "expired keys go before live ones",
			before:   []request{{perSecond, 1}, {daily, 1}, {perSecond, 1}, {daily, 1}},
			wait:     time.Second, // the per-second keys' TATs have passed
			wantHeld: []int{1, 3},
		},
		{
			// The shard fits in one sample: the soonest TAT is found.
			name:       "all live: the soonest TAT goes and becomes its shape's floor",
			before:     []request{{hourly, 3}, {hourly, 1}, {hourly, 4}, {hourly, 2}},
			wantHeld:   []int{0, 2, 3},
			wantFloor:  map[limitShape]time.Duration{shapeOf(hourly): hourly.Interval()},
			wantEvicts: 1,
		},
		{
			name:       "mixed shapes: the floor is the evicted key's shape's",
			before:     []request{{hourly, 2}, {daily, 1}, {hourly, 4}, {hourly, 3}},
			wantHeld:   []int{0, 2, 3},
			wantFloor:  map[limitShape]time.Duration{shapeOf(daily): daily.Interval()},
			wantEvicts: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newTestClock()
			start := clock.Now()
			var evictions []int
			var s *MemoryStore
			s = NewMemoryStore(MemoryOptions{Clock: clock, MaxKeys: 4 * memoryShards, OnEvict: func(n int) {
				// Called outside the locks: the shard is free.
				if !s.shards[0].mu.TryLock() {
					t.Error("OnEvict called with the shard locked")
				} else {
					s.shards[0].mu.Unlock()
				}
				evictions = append(evictions, n)
			}})
			keys := keysInShard(s, 0, len(tc.before)+1, "k")
			for i, r := range tc.before {
				if got := admitN(s, keys[i], r.limit, r.n); got != r.n {
					t.Fatalf("filling: %s admitted %d of %d", keys[i], got, r.n)
				}
			}
			clock.Advance(tc.wait)
			if admitN(s, keys[len(tc.before)], longTerm, 1) != 1 {
				t.Fatal("the new key was refused")
			}

			sh := &s.shards[0]
			var held []int
			for i := range tc.before {
				if _, ok := sh.entries[keys[i]]; ok {
					held = append(held, i)
				}
			}
			if _, ok := sh.entries[keys[len(tc.before)]]; !ok {
				t.Error("the new key is not held")
			}
			if !slices.Equal(held, tc.wantHeld) {
				t.Errorf("held %v, want %v", held, tc.wantHeld)
			}
			floors := map[limitShape]time.Duration{}
			for shape, floor := range sh.floors {
				floors[shape] = time.Unix(0, floor).Sub(start)
			}
			if !maps.Equal(floors, tc.wantFloor) {
				t.Errorf("floors %v, want %v", floors, tc.wantFloor)
			}
			if total := sum(evictions); total != tc.wantEvicts {
				t.Errorf("OnEvict counted %d (calls %v), want %d", total, evictions, tc.wantEvicts)
			}
		})
	}
}

func shapeOf(l Limit) limitShape { return limitShape{l.Interval(), l.Tolerance()} }

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// TestMemoryStoreFloorIsPerShape: in a shard that holds one key, an
// evicted key's TAT holds back new keys of its shape until it passes, and
// never keys of another shape.
func TestMemoryStoreFloorIsPerShape(t *testing.T) {
	clock := newTestClock()
	s := NewMemoryStore(MemoryOptions{Clock: clock, MaxKeys: memoryShards}) // one key per shard
	k := keysInShard(s, 0, 5, "k")
	steps := []struct {
		name  string
		key   string
		limit Limit
		wait  time.Duration // before asking
		ask   int
		want  int
	}{
		{"a fresh hourly key takes its burst", k[0], hourly, 0, 5, 4},
		{"a second hourly key evicts the first", k[1], hourly, 0, 1, 1},
		// k0's TAT, now+4T, is the floor: over the tolerance of 3T.
		{"the evicted key comes back no fresher", k[0], hourly, 0, 1, 0},
		{"nor does any new hourly key", k[2], hourly, 0, 1, 0},
		{"a per-second key is not held back", k[3], perSecond, 0, 6, 5},
		{"once the floor is within tolerance, one more", k[2], hourly, hourly.Interval(), 4, 1},
		{"once the floor has passed, a full burst", k[4], hourly, 3 * hourly.Interval(), 5, 4},
	}
	for _, st := range steps {
		clock.Advance(st.wait)
		if got := admitN(s, st.key, st.limit, st.ask); got != st.want {
			t.Fatalf("%s: admitted %d of %d, want %d", st.name, got, st.ask, st.want)
		}
	}
}

// TestMemoryStoreEvictionNeverOverAdmits drives many keys, some hot, some
// seen once, through a store far too small for them, from several
// goroutines, and checks for every key that its admissions in any period
// never exceed what GCRA allows in that period, however often the key was
// evicted and came back.
func TestMemoryStoreEvictionNeverOverAdmits(t *testing.T) {
	limits := []Limit{perMinute, shortTerm}
	for _, tc := range []struct {
		name    string
		maxKeys int
	}{
		{"one key per shard", memoryShards},
		{"four keys per shard", 4 * memoryShards},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const (
				hotKeys  = 40
				coldKeys = 3000
				workers  = 4
				perStep  = 4 // requests per worker per step
				steps    = 1500
			)
			clock := newTestClock()
			start := clock.Now()
			var evicted int
			var mu sync.Mutex // guards evicted, admissions and ownTAT
			s := NewMemoryStore(MemoryOptions{Clock: clock, MaxKeys: tc.maxKeys, OnEvict: func(n int) {
				mu.Lock()
				evicted += n
				mu.Unlock()
			}})
			keyLimit := func(key int) Limit { return limits[key%len(limits)] }
			keyName := func(key int) string { return "tg:{k" + strconv.Itoa(key) + "}:p:0" }
			admissions := map[int][]time.Duration{} // key -> times since start
			// ownTAT is each key's TAT replayed from its own admissions, as
			// an unbounded store would hold it; keys whose TAT has passed
			// are dropped.
			ownTAT := map[int]time.Duration{}
			var cameBack atomic.Int64 // requests for a forgotten key whose own TAT had not passed

			pace := rand.New(rand.NewPCG(1, 2)) // how far the clock moves after each step
			for step := range steps {
				now := clock.Now().Sub(start)
				forgotten := map[int]bool{}
				for key, tat := range ownTAT {
					name := keyName(key)
					_, held := s.shards[s.shardOf(name)].entries[name]
					switch {
					case tat <= now:
						delete(ownTAT, key)
					case !held:
						forgotten[key] = true
					}
				}
				var wg sync.WaitGroup
				for w := range workers {
					wg.Go(func() {
						rng := rand.New(rand.NewPCG(uint64(step), uint64(w)))
						res := make([]Result, 1)
						for range perStep {
							key := hotKeys + rng.IntN(coldKeys)
							if rng.IntN(2) == 0 {
								key = rng.IntN(hotKeys)
							}
							if forgotten[key] {
								cameBack.Add(1)
							}
							ok, _ := s.Admit(context.Background(), []Item{item(keyName(key), keyLimit(key))}, res)
							if ok {
								mu.Lock()
								admissions[key] = append(admissions[key], now)
								ownTAT[key] = max(ownTAT[key], now) + keyLimit(key).Interval()
								mu.Unlock()
							}
						}
					})
				}
				wg.Wait()
				clock.Advance(time.Duration(pace.IntN(1000)) * time.Millisecond)
			}

			for key, times := range admissions {
				l := keyLimit(key)
				for i := range times {
					for j := i; j < len(times); j++ {
						period := times[j] - times[i]
						if n, most := int64(j-i+1), gcraAllows(l, period); n > most {
							t.Fatalf("key %d admitted %d times in %v, GCRA allows %d", key, n, period, most)
						}
					}
				}
			}
			// Not vacuous: live keys were evicted and asked again.
			if evicted < 1000 || cameBack.Load() < 100 {
				t.Fatalf("%d live keys evicted, %d requests for forgotten live keys: the store was not under pressure", evicted, cameBack.Load())
			}
			t.Logf("%d live keys evicted, %d requests for forgotten live keys", evicted, cameBack.Load())
			if n := s.Len(); n > tc.maxKeys {
				t.Fatalf("the store holds %d keys, over %d", n, tc.maxKeys)
			}
		})
	}
}

func TestMemoryStoreSweepReleasesMemory(t *testing.T) {
	for _, tc := range []struct {
		name        string
		liveEvery   int // every liveEvery-th key is live after the wait; 0: none
		wantRebuilt bool
	}{
		{"all expired: every map rebuilt", 0, true},
		{"a tenth live: rebuilt", 10, true},
		{"half live: kept", 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newTestClock()
			s := NewMemoryStore(MemoryOptions{Clock: clock})
			perShard := 2 * rebuildMinPeak
			var offered [memoryShards]int
			live := 0
			for i := 0; slices.Min(offered[:]) < perShard; i++ {
				l := perSecond
				if tc.liveEvery > 0 && i%tc.liveEvery == 0 {
					l = daily
					live++
				}
				key := "k" + strconv.Itoa(i)
				offered[s.shardOf(key)]++
				admitN(s, key, l, 1)
			}
			var tables [memoryShards]uintptr // map identities
			for i := range s.shards {
				tables[i] = reflect.ValueOf(s.shards[i].entries).Pointer()
			}
			clock.Advance(time.Second)
			if left := s.Sweep(); left != live {
				t.Fatalf("%d keys left, want the %d live ones", left, live)
			}
			for i := range s.shards {
				rebuilt := reflect.ValueOf(s.shards[i].entries).Pointer() != tables[i]
				if rebuilt != tc.wantRebuilt {
					t.Fatalf("shard %d (%d keys stored, %d left): rebuilt %v, want %v",
						i, offered[i], len(s.shards[i].entries), rebuilt, tc.wantRebuilt)
				}
			}
		})
	}
}

// TestMemoryStoreSweepEvery runs in a synctest bubble: the ticker and the
// store's system clock both read the bubble's fake time, which moves only
// when every goroutine in the bubble is blocked.
func TestMemoryStoreSweepEvery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewMemoryStore(MemoryOptions{})
		admitN(s, "short", perSecond, 1)
		admitN(s, "long", daily, 1)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { s.SweepEvery(ctx, time.Minute); close(done) }()

		time.Sleep(time.Minute + time.Second)
		synctest.Wait() // the sweep due at one minute has run
		if n := s.Len(); n != 1 {
			t.Fatalf("%d keys after a sweep, want the daily one", n)
		}
		cancel()
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("SweepEvery did not return when its context ended")
		}
	})
}
