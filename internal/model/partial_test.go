package model

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tollgate/tollgate/internal/catalog"
	"github.com/tollgate/tollgate/internal/keys"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// TestPartialHoldsBackDanglingReferences checks that a partial input (as
// xDS delivers it, a kind at a time) compiles without problems when a
// resource refers to one that has not arrived, and that the referrer is
// held back in a way that denies.
func TestPartialHoldsBackDanglingReferences(t *testing.T) {
	const digest = "0c1c2b0e6d5a9b8f7e1c2b0e6d5a9b8f7e1c2b0e6d5a9b8f7e1c2b0e6d5a9b8f"
	api := func(rateLimit string) *tollgatev1.Api {
		return &tollgatev1.Api{Id: "orders", BasePath: "/orders", Security: []string{"apiKey"}, RateLimit: rateLimit,
			Operations: []*tollgatev1.Operation{{Path: "/**"}}}
	}
	policy := &tollgatev1.RateLimitPolicy{Name: "gold", Limits: []*tollgatev1.Limit{{Requests: 5, Per: durationpb.New(time.Second)}}}
	tests := []struct {
		name       string
		in         *tollgatev1.Resources
		held       int
		apiHeld    bool
		keyBound   bool // the key is indexed with its application there
		subscribed bool
	}{
		{name: "complete", held: 0, keyBound: true, subscribed: true, in: &tollgatev1.Resources{
			Apis: []*tollgatev1.Api{api("")}, Applications: []*tollgatev1.Application{{Id: "shop"}},
			Subscriptions: []*tollgatev1.Subscription{{Application: "shop", Api: "orders", State: "active"}},
			ApiKeys:       []*tollgatev1.ApiKey{{Application: "shop", Sha256: digest}}}},
		{name: "subscription and key before their application", held: 2, in: &tollgatev1.Resources{
			Apis:          []*tollgatev1.Api{api("")},
			Subscriptions: []*tollgatev1.Subscription{{Application: "shop", Api: "orders", State: "active"}},
			ApiKeys:       []*tollgatev1.ApiKey{{Application: "shop", Sha256: digest}}}},
		{name: "subscription before its API", held: 1, keyBound: true, in: &tollgatev1.Resources{
			Applications:  []*tollgatev1.Application{{Id: "shop"}},
			Subscriptions: []*tollgatev1.Subscription{{Application: "shop", Api: "orders", State: "active"}},
			ApiKeys:       []*tollgatev1.ApiKey{{Application: "shop", Sha256: digest}}}},
		{name: "API before its policy", held: 1, apiHeld: true, in: &tollgatev1.Resources{
			Apis: []*tollgatev1.Api{api("gold")}}},
		{name: "API with its policy", held: 0, in: &tollgatev1.Resources{
			RateLimitPolicies: []*tollgatev1.RateLimitPolicy{policy}, Apis: []*tollgatev1.Api{api("gold")}}},
		{name: "application before its policy", held: 2, in: &tollgatev1.Resources{
			Applications: []*tollgatev1.Application{{Id: "shop", RateLimit: "gold"}},
			ApiKeys:      []*tollgatev1.ApiKey{{Application: "shop", Sha256: digest}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap, problems := Compile(Input{Resources: tc.in, Now: time.Now(), Partial: true})
			if len(problems) > 0 {
				t.Fatalf("problems: %v", problems)
			}
			if snap.Held != tc.held {
				t.Errorf("held = %d, want %d", snap.Held, tc.held)
			}
			if a := snap.Catalog.API("orders"); a != nil && a.Held != tc.apiHeld {
				t.Errorf("API held = %v, want %v", a.Held, tc.apiHeld)
			}
			d, _ := keys.ParseDigest(digest)
			k, ok := snap.APIKeys.Get(d)
			if got := ok && snap.Applications[k.AppID] != nil; got != tc.keyBound {
				t.Errorf("key bound = %v, want %v", got, tc.keyBound)
			}
			app, api := snap.Applications["shop"], snap.Catalog.API("orders")
			if got := app != nil && api != nil && snap.Subscription(app, api) != nil; got != tc.subscribed {
				t.Errorf("subscribed = %v, want %v", got, tc.subscribed)
			}
		})
	}
}

// TestCompleteInputStillReportsDanglingReferences keeps the file's
// behaviour: outside partial inputs, a dangling reference is a problem.
func TestCompleteInputStillReportsDanglingReferences(t *testing.T) {
	_, problems := Compile(Input{Now: time.Now(), Resources: &tollgatev1.Resources{
		Subscriptions: []*tollgatev1.Subscription{{Application: "shop", Api: "orders", State: "active"}},
		Apis: []*tollgatev1.Api{{Id: "orders", Security: []string{"none"}, RateLimit: "gold",
			Operations: []*tollgatev1.Operation{{Path: "/**"}}}},
	}})
	var text []string
	for _, p := range problems {
		text = append(text, p.Path+": "+p.Msg)
	}
	joined := strings.Join(text, "\n")
	for _, want := range []string{`unknown application "shop"`, `unknown rate-limit policy "gold"`} {
		if !strings.Contains(joined, want) {
			t.Errorf("problems do not mention %s:\n%s", want, joined)
		}
	}
}

func TestApplyAPIKeys(t *testing.T) {
	hex := func(i int) string { return fmt.Sprintf("%064x", i) }
	digest := func(i int) keys.Digest { d, _ := keys.ParseDigest(hex(i)); return d }
	base, problems := Compile(Input{Now: time.Now(), Partial: true, Resources: &tollgatev1.Resources{
		Applications: []*tollgatev1.Application{{Id: "shop"}},
		ApiKeys: []*tollgatev1.ApiKey{{Application: "shop", Sha256: hex(1)}, {Application: "shop", Sha256: hex(2)},
			{Application: "later", Sha256: hex(3)}},
	}})
	if len(problems) > 0 || base.Held != 1 {
		t.Fatalf("base: %v, held %d", problems, base.Held)
	}
	compiled := func(ks ...*tollgatev1.ApiKey) []keys.Entry {
		var out []keys.Entry
		for _, k := range ks {
			e, problems := CompileAPIKey(k, base.Applications)
			if len(problems) > 0 {
				t.Fatal(problems)
			}
			out = append(out, e)
		}
		return out
	}
	next := ApplyAPIKeys(base, compiled(
		&tollgatev1.ApiKey{Application: "shop", Sha256: hex(4), Name: "added"},
		&tollgatev1.ApiKey{Application: "later", Sha256: hex(5)},
		&tollgatev1.ApiKey{Application: "shop", Sha256: hex(3)},  // the held key, now with a known application
		&tollgatev1.ApiKey{Application: "later", Sha256: hex(5)}, // twice: counted once
	), []keys.Digest{digest(2)})
	// A held key is indexed, with an application that is not there.
	for i, want := range map[int]string{1: "shop", 2: "", 3: "shop", 4: "shop", 5: "later"} {
		got := ""
		if k, ok := next.APIKeys.Get(digest(i)); ok {
			got = k.AppID
		}
		if got != want {
			t.Errorf("key %d: application %q, want %q", i, got, want)
		}
	}
	if next.Held != 1 {
		t.Errorf("held %d, want only key 5", next.Held)
	}
	if next.Catalog != base.Catalog {
		t.Error("the new snapshot does not share base's catalog")
	}
	_, two := base.APIKeys.Get(digest(2))
	_, four := base.APIKeys.Get(digest(4))
	if three, _ := base.APIKeys.Get(digest(3)); !two || four || three.AppID != "later" || base.Held != 1 {
		t.Error("ApplyAPIKeys changed its base")
	}
	// Removing the held key and the key replaced by it leaves nothing held.
	if after := ApplyAPIKeys(next, nil, []keys.Digest{digest(5), digest(1), digest(5)}); after.Held != 0 || after.APIKeys.Len() != 2 {
		t.Errorf("after removing key 5: held %d, %d keys; want 0, 2", after.Held, after.APIKeys.Len())
	}
	// Reusing compiled keys: the held count follows the applications.
	reused, problems := Compile(Input{Partial: true, APIKeys: next.APIKeys, Resources: &tollgatev1.Resources{
		Applications: []*tollgatev1.Application{{Id: "shop"}, {Id: "later"}},
	}})
	if len(problems) > 0 || reused.Held != 0 || reused.APIKeys != next.APIKeys {
		t.Errorf("compiled with next's keys: %v, held %d; want no problem, none held, the same index", problems, reused.Held)
	}
	if _, problems := CompileAPIKey(&tollgatev1.ApiKey{Application: "shop", Sha256: "zz"}, base.Applications); len(problems) != 1 ||
		problems[0].Path != "sha256" {
		t.Errorf("a bad key: problems %v, want one at sha256", problems)
	}
	if e, problems := CompileAPIKey(&tollgatev1.ApiKey{Application: "shop", Sha256: strings.ToUpper(hex(10))}, base.Applications); len(problems) > 0 ||
		e.Digest != digest(10) || e.Key.Name != "" || keys.DefaultKeyName(e.Digest) != "key-00000000" {
		t.Errorf("an upper-case hash: %v, %+v", problems, e)
	}
}

// TestCompileAPIKeyID: a key's id, when set, is 12 characters of [0-9a-z]
// and is kept packed beside the key; a key with a bad id is refused.
func TestCompileAPIKeyID(t *testing.T) {
	apps := map[string]*catalog.Application{"shop": {ID: "shop"}}
	cases := []struct {
		id   string
		want string // "" with a problem at id, or for no id
		bad  bool
	}{
		{id: "", want: ""},
		{id: "k3y1d0000042", want: "k3y1d0000042"},
		{id: "000000000000", want: "000000000000"},
		{id: "K3Y1D0000042", bad: true},
		{id: "k3y1d000004", bad: true},
		{id: "tg_k3y1d0000042", bad: true},
		{id: "k3y1d000004-", bad: true},
	}
	for _, tc := range cases {
		k := &tollgatev1.ApiKey{Application: "shop", Sha256: fmt.Sprintf("%064x", 1), Id: tc.id}
		e, problems := CompileAPIKey(k, apps)
		if tc.bad {
			if len(problems) != 1 || problems[0].Path != "id" || !strings.Contains(problems[0].Msg, "12 characters of 0-9 and a-z") {
				t.Errorf("id %q: problems %v, want one at id", tc.id, problems)
			}
			continue
		}
		if len(problems) > 0 || e.Key.ID.String() != tc.want || (tc.want == "") != (e.Key.ID == 0) {
			t.Errorf("id %q: %v, key id %q; want %q", tc.id, problems, e.Key.ID, tc.want)
		}
	}
}
