package controlplane

import (
	"context"
	"maps"
	"slices"
	"sync"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/internal/resources"
)

// DefaultChunkBytes bounds one xDS response: well below gRPC's default
// 4 MiB receive limit, so that no state size is a cliff.
const DefaultChunkBytes = 1 << 20

// chunkedCache is a linear cache whose delta responses are cut into
// pieces of at most maxBytes of resources. A piece leaves the resources
// it does not carry at the versions the replica already had, so the
// server's next watch (opened when the replica acknowledges the piece)
// finds them still changed and sends the next piece at once.
type chunkedCache struct {
	*cache.LinearCache
	maxBytes int
}

func (c *chunkedCache) CreateDeltaWatch(req *cache.DeltaRequest, sub cache.Subscription, out chan cache.DeltaResponse) (func(), error) {
	in := make(chan cache.DeltaResponse, 1)
	cancelInner, err := c.LinearCache.CreateDeltaWatch(req, sub, in)
	if err != nil {
		return nil, err
	}
	// What the replica knew when the watch opened: the server replaces,
	// never alters, the map it hands in.
	known := sub.ReturnedResources()
	done := make(chan struct{})
	go func() {
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
			if cancelInner != nil { // nil when the cache answered at once
				cancelInner()
			}
		})
	}, nil
}

func (c *chunkedCache) chunk(resp cache.DeltaResponse, known map[string]string) cache.DeltaResponse {
	msg, err := resp.GetDeltaDiscoveryResponse()
	if err != nil || proto.Size(msg) <= c.maxBytes {
		return resp
	}
	all := slices.SortedFunc(slices.Values(msg.GetResources()), func(a, b *discovery.Resource) int {
		return compareStrings(a.GetName(), b.GetName())
	})
	size, n := 0, 0
	for n < len(all) && (n == 0 || size+proto.Size(all[n]) <= c.maxBytes) {
		size += proto.Size(all[n])
		n++
	}
	returned := maps.Clone(resp.GetReturnedResources())
	for _, r := range all[n:] {
		if v, ok := known[r.GetName()]; ok {
			returned[r.GetName()] = v
		} else {
			delete(returned, r.GetName())
		}
	}
	version := msg.GetSystemVersionInfo()
	if n < len(all) {
		version += resources.PartialSuffix
	}
	piece := &discovery.DeltaDiscoveryResponse{
		TypeUrl:           msg.GetTypeUrl(),
		SystemVersionInfo: version,
		Resources:         all[:n],
		RemovedResources:  msg.GetRemovedResources(),
	}
	return &pieceResponse{msg: piece, req: resp.GetDeltaRequest(), returned: returned, ctx: resp.GetContext()}
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
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
