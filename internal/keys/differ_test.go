package keys

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// TestDifferFindsTheChange compares random lists with random indexes
// and checks that applying the result gives the list, and that only
// what differs is in it.
func TestDifferFindsTheChange(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	digest := func(i int) Digest {
		var d Digest
		copy(d[:], fmt.Sprintf("%032d", i))
		return d
	}
	entry := func(i, app int) Entry {
		e := Entry{Digest: digest(i), Key: APIKey{AppID: fmt.Sprintf("app-%d", app)}}
		if app%3 == 0 {
			e.Key.Limits = &KeyLimits{Scopes: []string{"read"}, ScopeText: "read"}
		}
		return e
	}
	for round := range 200 {
		var indexed []Entry
		for i := range rng.IntN(600) {
			if rng.IntN(3) > 0 {
				indexed = append(indexed, entry(i, rng.IntN(4)))
			}
		}
		x := NewAPIKeyIndex(indexed)
		want := map[Digest]APIKey{}
		d := x.NewDiffer()
		changed := 0
		for i := range 600 {
			if rng.IntN(2) == 0 {
				continue
			}
			e := entry(i, rng.IntN(4))
			if old, ok := x.Get(e.Digest); !ok || !old.Equal(e.Key) {
				changed++
			}
			want[e.Digest] = e.Key
			if !d.Add(e) {
				t.Fatalf("round %d: key %d refused", round, i)
			}
		}
		set, remove := d.Result()
		if len(set) != changed {
			t.Errorf("round %d: %d entries set, want the %d that differ", round, len(set), changed)
		}
		got := x.With(set, remove)
		if got.Len() != len(want) {
			t.Fatalf("round %d: %d keys after the change, want %d", round, got.Len(), len(want))
		}
		for dg, k := range want {
			if g, ok := got.Get(dg); !ok || !g.Equal(k) {
				t.Fatalf("round %d: key %x = %+v, want %+v", round, dg[:4], g, k)
			}
		}
		if len(want) > 0 && round%10 == 0 {
			var any Digest
			for dg := range want {
				any = dg
				break
			}
			if d.Add(Entry{Digest: any}) || !d.Duplicate() {
				t.Errorf("round %d: a digest listed twice was taken", round)
			}
		}
	}
}

// TestAPIKeyEqual: keys differing in any field are not equal, so that a
// change to any one of them is applied.
func TestAPIKeyEqual(t *testing.T) {
	id, _ := ParseKeyID("k3y1d0000042")
	other, _ := ParseKeyID("k3y1d0000043")
	base := APIKey{Name: "ci", ID: id, AppID: "mobile", ExpiresAt: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
		Limits: &KeyLimits{AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, Scopes: []string{"a"}, ScopeText: "a"}}
	cases := []struct {
		name string
		edit func(k *APIKey)
		same bool
	}{
		{"the same", func(*APIKey) {}, true},
		{"the same expiry in another zone", func(k *APIKey) { k.ExpiresAt = k.ExpiresAt.In(time.FixedZone("CET", 3600)) }, true},
		{"name", func(k *APIKey) { k.Name = "cd" }, false},
		{"id", func(k *APIKey) { k.ID = other }, false},
		{"no id", func(k *APIKey) { k.ID = 0 }, false},
		{"application", func(k *APIKey) { k.AppID = "web" }, false},
		{"expiry", func(k *APIKey) { k.ExpiresAt = time.Time{} }, false},
		{"no limits", func(k *APIKey) { k.Limits = nil }, false},
		{"scopes", func(k *APIKey) { k.Limits = &KeyLimits{AllowedCIDRs: base.Limits.AllowedCIDRs, Scopes: []string{"b"}} }, false},
		{"addresses", func(k *APIKey) { k.Limits = &KeyLimits{Scopes: base.Limits.Scopes} }, false},
	}
	for _, tc := range cases {
		k := base
		tc.edit(&k)
		if got := k.Equal(base); got != tc.same || base.Equal(k) != got {
			t.Errorf("%s: Equal = %v, want %v", tc.name, got, tc.same)
		}
	}
}
