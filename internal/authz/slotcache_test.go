package authz

import (
	"strconv"
	"sync"
	"testing"
)

// hitRatio fills a cache of slots with live keys, reads each once more,
// and returns the share still cached.
func hitRatio(slots, live int) float64 {
	c := newSlotCache[int](slots)
	keys := make([]cacheKey, live)
	for i := range keys {
		keys[i] = keyOf("token-" + strconv.Itoa(i))
		c.put(&keys[i], i)
	}
	hits := 0
	for i := range keys {
		if v, ok := c.get(&keys[i]); ok {
			if v != i {
				panic("a key returned another key's value")
			}
			hits++
		}
	}
	return float64(hits) / float64(live)
}

// TestSlotCacheKeepsLiveKeys checks the hit ratios the buckets are for:
// a direct-mapped cache of 16384 slots lost 6% of a thousand live keys
// to collisions.
func TestSlotCacheKeepsLiveKeys(t *testing.T) {
	tests := []struct {
		slots, live int
		min         float64
	}{
		{16384, 1000, 1},
		{16384, 4000, 0.999},
		{262144, 100000, 0.99},
	}
	for _, tt := range tests {
		if got := hitRatio(tt.slots, tt.live); got < tt.min {
			t.Errorf("%d live keys in %d slots: hit ratio %.4f, want at least %.3f", tt.live, tt.slots, got, tt.min)
		}
	}
}

// TestSlotCacheKeepsUsedEntries checks the clock: when a bucket is full,
// a new entry replaces one that was not read since the last sweep, not
// one in use.
func TestSlotCacheKeepsUsedEntries(t *testing.T) {
	c := newSlotCache[int](cacheWays) // one bucket
	keys := make([]cacheKey, 3*cacheWays)
	for i := range keys {
		keys[i] = keyOf("k" + strconv.Itoa(i))
	}
	hot := keys[0]
	c.put(&hot, -1)
	for i := 1; i < len(keys); i++ {
		if _, ok := c.get(&hot); !ok {
			t.Fatalf("the hot entry was evicted by entry %d", i)
		}
		c.put(&keys[i], i)
	}
	if _, ok := c.get(&keys[len(keys)-1]); !ok {
		t.Error("the newest entry is not cached")
	}
}

// TestSlotCacheSizes checks the rounding: at least one bucket, a power
// of two.
func TestSlotCacheSizes(t *testing.T) {
	for _, tt := range []struct{ size, want int }{{0, cacheWays}, {1, cacheWays}, {9, 16}, {16384, 16384}, {16385, 32768}} {
		if got := len(newSlotCache[int](tt.size).slots); got != tt.want {
			t.Errorf("newSlotCache(%d) has %d slots, want %d", tt.size, got, tt.want)
		}
	}
}

// TestSlotCacheConcurrent runs gets and puts from many goroutines, for
// the race detector, and checks that no key ever returns another's value.
func TestSlotCacheConcurrent(t *testing.T) {
	c := newSlotCache[int](64)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 5000 {
				n := (i*7 + g) % 200
				k := keyOf(strconv.Itoa(n))
				if v, ok := c.get(&k); ok && v != n {
					t.Errorf("key %d returned %d", n, v)
					return
				}
				c.put(&k, n)
			}
		})
	}
	wg.Wait()
}
