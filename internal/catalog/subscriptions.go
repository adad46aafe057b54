package catalog

import (
	"hash/maphash"
	"iter"
	"maps"
)

// SubscriptionKey names a subscription: an application and an API, by id.
type SubscriptionKey struct{ App, API string }

// subscriptionShards is how many maps a Subscriptions table is cut into:
// a change copies only the maps it touches.
const subscriptionShards = 256

// Subscriptions holds every subscription by application and API id. It
// is never modified once built; With makes a changed copy that shares
// every shard the change leaves alone, so a subscription blocked among a
// hundred thousand costs microseconds. Entries refer to applications and
// APIs by id, so a table outlives a change to either: a subscription
// whose application or API is not there yet grants nothing, and applies
// as soon as they arrive.
type Subscriptions struct {
	seed   maphash.Seed
	shards [subscriptionShards]map[SubscriptionKey]*Subscription
	n      int
	// withheld are subscriptions left out for now (their rate-limit
	// policy has not arrived), so that a change can still count them.
	withheld map[SubscriptionKey]bool
}

// NewSubscriptions builds a table; the last of several entries for one
// key wins. withheld lists subscriptions left out for now.
func NewSubscriptions(subs []*Subscription, withheld []SubscriptionKey) *Subscriptions {
	return (&Subscriptions{seed: maphash.MakeSeed()}).With(subs, withheld, nil)
}

func (s *Subscriptions) shard(app string) int {
	return int(maphash.String(s.seed, app) % subscriptionShards)
}

// Get returns app's subscription to api, or nil.
func (s *Subscriptions) Get(app, api string) *Subscription {
	if s == nil {
		return nil
	}
	m := s.shards[s.shard(app)]
	if m == nil {
		return nil
	}
	return m[SubscriptionKey{app, api}]
}

// Len is how many subscriptions the table holds, withheld ones aside.
func (s *Subscriptions) Len() int {
	if s == nil {
		return 0
	}
	return s.n
}

// Withheld is how many subscriptions are left out for now.
func (s *Subscriptions) Withheld() int {
	if s == nil {
		return 0
	}
	return len(s.withheld)
}

// IsWithheld reports whether the subscription k is left out for now.
func (s *Subscriptions) IsWithheld(k SubscriptionKey) bool {
	return s != nil && s.withheld[k]
}

// All yields every subscription the table holds, in no order.
func (s *Subscriptions) All() iter.Seq[*Subscription] {
	return func(yield func(*Subscription) bool) {
		if s == nil {
			return
		}
		for _, m := range s.shards {
			for _, sub := range m {
				if !yield(sub) {
					return
				}
			}
		}
	}
}

// With returns a table with set added or replaced, withheld marked as
// left out (and out of the table), and remove taken out. For a key in
// several lists, remove wins over withheld, and withheld over set.
func (s *Subscriptions) With(set []*Subscription, withheld, remove []SubscriptionKey) *Subscriptions {
	next := &Subscriptions{seed: s.seed, shards: s.shards, n: s.n, withheld: s.withheld}
	copied := [subscriptionShards]bool{}
	writable := func(app string) map[SubscriptionKey]*Subscription {
		i := next.shard(app)
		if !copied[i] {
			copied[i] = true
			next.shards[i] = maps.Clone(next.shards[i])
			if next.shards[i] == nil {
				next.shards[i] = map[SubscriptionKey]*Subscription{}
			}
		}
		return next.shards[i]
	}
	withheldCopied := false
	unwithhold := func(k SubscriptionKey, keep bool) {
		if next.withheld[k] == keep {
			return
		}
		if !withheldCopied {
			withheldCopied = true
			next.withheld = maps.Clone(next.withheld)
			if next.withheld == nil {
				next.withheld = map[SubscriptionKey]bool{}
			}
		}
		if keep {
			next.withheld[k] = true
		} else {
			delete(next.withheld, k)
		}
	}
	drop := func(k SubscriptionKey) {
		m := writable(k.App)
		if _, ok := m[k]; ok {
			delete(m, k)
			next.n--
		}
	}
	for _, sub := range set {
		k := sub.Key()
		m := writable(k.App)
		if _, ok := m[k]; !ok {
			next.n++
		}
		m[k] = sub
		unwithhold(k, false)
	}
	for _, k := range withheld {
		drop(k)
		unwithhold(k, true)
	}
	for _, k := range remove {
		drop(k)
		unwithhold(k, false)
	}
	return next
}
