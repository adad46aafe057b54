package controlplane

import (
	"context"
	"maps"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/internal/resources"
)

// DefaultChunkBytes bounds one xDS response: well below gRPC's default
// 4 MiB receive limit, so that no state size is a cliff.
const DefaultChunkBytes = 1 << 20

// chunkedCache is a linear cache whose delta responses are cut into
// pieces of at most maxBytes of resources.
//
// A large response is computed once, by the linear cache; its pieces are
// kept, and each is sent when the replica acknowledges the one before.
// The server stores the version map a response returns as what the
// replica knows, and hands that same map back when it opens the next
// watch: the map's identity tells a continuation from a new request. If
// the cache changed meanwhile, the kept pieces are dropped and the linear
// cache computes afresh against what the replica has been sent so far.
type chunkedCache struct {
	*cache.LinearCache
	maxBytes int

	updates atomic.Uint64 // changes to the cache, to tell kept pieces stale
	mu      sync.Mutex
	pending map[uintptr]*remainder // by the identity of the version map sent last
}

// keepPieces bounds how long the rest of a response waits for its
// acknowledgement: a stream that ended leaves it behind.
const keepPieces = 5 * time.Minute

// remainder is what is left of a chunked response.
type remainder struct {
	kept     time.Time
	updates  uint64 // the cache's update count when it was computed
	typeURL  string
	version  string
	rest     []*discovery.Resource
	returned map[string]string // what the replica knows, growing piece by piece
	versions map[string]string // what it will know once every piece is sent
}

func newChunkedCache(lc *cache.LinearCache, maxBytes int) *chunkedCache {
	return &chunkedCache{LinearCache: lc, maxBytes: maxBytes, pending: map[uintptr]*remainder{}}
}

// UpdateResources updates the linear cache and makes kept pieces stale.
func (c *chunkedCache) UpdateResources(update map[string]types.Resource, remove []string) error {
	c.updates.Add(1)
	return c.LinearCache.UpdateResources(update, remove)
}

// warmAfter is the size of an update after which every resource's
// encoding and version are computed at once rather than when the first
// replica asks: a few resources cost that replica nothing, a million
// would cost it seconds.
const warmAfter = 1000

// warm makes the linear cache encode and hash every resource it holds
// now (it keeps both), by answering a replica that knows nothing.
func (c *chunkedCache) warm(typeURL string) {
	out := make(chan cache.DeltaResponse, 1)
	cancel, err := c.LinearCache.CreateDeltaWatch(&cache.DeltaRequest{TypeUrl: typeURL}, knowsNothing{}, out)
	if err != nil {
		return
	}
	select {
	case resp := <-out:
		_, _ = resp.GetDeltaDiscoveryResponse()
	default: // nothing to answer: an empty kind
	}
	if cancel != nil {
		cancel()
	}
}

// knowsNothing is a wildcard subscription that holds no resource.
type knowsNothing struct{}

func (knowsNothing) ReturnedResources() map[string]string     { return map[string]string{} }
func (knowsNothing) SubscribedResources() map[string]struct{} { return map[string]struct{}{} }
func (knowsNothing) IsWildcard() bool                         { return true }

func mapID(m map[string]string) uintptr {
	if m == nil {
		return 0
	}
	return reflect.ValueOf(m).Pointer()
}

func (c *chunkedCache) CreateDeltaWatch(req *cache.DeltaRequest, sub cache.Subscription, out chan cache.DeltaResponse) (func(), error) {
	known := sub.ReturnedResources()
	c.mu.Lock()
	rem := c.pending[mapID(known)]
	delete(c.pending, mapID(known))
	c.mu.Unlock()
	if rem != nil && rem.updates == c.updates.Load() && req.GetErrorDetail() == nil {
		out <- c.next(rem, req, nil) // the channel has room for every kind
		return func() {}, nil
	}
	// The linear cache computes a response as the watch is made, and the
	// server makes watches one request at a time: made here, a million
	// keys would hold up every other kind for seconds. The server cancels
	// a watch (which waits for this) before it touches sub again.
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		in := make(chan cache.DeltaResponse, 1)
		cancelInner, err := c.LinearCache.CreateDeltaWatch(req, sub, in)
		if err != nil {
			return // a type URL this cache does not hold: the mux routes none here
		}
		if cancelInner != nil { // nil when the cache answered at once
			defer cancelInner()
		}
		select {
		case resp := <-in:
			select {
			case out <- c.chunk(resp, known):
			case <-done:
			}
		case <-done:
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			// The server closes out once every watch is cancelled: nothing
			// may be sending on it then.
			<-finished
		})
	}, nil
}

// chunk passes a response that fits, and otherwise starts sending it in
// pieces.
func (c *chunkedCache) chunk(resp cache.DeltaResponse, known map[string]string) cache.DeltaResponse {
	msg, err := resp.GetDeltaDiscoveryResponse()
	if err != nil || proto.Size(msg) <= c.maxBytes {
		return resp
	}
	rem := &remainder{
		updates:  c.updates.Load(),
		typeURL:  msg.GetTypeUrl(),
		version:  msg.GetSystemVersionInfo(),
		rest:     msg.GetResources(),
		versions: resp.GetReturnedResources(),
		// Sized for all it will hold: growing a map of a million costs
		// more than filling it.
		returned: make(map[string]string, len(known)+len(msg.GetResources())),
	}
	maps.Copy(rem.returned, known)
	for _, name := range msg.GetRemovedResources() {
		delete(rem.returned, name)
	}
	return c.next(rem, resp.GetDeltaRequest(), msg.GetRemovedResources())
}

// next sends the next piece of rem and keeps the rest.
func (c *chunkedCache) next(rem *remainder, req *discovery.DeltaDiscoveryRequest, removed []string) cache.DeltaResponse {
	size, n := 0, 0
	for n < len(rem.rest) {
		rs := proto.Size(rem.rest[n])
		if n > 0 && size+rs > c.maxBytes {
			break
		}
		size += rs
		n++
	}
	piece := rem.rest[:n]
	rem.rest = rem.rest[n:]
	for _, r := range piece {
		rem.returned[r.GetName()] = rem.versions[r.GetName()]
	}
	version := rem.version
	if len(rem.rest) > 0 {
		version += resources.PartialSuffix
		now := time.Now()
		rem.kept = now
		c.mu.Lock()
		for id, old := range c.pending {
			if now.Sub(old.kept) > keepPieces {
				delete(c.pending, id)
			}
		}
		c.pending[mapID(rem.returned)] = rem
		c.mu.Unlock()
	}
	msg := &discovery.DeltaDiscoveryResponse{
		TypeUrl:           rem.typeURL,
		SystemVersionInfo: version,
		Resources:         piece,
		RemovedResources:  removed,
	}
	return &pieceResponse{msg: msg, req: req, returned: rem.returned, ctx: context.Background()}
}

// pieceResponse is one piece of a chunked delta response.
type pieceResponse struct {
	msg      *discovery.DeltaDiscoveryResponse
	req      *discovery.DeltaDiscoveryRequest
	returned map[string]string
	ctx      context.Context
}

func (p *pieceResponse) GetDeltaDiscoveryResponse() (*discovery.DeltaDiscoveryResponse, error) {
	return p.msg, nil
}
func (p *pieceResponse) GetDeltaRequest() *discovery.DeltaDiscoveryRequest { return p.req }
func (p *pieceResponse) GetSystemVersion() (string, error)                 { return p.msg.GetSystemVersionInfo(), nil }
func (p *pieceResponse) GetResponseVersion() string                        { return p.msg.GetSystemVersionInfo() }
func (p *pieceResponse) GetNextVersionMap() map[string]string              { return p.returned }
func (p *pieceResponse) GetReturnedResources() map[string]string           { return p.returned }
func (p *pieceResponse) GetContext() context.Context                       { return p.ctx }
