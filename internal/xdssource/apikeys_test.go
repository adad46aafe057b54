package xdssource

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tollgate/tollgate/internal/catalog"
	"github.com/tollgate/tollgate/internal/keys"
	"github.com/tollgate/tollgate/internal/resources"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// TestKeyBatch: keys as the control plane sends them are compiled as they
// arrive; a name that does not match its key, a key that is not valid and
// a resource of another type refuse the response.
func TestKeyBatch(t *testing.T) {
	apps := map[string]*catalog.Application{"shop": {ID: "shop"}}
	sent := func(name string, k proto.Message, version string) *discovery.Resource {
		raw, err := cache.MarshalResource(k)
		if err != nil {
			t.Fatal(err)
		}
		if version == "" {
			version = cache.HashResource(raw)
		}
		return &discovery.Resource{Name: name, Version: version, Resource: &anypb.Any{TypeUrl: "type.googleapis.com/" + string(k.ProtoReflect().Descriptor().FullName()), Value: raw}}
	}
	upper := &tollgatev1.ApiKey{Application: "shop", Sha256: strings.ToUpper(keyName(0xab))}
	good := &discovery.DeltaDiscoveryResponse{TypeUrl: resources.ApiKey, Resources: []*discovery.Resource{
		sent(keyName(1), key(1), ""),
		sent(keyName(0xab), upper, ""),           // the name is the hash in lower case
		sent(keyName(2), key(2), "not-a-sha256"), // any other version is kept as it is
		sent(keyName(3), &tollgatev1.ApiKey{Application: "later", Sha256: keyName(3)}, ""), // held
	}, RemovedResources: []string{keyName(4), "not-a-key"}}
	b := newKeyBatch(apps)
	if err := b.add(good); err != nil {
		t.Fatal(err)
	}
	versioned := 0
	for _, e := range b.set {
		if e.Version != (keys.Version{}) {
			versioned++
		}
	}
	if len(b.set) != 4 || versioned != 3 || b.other[digestN(t, 2)] != "not-a-sha256" || len(b.removed) != 1 || b.removed[0] != digestN(t, 4) {
		t.Fatalf("batch: %d set, %d with SHA-256 versions, other %v, removed %v", len(b.set), versioned, b.other, b.removed)
	}
	if b.set[0].Key.AppID != "shop" || b.set[3].Key.AppID != "later" || b.journal.len() != 4 {
		t.Errorf("compiled %+v, %d journalled", b.set, b.journal.len())
	}
	for _, bad := range []struct {
		name string
		res  *discovery.Resource
		want string
	}{
		{"name of another key", sent(keyName(9), key(1), ""), "is named"},
		{"name in upper case", sent(strings.ToUpper(keyName(0xab)), upper, ""), "is named"},
		{"not hex", sent(keyName(1), &tollgatev1.ApiKey{Application: "shop", Sha256: "zz"}, ""), "sha256"},
		{"another type", sent(keyName(1), &tollgatev1.Application{Id: "x"}, ""), "the resource is a"},
	} {
		err := newKeyBatch(apps).add(&discovery.DeltaDiscoveryResponse{TypeUrl: resources.ApiKey, Resources: []*discovery.Resource{bad.res}})
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: %v, want an error with %q", bad.name, err, bad.want)
		}
	}
}

// FuzzKeyNameOf: the name read from a key's encoding without decoding it
// is the name of the decoded key, for any bytes that decode.
func FuzzKeyNameOf(f *testing.F) {
	for _, k := range []*tollgatev1.ApiKey{key(1), {Sha256: "ABC", Name: "n", Scopes: []string{"a"}}, {}} {
		raw, _ := proto.Marshal(k)
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var m tollgatev1.ApiKey
		decodeErr := proto.Unmarshal(raw, &m)
		name, err := keyNameOf(raw)
		if decodeErr != nil {
			return // refused by the decode first, in every caller
		}
		if err != nil || name != resources.NameOf(resources.ApiKey, &m) {
			t.Fatalf("keyNameOf = %q, %v; decoded name %q", name, err, resources.NameOf(resources.ApiKey, &m))
		}
	})
}

// TestKeyVersionsByName: batches small and large, versions that are
// SHA-256s and others, keys repeated and removed within a batch, applied
// to an index and the other versions; what a reconnect sends is checked
// against a plain map after each.
func TestKeyVersionsByName(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var x *keys.APIKeyIndex
	other, want := otherKeyVersions{}, map[string]string{}
	for round := range 300 {
		b := newKeyBatch(nil)
		size := rng.IntN(20)
		if round%50 == 0 {
			size = 3000
		}
		for range size {
			d := digestN(t, rng.IntN(5000))
			if rng.IntN(7) == 0 {
				v := fmt.Sprint("v", round) // not a SHA-256
				b.keep(keys.Entry{Digest: d}, v, [32]byte{}, false)
				want[d.String()] = v
				continue
			}
			var sum [32]byte
			binary.BigEndian.PutUint64(sum[:], rng.Uint64())
			b.keep(keys.Entry{Digest: d}, "", sum, true)
			want[d.String()] = hex.EncodeToString(sum[:])
		}
		for range rng.IntN(20) {
			d := digestN(t, rng.IntN(5000))
			b.removed = append(b.removed, d)
		}
		for _, d := range b.removed { // removal wins within a batch
			delete(want, d.String())
		}
		x = x.With(b.set, b.removed)
		other.change(b)
		if got := keyVersionsByName(x, other); !maps.Equal(got, want) {
			t.Fatalf("round %d: %d versions, want %d", round, len(got), len(want))
		}
	}
}
