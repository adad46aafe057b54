package model

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tollgate/tollgate/internal/catalog"
	"github.com/tollgate/tollgate/internal/keys"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// applyUniverse is what TestApplyFollowsCompile draws resources from.
var (
	applyApps     = []string{"a0", "a1", "a2", "a3", "a4", "a5"}
	applyAPIs     = []string{"api0", "api1", "api2"}
	applyPolicies = []string{"", "gold", "absent"} // absent: never arrives, so its users are held
)

// applyState is a set of applications and subscriptions by name, as a
// source holds them.
type applyState struct {
	apps map[string]*tollgatev1.Application
	subs map[catalog.SubscriptionKey]*tollgatev1.Subscription
}

func (s applyState) resources() *tollgatev1.Resources {
	r := &tollgatev1.Resources{
		RateLimitPolicies: []*tollgatev1.RateLimitPolicy{{Name: "gold", Limits: []*tollgatev1.Limit{{Requests: 5, Per: durationpb.New(time.Second)}}}},
	}
	for _, id := range applyAPIs[:2] { // api2 never arrives
		r.Apis = append(r.Apis, &tollgatev1.Api{Id: id, BasePath: "/" + id, Security: []string{"apiKey"},
			Operations: []*tollgatev1.Operation{{Path: "/**"}}})
	}
	for _, id := range slices.Sorted(maps.Keys(s.apps)) {
		r.Applications = append(r.Applications, s.apps[id])
	}
	for _, k := range slices.SortedFunc(maps.Keys(s.subs), func(a, b catalog.SubscriptionKey) int {
		return strings.Compare(a.App+"/"+a.API, b.App+"/"+b.API)
	}) {
		r.Subscriptions = append(r.Subscriptions, s.subs[k])
	}
	for i, app := range applyApps {
		r.ApiKeys = append(r.ApiKeys, &tollgatev1.ApiKey{Application: app, Sha256: fmt.Sprintf("%064x", i+1)})
	}
	return r
}

func randomApplication(rng *rand.Rand, id string) *tollgatev1.Application {
	a := &tollgatev1.Application{Id: id, Name: fmt.Sprintf("name %d", rng.IntN(3)), RateLimit: applyPolicies[rng.IntN(3)]}
	for i := range rng.IntN(3) {
		a.ClientIds = append(a.ClientIds, fmt.Sprintf("client-%s-%d", id, i))
	}
	if rng.IntN(2) == 0 {
		a.Principals = []string{"spiffe://cluster.local/ns/shop/sa/" + id}
	}
	if rng.IntN(2) == 0 {
		a.Certificates = []string{fmt.Sprintf("%064x", 100+slices.Index(applyApps, id))}
	}
	return a
}

func randomSubscription(rng *rand.Rand) *tollgatev1.Subscription {
	return &tollgatev1.Subscription{Application: applyApps[rng.IntN(len(applyApps))], Api: applyAPIs[rng.IntN(len(applyAPIs))],
		State: []string{"active", "blocked", "onHold"}[rng.IntN(3)], RateLimit: applyPolicies[rng.IntN(3)]}
}

// TestApplyFollowsCompile applies random changes of applications and
// subscriptions one at a time (ApplyApplications, ApplySubscriptions)
// and checks that each result decides as a whole compile of the same
// resources does, and counts the same resources held.
func TestApplyFollowsCompile(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 1))
	state := applyState{apps: map[string]*tollgatev1.Application{}, subs: map[catalog.SubscriptionKey]*tollgatev1.Subscription{}}
	snap, problems := Compile(Input{Partial: true, Resources: state.resources()})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	beforeWant := snap
	for step := range 400 {
		var what string
		var ok bool
		before := snap
		switch op := rng.IntN(4); op {
		case 0, 1: // set or remove applications
			var set []*tollgatev1.Application
			var remove []string
			for _, id := range applyApps {
				switch rng.IntN(4) {
				case 0:
					set = append(set, randomApplication(rng, id))
				case 1:
					remove = append(remove, id)
				}
			}
			what = fmt.Sprintf("set %d applications, removed %v", len(set), remove)
			snap, problems, ok = ApplyApplications(snap, set, remove)
			if !ok {
				t.Fatalf("step %d (%s): not applied on its own", step, what)
			}
			for _, id := range remove {
				delete(state.apps, id)
			}
			for _, a := range set {
				state.apps[a.GetId()] = a
			}
		default: // set or remove subscriptions
			set := map[catalog.SubscriptionKey]*tollgatev1.Subscription{}
			var remove []catalog.SubscriptionKey
			for range rng.IntN(4) {
				s := randomSubscription(rng)
				set[catalog.SubscriptionKey{App: s.GetApplication(), API: s.GetApi()}] = s
			}
			for range rng.IntN(3) {
				s := randomSubscription(rng)
				k := catalog.SubscriptionKey{App: s.GetApplication(), API: s.GetApi()}
				if set[k] == nil {
					remove = append(remove, k)
				}
			}
			what = fmt.Sprintf("set %d subscriptions, removed %v", len(set), remove)
			snap, problems = ApplySubscriptions(snap, slices.Collect(maps.Values(set)), remove)
			for _, k := range remove {
				delete(state.subs, k)
			}
			maps.Copy(state.subs, set)
		}
		if len(problems) > 0 {
			t.Fatalf("step %d (%s): %v", step, what, problems)
		}
		want, problems := Compile(Input{Partial: true, Resources: state.resources()})
		if len(problems) > 0 {
			t.Fatalf("step %d: the whole compile: %v", step, problems)
		}
		if diff := decisionsDiffer(snap, want); diff != "" {
			t.Fatalf("step %d (%s): %s", step, what, diff)
		}
		if diff := decisionsDiffer(before, beforeWant); diff != "" {
			t.Fatalf("step %d (%s) changed its base: %s", step, what, diff)
		}
		beforeWant = want
	}
}

// decisionsDiffer describes how two snapshots would decide differently
// about the applications and subscriptions of applyUniverse.
func decisionsDiffer(got, want *Snapshot) string {
	if got.Held != want.Held {
		return fmt.Sprintf("held %d, want %d", got.Held, want.Held)
	}
	appOf := func(a *catalog.Application) string {
		if a == nil {
			return "-"
		}
		return fmt.Sprintf("%s %q rate-limited %v", a.ID, a.Name, a.RateLimit != nil)
	}
	for _, id := range applyApps {
		if g, w := appOf(got.Applications[id]), appOf(want.Applications[id]); g != w {
			return fmt.Sprintf("application %s: %s, want %s", id, g, w)
		}
		for i := range 3 {
			c := fmt.Sprintf("client-%s-%d", id, i)
			if g, w := appOf(got.ClientIDs[c]), appOf(want.ClientIDs[c]); g != w {
				return fmt.Sprintf("client id %s: %s, want %s", c, g, w)
			}
		}
		p := "spiffe://cluster.local/ns/shop/sa/" + id
		if g, w := appOf(got.Principals.Lookup(p)), appOf(want.Principals.Lookup(p)); g != w {
			return fmt.Sprintf("principal %s: %s, want %s", p, g, w)
		}
		fp, _ := keys.ParseFingerprint(fmt.Sprintf("%064x", 100+slices.Index(applyApps, id)))
		if g, w := appOf(got.Certificates[fp]), appOf(want.Certificates[fp]); g != w {
			return fmt.Sprintf("certificate of %s: %s, want %s", id, g, w)
		}
		for _, api := range applyAPIs {
			subOf := func(s *Snapshot) string {
				app, a := s.Applications[id], s.Catalog.API(api)
				if app == nil || a == nil {
					return "-"
				}
				sub := s.Subscription(app, a)
				if sub == nil {
					return "none"
				}
				return fmt.Sprintf("%v rate-limited %v", sub.State, sub.RateLimit != nil)
			}
			if g, w := subOf(got), subOf(want); g != w {
				return fmt.Sprintf("subscription %s/%s: %s, want %s", id, api, g, w)
			}
		}
	}
	return ""
}

// TestApplyApplicationsRefuses checks the problems of a change of
// applications, and the changes it leaves to a whole compile.
func TestApplyApplicationsRefuses(t *testing.T) {
	base, problems := Compile(Input{Partial: true, Resources: &tollgatev1.Resources{
		Applications: []*tollgatev1.Application{
			{Id: "shop", ClientIds: []string{"web"}, Principals: []string{"spiffe://td/ns/shop/sa/web"}},
			{Id: "mesh", Principals: []string{"spiffe://td/ns/mesh/sa/*"}},
		},
	}})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	tests := []struct {
		name    string
		set     []*tollgatev1.Application
		remove  []string
		applied bool
		problem string // the path of the only problem
	}{
		{name: "a client id of another application", applied: true, problem: "applications[0].clientIds[0]",
			set: []*tollgatev1.Application{{Id: "new", ClientIds: []string{"web"}}}},
		{name: "a principal of another application", applied: true, problem: "applications[0].principals[0]",
			set: []*tollgatev1.Application{{Id: "new", Principals: []string{"spiffe://td/ns/shop/sa/web"}}}},
		{name: "a bad id", applied: true, problem: "applications[0].id", set: []*tollgatev1.Application{{Id: "no/slash"}}},
		{name: "the client id moves to a new application", applied: true, remove: []string{"shop"},
			set: []*tollgatev1.Application{{Id: "new", ClientIds: []string{"web"}}}},
		{name: "a new principal pattern", set: []*tollgatev1.Application{{Id: "new", Principals: []string{"spiffe://td/ns/x/sa/*"}}}},
		{name: "an application with a principal pattern", remove: []string{"mesh"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			next, problems, ok := ApplyApplications(base, tc.set, tc.remove)
			if ok != tc.applied {
				t.Fatalf("applied on its own = %v, want %v", ok, tc.applied)
			}
			var paths []string
			for _, p := range problems {
				paths = append(paths, p.Path)
			}
			if want := []string{tc.problem}; tc.problem == "" && len(paths) > 0 || tc.problem != "" && !slices.Equal(paths, want) {
				t.Fatalf("problems %v, want at %q", problems, tc.problem)
			}
			if ok && tc.problem == "" && next.ClientIDs["web"].ID != "new" {
				t.Errorf("client id web belongs to %v, want new", next.ClientIDs["web"])
			}
			if base.ClientIDs["web"].ID != "shop" || base.Principals.Lookup("spiffe://td/ns/shop/sa/web") == nil || len(base.Applications) != 2 {
				t.Error("ApplyApplications changed its base")
			}
		})
	}
}
