package model

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tollgate/tollgate/internal/catalog"
	"github.com/tollgate/tollgate/internal/keys"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

func compileOK(t *testing.T, r *tollgatev1.Resources) *Snapshot {
	t.Helper()
	snap, problems := Compile(Input{Resources: r, Now: time.Now()})
	if len(problems) > 0 {
		t.Fatalf("Compile: %v", problems)
	}
	return snap
}

func policyResources(ops ...*tollgatev1.Operation) *tollgatev1.Resources {
	return &tollgatev1.Resources{
		RateLimitPolicies: []*tollgatev1.RateLimitPolicy{{
			Name: "strict", Limits: []*tollgatev1.Limit{{Requests: 10, Per: durationpb.New(time.Second)}},
		}},
		Apis: []*tollgatev1.Api{{Id: "shop", BasePath: "/shop", Security: []string{"none"}, Operations: ops}},
	}
}

// operationKeys maps each operation's path and methods to the keys of its
// rate-limit counters.
func operationKeys(snap *Snapshot) map[string][]string {
	out := map[string][]string{}
	for _, op := range snap.Catalog.API("shop").Operations {
		var keys []string
		for _, it := range op.RateLimit.Items {
			keys = append(keys, it.Key)
		}
		out[op.Path+" "+strings.Join(op.Methods, "")] = keys
	}
	return out
}

// TestOperationCountersSurviveReordering checks that an operation's
// rate-limit counters are named by what it matches, so that reordering
// operations, or adding one before it, moves no counter.
func TestOperationCountersSurviveReordering(t *testing.T) {
	pets := &tollgatev1.Operation{Path: "/pets/{id}", Methods: []string{"GET"}, RateLimit: "strict"}
	orders := &tollgatev1.Operation{Path: "/orders", Methods: []string{"POST", "GET"}, RateLimit: "strict"}
	added := &tollgatev1.Operation{Path: "/carts", RateLimit: "strict"}

	before := operationKeys(compileOK(t, policyResources(pets, orders)))
	after := operationKeys(compileOK(t, policyResources(added, orders, pets)))
	for op, keys := range before {
		if !slices.Equal(after[op], keys) {
			t.Errorf("%s: counters %v after reordering, were %v", op, after[op], keys)
		}
	}
	if slices.Equal(before["/pets/{id} GET"], before["/orders POSTGET"]) {
		t.Errorf("two operations share counters %v", before["/orders POSTGET"])
	}
}

// TestCompileReportsResourcePaths checks that problems are located by
// their path into the Resources message, whatever the source.
func TestCompileReportsResourcePaths(t *testing.T) {
	r := policyResources(&tollgatev1.Operation{Path: "/pets", RateLimit: "nope"})
	r.Subscriptions = []*tollgatev1.Subscription{{Application: "ghost", Api: "shop", State: "active"}}
	r.ApiKeys = []*tollgatev1.ApiKey{{Application: "ghost", Sha256: "zz"}}
	_, problems := Compile(Input{Resources: r})
	want := []string{"apis[0].operations[0].rateLimit", "subscriptions[0].application", "apiKeys[0].application", "apiKeys[0].sha256"}
	for _, path := range want {
		if !slices.ContainsFunc(problems, func(p Problem) bool { return p.Path == path }) {
			t.Errorf("no problem at %s; got %v", path, problems)
		}
	}
}

// TestCompileNilResources checks that a source with nothing to say
// compiles to an empty model rather than crashing.
func TestCompileNilResources(t *testing.T) {
	snap, problems := Compile(Input{})
	if len(problems) > 0 || snap.Catalog == nil || snap.APIKeys == nil {
		t.Fatalf("Compile(nil) = %+v, %v", snap, problems)
	}
}

// TestCompileNilItems checks that a nil list item (a file's "-" with
// nothing after it) is a problem like an empty resource, never a crash.
func TestCompileNilItems(t *testing.T) {
	r := &tollgatev1.Resources{
		Issuers: []*tollgatev1.Issuer{nil}, RevokedTokens: []*tollgatev1.RevokedToken{nil},
		Apis:              []*tollgatev1.Api{nil, {Id: "a", Security: []string{"none"}, Operations: []*tollgatev1.Operation{nil}}},
		Applications:      []*tollgatev1.Application{nil},
		Subscriptions:     []*tollgatev1.Subscription{nil},
		ApiKeys:           []*tollgatev1.ApiKey{nil},
		RateLimitPolicies: []*tollgatev1.RateLimitPolicy{nil, {Name: "p", Limits: []*tollgatev1.Limit{nil}}},
	}
	_, problems := Compile(Input{Resources: r})
	for _, path := range []string{"issuers[0].name", "revokedTokens[0].jti", "apis[0].id", "applications[0].id", "subscriptions[0].state", "apiKeys[0].sha256", "rateLimitPolicies[0].name", "rateLimitPolicies[1].limits[0].requests"} {
		if !slices.ContainsFunc(problems, func(p Problem) bool { return p.Path == path }) {
			t.Errorf("no problem at %s; got %v", path, problems)
		}
	}
}

// tenants is n APIs of ten operations each with the same base path, told
// apart by host only.
func tenants(n int) *tollgatev1.Resources {
	r := &tollgatev1.Resources{}
	for i := range n {
		id := "t" + strconv.Itoa(i)
		api := &tollgatev1.Api{Id: id, BasePath: "/shop", Hosts: []string{id + ".example.com"}, Security: []string{"none"}}
		for j := range 10 {
			api.Operations = append(api.Operations, &tollgatev1.Operation{Path: "/items" + strconv.Itoa(j) + "/{id}", Methods: []string{"GET"}})
		}
		r.Apis = append(r.Apis, api)
	}
	return r
}

// BenchmarkCompileTenants compiles 10,000 APIs × 10 operations told apart
// by host: the overlap check must not compare every tenant with every
// other.
func BenchmarkCompileTenants(b *testing.B) {
	r := tenants(10_000)
	for b.Loop() {
		if _, problems := Compile(Input{Resources: r}); len(problems) > 0 {
			b.Fatal(problems[0])
		}
	}
}

// TestOverlapAcrossTenants checks that the indexed overlap check still
// finds two APIs on one host with the same operation, and lets the same
// operation on different hosts be.
func TestOverlapAcrossTenants(t *testing.T) {
	r := tenants(3)
	if _, problems := Compile(Input{Resources: r}); len(problems) > 0 {
		t.Fatalf("tenants on their own hosts overlap: %v", problems)
	}
	r.Apis[2].Hosts = append(r.Apis[2].Hosts, "t0.example.com", "t0.example.com")
	_, problems := Compile(Input{Resources: r})
	if len(problems) != 10 || !strings.Contains(problems[0].Msg, "matches the same requests as apis[0].operations[0]") {
		t.Fatalf("want the ten shared operations reported once each, got %v", problems)
	}
}

// TestCompileBlockedAPI: an API's blocked flag reaches the catalog, on the
// API alone.
func TestCompileBlockedAPI(t *testing.T) {
	for _, blocked := range []bool{false, true} {
		r := &tollgatev1.Resources{Apis: []*tollgatev1.Api{
			{Id: "shop", BasePath: "/shop", Security: []string{"none"}, Blocked: blocked, Operations: []*tollgatev1.Operation{{Path: "/x"}}},
			{Id: "other", BasePath: "/other", Security: []string{"none"}, Operations: []*tollgatev1.Operation{{Path: "/x"}}},
		}}
		snap := compileOK(t, r)
		if got := snap.Catalog.API("shop").Blocked; got != blocked || snap.Catalog.API("other").Blocked {
			t.Errorf("blocked %v: shop compiled blocked=%v, other blocked=%v", blocked, got, snap.Catalog.API("other").Blocked)
		}
	}
}

// TestOperationScopes: an operation's scope entry is one scope-token or
// several separated by single spaces; other spacing is refused with a
// problem at the entry, and the entries compile into sets.
func TestOperationScopes(t *testing.T) {
	cases := []struct {
		name    string
		entries []string
		problem string // in the problem at scopes[at]; "" for none
		at      int
	}{
		{name: "single scopes", entries: []string{"pets:read", "pets:write"}},
		{name: "a set", entries: []string{"write:pets read:pets", "admin"}},
		{name: "none", entries: nil},
		{name: "empty", entries: []string{""}, problem: "cannot be empty"},
		{name: "leading space", entries: []string{"a", " b"}, problem: "starts or ends with a space", at: 1},
		{name: "trailing space", entries: []string{"a b "}, problem: "starts or ends with a space"},
		{name: "a space alone", entries: []string{" "}, problem: "starts or ends with a space"},
		{name: "double space", entries: []string{"a  b"}, problem: "two spaces in a row"},
		{name: "tab", entries: []string{"a\tb"}, problem: `got "a\tb"`},
		{name: "no-break space in a set", entries: []string{"a b\u00a0c"}, problem: `in "a b\u00a0c"`},
		{name: "quote", entries: []string{`a "b"`}, problem: `got "\"b\""`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c Checker
			c.OperationScopes("scopes", tc.entries)
			if tc.problem == "" {
				if len(c.Problems) > 0 {
					t.Fatalf("problems %v, want none", c.Problems)
				}
				return
			}
			want := "scopes[" + strconv.Itoa(tc.at) + "]"
			if len(c.Problems) != 1 || c.Problems[0].Path != want || !strings.Contains(c.Problems[0].Msg, tc.problem) {
				t.Fatalf("problems %v; want one at %s saying %q", c.Problems, want, tc.problem)
			}
		})
	}
	// Compiled into the operation: a credential needs all of a set.
	snap := compileOK(t, &tollgatev1.Resources{Apis: []*tollgatev1.Api{{Id: "shop", BasePath: "/shop", Security: []string{"none"},
		Operations: []*tollgatev1.Operation{{Path: "/x", Scopes: []string{"write:pets read:pets", "admin"}}}}}})
	op := snap.Catalog.API("shop").Operations[0]
	if op.ScopeSets.Allow([]string{"write:pets"}) || !op.ScopeSets.Allow([]string{"read:pets", "write:pets"}) || !op.ScopeSets.Allow([]string{"admin"}) {
		t.Errorf("compiled scopes %q do not read as (write:pets and read:pets) or admin", op.Scopes)
	}
}

// FuzzOperationScopes: an entry is accepted exactly when splitting it at
// each single space gives scope-tokens only, with one problem otherwise;
// an accepted entry is met by its own scopes and by no fewer.
func FuzzOperationScopes(f *testing.F) {
	for _, s := range []string{"pets:read", "write:pets read:pets", "", " a", "a ", "a  b", "a\tb", `a "b"`, "a b\u00a0c", "a a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, entry string) {
		var c Checker
		c.OperationScopes("scopes", []string{entry})
		words := strings.Split(entry, " ")
		want := !slices.ContainsFunc(words, func(s string) bool { return !keys.ValidScope(s) })
		if len(c.Problems) > 1 || (len(c.Problems) == 0) != want {
			t.Fatalf("%q: problems %v; want accepted %v", entry, c.Problems, want)
		}
		if !want {
			return
		}
		sets := catalog.NewScopeSets([]string{entry})
		if !sets.Allow(words) {
			t.Fatalf("%q is not met by its own scopes", entry)
		}
		if fewer := slices.DeleteFunc(slices.Clone(words), func(s string) bool { return s == words[0] }); sets.Allow(fewer) {
			t.Fatalf("%q is met without %q", entry, words[0])
		}
	})
}
