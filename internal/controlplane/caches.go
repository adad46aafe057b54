package controlplane

import (
	"fmt"
	"slices"
	"sync"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/internal/resources"
)

// caches holds one chunked linear cache per kind of resource and what was
// last put in them.
type caches struct {
	byType map[string]*chunkedCache
	mux    *cache.MuxCache

	mu      sync.Mutex // serialises updates
	current resources.Set
}

func newCaches(versionPrefix string, chunkBytes int) *caches {
	c := &caches{byType: map[string]*chunkedCache{}, current: resources.Set{}}
	muxed := map[string]cache.Cache{}
	for _, t := range resources.Types {
		lc := newChunkedCache(cache.NewLinearCache(t, cache.WithVersionPrefix(versionPrefix), cache.WithLogger(quietLogger{})), chunkBytes)
		c.byType[t] = lc
		muxed[t] = lc
		c.current[t] = map[string]proto.Message{}
	}
	c.mux = &cache.MuxCache{
		Classify:      func(r *cache.Request) string { return r.GetTypeUrl() },
		ClassifyDelta: func(r *cache.DeltaRequest) string { return r.GetTypeUrl() },
		Caches:        muxed,
	}
	return c
}

// Change counts what one update did to one kind.
type Change struct {
	Type             string
	Updated, Removed int
}

// apply makes the caches hold next, updating only the resources that
// differ: kinds in dependency order, so that a replica tends to receive a
// resource before those that refer to it. Nothing is sent for a kind
// that did not change.
func (c *caches) apply(next resources.Set) ([]Change, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var changes []Change
	for _, t := range resources.Types {
		cur, want := c.current[t], next[t]
		update := map[string]types.Resource{}
		var remove []string
		for name, m := range want {
			if old, ok := cur[name]; !ok || !proto.Equal(old, m) {
				update[name] = m
			}
		}
		for name := range cur {
			if _, ok := want[name]; !ok {
				remove = append(remove, name)
			}
		}
		if len(update) == 0 && len(remove) == 0 {
			continue
		}
		slices.Sort(remove)
		if err := c.byType[t].UpdateResources(update, remove); err != nil {
			return changes, fmt.Errorf("updating %s: %w", resources.ShortName(t), err)
		}
		if len(update) >= warmAfter {
			c.byType[t].warm(t)
		}
		if want == nil {
			want = map[string]proto.Message{}
		}
		c.current[t] = want
		changes = append(changes, Change{Type: t, Updated: len(update), Removed: len(remove)})
	}
	return changes, nil
}

// counts is the number of resources held per kind.
func (c *caches) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for t, byName := range c.current {
		out[resources.ShortName(t)] = len(byName)
	}
	return out
}

// total is the number of resources held.
func (c *caches) total() int {
	n := 0
	for _, k := range c.counts() {
		n += k
	}
	return n
}

// quietLogger drops go-control-plane's debug chatter; Tollgate logs what
// matters itself.
type quietLogger struct{}

func (quietLogger) Debugf(string, ...any) {}
func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Warnf(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}

// patch updates only the named resources: update holds new or changed
// ones, remove names those that are gone. Kinds go in dependency order;
// a resource equal to what the cache holds is not sent again.
func (c *caches) patch(update resources.Set, remove map[string][]string) ([]Change, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var changes []Change
	for _, t := range resources.Types {
		cur := c.current[t]
		send := map[string]types.Resource{}
		for name, m := range update[t] {
			if old, ok := cur[name]; !ok || !proto.Equal(old, m) {
				send[name] = m
			}
		}
		var gone []string
		for _, name := range remove[t] {
			if _, ok := cur[name]; ok {
				if _, updated := send[name]; !updated {
					gone = append(gone, name)
				}
			}
		}
		if len(send) == 0 && len(gone) == 0 {
			continue
		}
		slices.Sort(gone)
		if err := c.byType[t].UpdateResources(send, gone); err != nil {
			return changes, fmt.Errorf("updating %s: %w", resources.ShortName(t), err)
		}
		// current is shared with earlier readers of counts only; a copy
		// per change would cost O(all) for one key.
		for name, m := range send {
			cur[name] = m.(proto.Message)
		}
		for _, name := range gone {
			delete(cur, name)
		}
		changes = append(changes, Change{Type: t, Updated: len(send), Removed: len(gone)})
	}
	return changes, nil
}
