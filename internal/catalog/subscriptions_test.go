package catalog

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestSubscriptionsFollowAMap applies random changes to a table and to
// a map, and checks that they agree, and that each change left the
// table it was made from as it was.
func TestSubscriptionsFollowAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	key := func() SubscriptionKey {
		return SubscriptionKey{App: fmt.Sprintf("app-%d", rng.IntN(40)), API: fmt.Sprintf("api-%d", rng.IntN(3))}
	}
	type want struct {
		state    SubscriptionState
		withheld bool
	}
	table, model := NewSubscriptions(nil, nil), map[SubscriptionKey]want{}
	check := func(step int, table *Subscriptions, model map[SubscriptionKey]want) {
		t.Helper()
		held, withheld := 0, 0
		for app := range 40 {
			for api := range 3 {
				k := SubscriptionKey{fmt.Sprintf("app-%d", app), fmt.Sprintf("api-%d", api)}
				w, ok := model[k]
				sub := table.Get(k.App, k.API)
				switch {
				case table.IsWithheld(k) != (ok && w.withheld):
					t.Fatalf("step %d: %v withheld = %v, want %v", step, k, table.IsWithheld(k), ok && w.withheld)
				case ok && !w.withheld && (sub == nil || sub.State != w.state || sub.Key() != k):
					t.Fatalf("step %d: %v = %+v, want state %v", step, k, sub, w.state)
				case (!ok || w.withheld) && sub != nil:
					t.Fatalf("step %d: %v = %+v, want none", step, k, sub)
				}
				if ok && w.withheld {
					withheld++
				} else if ok {
					held++
				}
			}
		}
		n := 0
		for range table.All() {
			n++
		}
		if table.Len() != held || n != held || table.Withheld() != withheld {
			t.Fatalf("step %d: Len %d, All %d, Withheld %d; want %d, %d, %d", step, table.Len(), n, table.Withheld(), held, held, withheld)
		}
	}
	for step := range 300 {
		var set []*Subscription
		var withheld, remove []SubscriptionKey
		next := map[SubscriptionKey]want{}
		for k, v := range model {
			next[k] = v
		}
		for range rng.IntN(6) {
			k := key()
			s := &Subscription{AppID: k.App, APIID: k.API, State: SubscriptionState(rng.IntN(3))}
			set = append(set, s)
			next[k] = want{state: s.State}
		}
		for range rng.IntN(2) {
			k := key()
			withheld = append(withheld, k)
			next[k] = want{withheld: true}
		}
		for range rng.IntN(4) {
			k := key()
			remove = append(remove, k)
			delete(next, k)
		}
		before := table
		table = table.With(set, withheld, remove)
		check(step, before, model)
		check(step, table, next)
		model = next
	}
	if (*Subscriptions)(nil).Get("a", "b") != nil || (*Subscriptions)(nil).Len() != 0 {
		t.Error("a nil table is not empty")
	}
}
