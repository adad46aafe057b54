package keys

import (
	"fmt"
	"math/rand/v2"
	"testing"
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
	if (APIKey{Limits: &KeyLimits{Scopes: []string{"a"}}}).Equal(APIKey{Limits: &KeyLimits{Scopes: []string{"b"}}}) {
		t.Error("keys with other scopes are equal")
	}
}
