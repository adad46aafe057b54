package config

import (
	"crypto/sha256"
	"maps"
	"reflect"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/internal/catalog"
	"github.com/tollgate/tollgate/internal/model"
	"github.com/tollgate/tollgate/internal/resources"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// resourceVersions is every resource of a file but its API keys, by
// kind and name, each with the SHA-256 of its deterministic encoding:
// what the next reload compares the file with. (Keys are compared with
// the compiled index instead: a million digests here would cost more
// than the comparison saves.)
type resourceVersions map[string]map[string][sha256.Size]byte

// versionsOf names and versions r's resources but its keys. ok is false
// when two resources of a kind share a name (validation reports them).
func versionsOf(r *tollgatev1.Resources) (v resourceVersions, ok bool) {
	withoutKeys := &tollgatev1.Resources{Issuers: r.Issuers, RevokedTokens: r.RevokedTokens, Apis: r.Apis,
		Applications: r.Applications, Subscriptions: r.Subscriptions, Mtls: r.Mtls, RateLimitPolicies: r.RateLimitPolicies}
	set, err := resources.Split(withoutKeys)
	if err != nil {
		return nil, false
	}
	v = make(resourceVersions, len(set))
	for t, byName := range set {
		if t == resources.ApiKey {
			continue
		}
		v[t] = make(map[string][sha256.Size]byte, len(byName))
		for name, m := range byName {
			b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
			if err != nil {
				return nil, false
			}
			v[t][name] = sha256.Sum256(b)
		}
	}
	return v, true
}

// previous is what a reload compares a file with: the snapshot served
// and the versions of the resources it was compiled from.
type previous struct {
	snap     *model.Snapshot
	versions resourceVersions
}

// applyDifference applies what a valid-looking file changes to the
// previous snapshot when the change is to applications, subscriptions
// or API keys only (model.ApplyApplications, ApplySubscriptions,
// ApplyAPIKeys): nothing else is compiled again. ok is false when the
// file must be compiled whole instead: another kind or a setting
// changed, or the change has a problem (the whole compile reports it,
// with its line), or leaves a reference dangling.
func applyDifference(prev *previous, settings model.Settings, r *tollgatev1.Resources, versions resourceVersions) (*model.Snapshot, bool) {
	base := prev.snap
	if !reflect.DeepEqual(settings, base.Settings) {
		return nil, false
	}
	for _, t := range resources.Types {
		if t != resources.Application && t != resources.Subscription && !maps.Equal(versions[t], prev.versions[t]) {
			return nil, false
		}
	}
	next := base
	if set, removed := changed(r.GetApplications(), resources.Application, versions, prev.versions); len(set) > 0 || len(removed) > 0 {
		var problems []model.Problem
		var ok bool
		if next, problems, ok = model.ApplyApplications(next, set, removed); !ok || len(problems) > 0 {
			return nil, false
		}
	}
	if set, removed := changed(r.GetSubscriptions(), resources.Subscription, versions, prev.versions); len(set) > 0 || len(removed) > 0 {
		remove := make([]catalog.SubscriptionKey, len(removed))
		for i, name := range removed {
			app, api, _ := strings.Cut(name, "/") // ids hold no "/"
			remove[i] = catalog.SubscriptionKey{App: app, API: api}
		}
		var problems []model.Problem
		if next, problems = model.ApplySubscriptions(next, set, remove); len(problems) > 0 {
			return nil, false
		}
	}
	d := next.APIKeys.NewDiffer()
	for _, k := range r.GetApiKeys() {
		e, problems := model.CompileAPIKey(k, next.Applications)
		if len(problems) > 0 || !d.Add(e) {
			return nil, false
		}
	}
	if set, remove := d.Result(); len(set) > 0 || len(remove) > 0 {
		next = model.ApplyAPIKeys(next, set, remove)
	}
	if next.Held != 0 {
		return nil, false // a reference to something the file lacks
	}
	// A copy even when nothing changed (next is then the running
	// snapshot): the caller stamps its version and load time on it.
	out := *next
	return &out, true
}

// changed is what a kind's list sets that the previous versions lack or
// hold otherwise, and the names the list no longer has, in name order.
func changed[M proto.Message](list []M, t string, now, before resourceVersions) (set []M, removed []string) {
	for _, m := range list {
		name := resources.NameOf(t, m)
		if v, ok := before[t][name]; !ok || v != now[t][name] {
			set = append(set, m)
		}
	}
	for name := range before[t] {
		if _, ok := now[t][name]; !ok {
			removed = append(removed, name)
		}
	}
	slices.Sort(removed)
	return set, removed
}
