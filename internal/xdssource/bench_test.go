package xdssource

import (
	"fmt"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"

	"github.com/tollgate/tollgate/internal/model"
	"github.com/tollgate/tollgate/internal/resources"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// benchState holds keys API keys over apps applications, each subscribed
// to one API.
func benchState(b *testing.B, keys, apps int) *Client {
	b.Helper()
	r := &tollgatev1.Resources{Apis: []*tollgatev1.Api{{Id: "orders", Security: []string{"apiKey"},
		Operations: []*tollgatev1.Operation{{Path: "/**"}}}}}
	for i := range apps {
		id := fmt.Sprintf("app-%d", i)
		r.Applications = append(r.Applications, &tollgatev1.Application{Id: id})
		r.Subscriptions = append(r.Subscriptions, &tollgatev1.Subscription{Application: id, Api: "orders", State: "active"})
	}
	h, err := heldFrom(r)
	if err != nil {
		b.Fatal(err)
	}
	c, err := New(Options{Address: "127.0.0.1:1", Node: "bench", Store: model.NewStore(&model.Snapshot{})})
	if err != nil {
		b.Fatal(err)
	}
	c.once.Do(func() { close(c.loaded) })
	snap, err := c.compile(h, compiled{}, true)
	if err != nil {
		b.Fatal(err)
	}
	c.publish(snap, func() { c.held = h })
	batch := newKeyBatch(snap.Applications)
	for i := range keys {
		receive(b, batch, &tollgatev1.ApiKey{Application: fmt.Sprintf("app-%d", i%apps), Sha256: fmt.Sprintf("%064x", i+1)})
	}
	if err := c.applyKeys(batch, "v0"); err != nil {
		b.Fatal(err)
	}
	return c
}

// receive adds a key to a batch as the control plane sends it.
func receive(b testing.TB, batch *keyBatch, k *tollgatev1.ApiKey) {
	b.Helper()
	raw, err := cache.MarshalResource(k)
	if err != nil {
		b.Fatal(err)
	}
	if err := batch.received(resources.NameOf(resources.ApiKey, k), cache.HashResource(raw), raw); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkApplyOneKeyChange is the replica's cost of one key added to a
// large state: what the control plane's propagation of a key costs each
// replica.
func BenchmarkApplyOneKeyChange(b *testing.B) {
	for _, n := range []struct{ keys, apps int }{{10_000, 1_000}, {1_000_000, 100_000}} {
		b.Run(fmt.Sprintf("keys=%d", n.keys), func(b *testing.B) {
			c := benchState(b, n.keys, n.apps)
			b.ResetTimer()
			for i := range b.N {
				batch := newKeyBatch(c.last.Applications)
				receive(b, batch, &tollgatev1.ApiKey{Application: "app-0", Sha256: fmt.Sprintf("%064x", n.keys+1+i)})
				if err := c.applyKeys(batch, "v"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkApplyOneSubscriptionChange is the replica's cost of blocking
// one subscription in a large state: it is applied on its own, so it
// should not grow with the state.
func BenchmarkApplyOneSubscriptionChange(b *testing.B) {
	for _, n := range []struct{ keys, apps int }{{10_000, 1_000}, {1_000_000, 100_000}} {
		b.Run(fmt.Sprintf("apps=%d", n.apps), func(b *testing.B) {
			c := benchState(b, n.keys, n.apps)
			states := []string{"blocked", "active"}
			b.ResetTimer()
			for i := range b.N {
				s := &tollgatev1.Subscription{Application: "app-0", Api: "orders", State: states[i%2]}
				v, err := versionOf(s)
				if err != nil {
					b.Fatal(err)
				}
				ch := &change{updated: map[string]entry{resources.NameOf(resources.Subscription, s): {msg: s, version: v}}, removed: map[string]bool{}}
				if err := c.applyChange(resources.Subscription, ch, "v"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkApplyOneApplicationChange is the replica's cost of renaming
// one application in a large state: it is applied on its own, at the
// cost of copying the application, client id and certificate maps.
func BenchmarkApplyOneApplicationChange(b *testing.B) {
	for _, n := range []struct{ keys, apps int }{{10_000, 1_000}, {1_000_000, 100_000}} {
		b.Run(fmt.Sprintf("apps=%d", n.apps), func(b *testing.B) {
			c := benchState(b, n.keys, n.apps)
			b.ResetTimer()
			for i := range b.N {
				a := &tollgatev1.Application{Id: "app-0", Name: fmt.Sprintf("name %d", i)}
				v, err := versionOf(a)
				if err != nil {
					b.Fatal(err)
				}
				ch := &change{updated: map[string]entry{a.GetId(): {msg: a, version: v}}, removed: map[string]bool{}}
				if err := c.applyChange(resources.Application, ch, "v"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// heldFrom names and versions a bundle's resources.
func heldFrom(r *tollgatev1.Resources) (held, error) {
	set, err := resources.Split(r)
	if err != nil {
		return nil, err
	}
	h := held{}
	for t, byName := range set {
		h[t] = make(map[string]entry, len(byName))
		for name, m := range byName {
			v, err := versionOf(m)
			if err != nil {
				return nil, err
			}
			h[t][name] = entry{msg: m, version: v}
		}
	}
	return h, nil
}
