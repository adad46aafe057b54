package model

import (
	"cmp"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/catalog"
	"github.com/tollgate/tollgate/internal/keys"
	"github.com/tollgate/tollgate/internal/ratelimit"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// DefaultAPIKeyHeader is where callers send API keys unless an API says
// otherwise. Keys in query strings end up in access logs, so the query
// parameter is opt-in.
const DefaultAPIKeyHeader = "apikey"

// Input is what a source hands to Compile.
type Input struct {
	Settings  Settings
	Resources *tollgatev1.Resources
	// BaseDir is where relative file paths in resources (JWKS files, CA
	// bundles) are taken from: the config file's directory.
	BaseDir string
	Now     time.Time // for dropping expired revocations
	// Unsure, if set, reports whether a path (or a container of it) failed
	// to decode at the source. An id that failed to decode makes
	// references to ids of its kind unverifiable, so "unknown" is not
	// reported for them.
	Unsure func(path string) bool
	// Partial says the resources may be an incomplete set that is still
	// arriving (xDS sends each type on its own): a resource that refers to
	// one that is not there yet is held back instead of being a problem. A
	// held subscription, key or application is absent, so it denies; an
	// API whose rate-limit policy is missing is kept but denies with 503
	// (catalog.API.Held), since leaving it out could let unmatched: allow
	// through what it protects. A key whose application is missing is
	// kept and authenticates nobody until the application arrives.
	Partial bool
	// Subscriptions, if set, are compiled subscriptions to use as they
	// are, in place of Resources.Subscriptions (which must then be empty).
	// They refer to applications and APIs by id, like keys.
	Subscriptions *catalog.Subscriptions
	// APIKeys, if set, are compiled keys to use as they are, in place of
	// Resources.ApiKeys (which must then be empty): a change to anything
	// but keys recompiles no key. Keys refer to applications by id, so
	// nothing in them points into the previous snapshot.
	APIKeys *keys.APIKeyIndex
}

// Compile validates resources and builds a Snapshot. It reports every
// problem it finds; the snapshot is only usable when there are none.
func Compile(in Input) (*Snapshot, []Problem) {
	c := compiler{in: in, unsure: in.Unsure}
	if c.unsure == nil {
		c.unsure = func(string) bool { return false }
	}
	if c.in.Resources == nil {
		c.in.Resources = &tollgatev1.Resources{}
	}
	snap := c.compile()
	snap.Held = c.held
	return snap, c.Problems
}

// compiler builds one Snapshot, collecting every problem with its path.
type compiler struct {
	Checker
	in           Input
	unsure       func(path string) bool
	appIDsUnsure bool
	apiIDsUnsure bool
	policies     map[string]*ratelimit.Policy
	held         int // resources held back for a missing reference (Partial)
	// reserved are the headers only Tollgate sets (claim headers, the
	// backend JWT), which no policy may touch.
	reserved map[string]bool
}

func (c *compiler) compile() *Snapshot {
	r := c.in.Resources
	snap := &Snapshot{
		Settings:        c.in.Settings,
		Applications:    map[string]*catalog.Application{},
		ClientIDs:       map[string]*catalog.Application{},
		ReservedHeaders: map[string]bool{},
		Principals:      keys.NewPrincipalIndex(),
		Certificates:    map[keys.Digest]*catalog.Application{},
	}
	if b := snap.BackendJWT; b != nil {
		snap.ReservedHeaders[b.Header] = true
	}
	snap.MTLS = c.mtls(r.GetMtls())
	c.policies = c.rateLimitPolicies(r.GetRateLimitPolicies())
	snap.RateLimitPolicies = c.policies
	c.issuers(r.GetIssuers(), snap)
	snap.Revoked = c.revoked(r.GetRevokedTokens())
	c.reserved = snap.ReservedHeaders
	apis := c.apis(r.GetApis())
	snap.Catalog = catalog.New(apis, catalog.Options{StripPort: snap.StripPort})
	c.applications(r.GetApplications(), snap)
	c.subscriptions(r.GetSubscriptions(), snap)
	if c.in.APIKeys != nil {
		snap.APIKeys = c.in.APIKeys
		for _, k := range snap.APIKeys.All() {
			c.holdIf(snap.Applications[k.AppID] == nil)
		}
	} else {
		snap.APIKeys = c.apiKeys(r.GetApiKeys(), snap)
	}
	snap.ReservedHeaderList = reservedHeaderList(snap.ReservedHeaders)
	return snap
}

// holdIf counts a resource held back for a missing reference, when the
// input is partial and nothing else is wrong with it.
func (c *compiler) holdIf(onlyReference bool) {
	if c.in.Partial && onlyReference {
		c.held++
	}
}

// path resolves a configured file path against the base directory.
func (c *compiler) path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.in.BaseDir == "" {
		return p
	}
	return filepath.Join(c.in.BaseDir, p)
}

// orEmpty returns m, or an empty message in place of a nil list item (in
// a file, a "-" with nothing after it), so that it is validated like any
// other instead of crashing the compile.
func orEmpty[T any](m *T) *T {
	if m == nil {
		return new(T)
	}
	return m
}

func reservedHeaderList(extra map[string]bool) []string {
	out := slices.Clone(IdentityHeaderNames)
	for h := range extra {
		out = append(out, h)
	}
	slices.Sort(out[len(IdentityHeaderNames):])
	return out
}

func (c *compiler) applications(in []*tollgatev1.Application, snap *Snapshot) {
	c.appIDsUnsure = c.unsure("applications") || c.in.Partial
	for i, a := range in {
		path := fmt.Sprintf("applications[%d]", i)
		if c.unsure(path + ".id") {
			c.appIDsUnsure = true
			continue
		}
		c.application(path, orEmpty(a), snap)
	}
}

// application validates one application and adds it to snap, with its
// principals, certificates and client ids. One whose rate-limit policy
// has not arrived (Input.Partial) is held back: it is left out, so it
// authenticates nobody.
func (c *compiler) application(path string, a *tollgatev1.Application, snap *Snapshot) {
	if !c.ID(path+".id", a.GetId()) {
		return
	}
	if _, dup := snap.Applications[a.GetId()]; dup {
		c.Addf(path+".id", "duplicate application id %q", a.GetId())
		return
	}
	c.Text(path+".name", a.GetName())
	c.Text(path+".owner", a.GetOwner())
	app := &catalog.Application{ID: a.GetId(), Name: cmp.Or(a.GetName(), a.GetId()), Owner: a.GetOwner()}
	p, missing := c.policy(path+".rateLimit", a.GetRateLimit())
	if missing {
		c.held++
		if snap.heldApps == nil {
			snap.heldApps = map[string]bool{}
		}
		snap.heldApps[a.GetId()] = true
		return
	}
	if p != nil {
		app.RateLimit = ratelimit.Bind(p, ratelimit.ScopeApplication, a.GetId())
	}
	snap.Applications[a.GetId()] = app
	for j, p := range a.GetPrincipals() {
		if err := snap.Principals.Add(p, app); err != nil {
			c.Addf(fmt.Sprintf("%s.principals[%d]", path, j), "%v", err)
		}
	}
	for j, fp := range a.GetCertificates() {
		fpPath := fmt.Sprintf("%s.certificates[%d]", path, j)
		d, err := keys.ParseFingerprint(fp)
		switch other := snap.Certificates[d]; {
		case err != nil:
			c.Addf(fpPath, "want the certificate's SHA-256 fingerprint: %v", err)
		case other != nil:
			c.Addf(fpPath, "certificate already belongs to application %q", other.ID)
		default:
			snap.Certificates[d] = app
		}
	}
	for j, id := range a.GetClientIds() {
		idPath := fmt.Sprintf("%s.clientIds[%d]", path, j)
		switch other := snap.ClientIDs[id]; {
		case id == "":
			c.Addf(idPath, "a client id cannot be empty")
		case other != nil:
			c.Addf(idPath, "client id %q already belongs to application %q", id, other.ID)
		default:
			c.Text(idPath, id)
			snap.ClientIDs[id] = app
		}
	}
}

func (c *compiler) subscriptions(in []*tollgatev1.Subscription, snap *Snapshot) {
	if c.in.Subscriptions != nil {
		snap.Subscriptions = c.in.Subscriptions
		c.held += snap.Subscriptions.Withheld()
		for sub := range snap.Subscriptions.All() {
			c.held += btoi(snap.waitsForReference(sub))
		}
		return
	}
	first := map[catalog.SubscriptionKey]int{}
	var subs []*catalog.Subscription
	var withheld []catalog.SubscriptionKey
	for i, s := range in {
		path := "subscriptions[" + strconv.Itoa(i) + "]"
		sub, ok := c.subscription(path, orEmpty(s), snap)
		if !ok {
			continue
		}
		k := sub.Key()
		if j, dup := first[k]; dup {
			c.Addf(path, "application %q is already subscribed to API %q (subscriptions[%d])", k.App, k.API, j)
			continue
		}
		first[k] = i
		if sub.Withheld {
			withheld = append(withheld, k)
			continue
		}
		subs = append(subs, &sub.Subscription)
	}
	snap.Subscriptions = catalog.NewSubscriptions(subs, withheld)
}

// compiledSubscription is a subscription as compiled; Withheld says it
// is left out until its rate-limit policy arrives (Input.Partial).
type compiledSubscription struct {
	catalog.Subscription
	Withheld bool
}

// subscription validates one subscription. ok is false for one with a
// problem. When the input is partial, one whose application or API has
// not arrived is kept and counted as held: it grants nothing until they
// are there.
func (c *compiler) subscription(path string, s *tollgatev1.Subscription, snap *Snapshot) (sub compiledSubscription, ok bool) {
	app := snap.Applications[s.GetApplication()]
	if app == nil && !c.appIDsUnsure {
		c.Addf(path+".application", "unknown application %q", s.GetApplication())
	}
	api := snap.Catalog.API(s.GetApi())
	if api == nil && !c.apiIDsUnsure {
		c.Addf(path+".api", "unknown API %q", s.GetApi())
	}
	validIDs := true
	if c.in.Partial {
		validIDs = (app != nil || c.ID(path+".application", s.GetApplication())) &&
			(api != nil || c.ID(path+".api", s.GetApi()))
	}
	state, err := catalog.ParseSubscriptionState(s.GetState())
	if err != nil {
		c.Addf(path+".state", "%v", err)
	}
	p, missing := c.policy(path+".rateLimit", s.GetRateLimit())
	if err != nil || !validIDs || (app == nil || api == nil) && !c.in.Partial {
		return sub, false
	}
	sub.Subscription = catalog.Subscription{AppID: s.GetApplication(), APIID: s.GetApi(), State: state}
	if app != nil {
		sub.AppID = app.ID // one copy of each id
	}
	if api != nil {
		sub.APIID = api.ID
	}
	if missing {
		c.held++
		sub.Withheld = true
		return sub, true
	}
	c.holdIf(app == nil || api == nil)
	if p != nil {
		sub.RateLimit = ratelimit.Bind(p, ratelimit.ScopeSubscription, sub.AppID+":"+sub.APIID)
	}
	return sub, true
}

// waitsForReference reports whether a subscription held by the snapshot
// grants nothing yet: its application or API has not arrived.
func (s *Snapshot) waitsForReference(sub *catalog.Subscription) bool {
	return s.Applications[sub.AppID] == nil || s.Catalog.API(sub.APIID) == nil
}

// Subscription returns app's subscription to api, or nil.
func (s *Snapshot) Subscription(app *catalog.Application, api *catalog.API) *catalog.Subscription {
	return s.Subscriptions.Get(app.ID, api.ID)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (c *compiler) apiKeys(in []*tollgatev1.ApiKey, snap *Snapshot) *keys.APIKeyIndex {
	index := make([]keys.Entry, 0, len(in))
	first := make(map[keys.Digest]int, len(in)) // where each key is first listed
	for i, k := range in {
		path := "apiKeys[" + strconv.Itoa(i) + "]"
		entry, ok := c.apiKey(path, orEmpty(k), snap.Applications)
		if !ok {
			continue
		}
		if j, dup := first[entry.Digest]; dup {
			c.Addf(path+".sha256", "the same key is already listed at apiKeys[%d]", j)
			continue
		}
		first[entry.Digest] = i
		index = append(index, entry)
	}
	return keys.NewAPIKeyIndex(index)
}

// apiKey validates one key. ok is false for a key with a problem. A key
// whose application has not arrived is kept (and counted as held) when
// the input is partial: it authenticates nobody until the application
// is there.
func (c *compiler) apiKey(path string, k *tollgatev1.ApiKey, apps map[string]*catalog.Application) (entry keys.Entry, ok bool) {
	app := apps[k.GetApplication()]
	if app == nil && !c.appIDsUnsure && !c.in.Partial {
		c.Addf(path+".application", "unknown application %q", k.GetApplication())
	}
	digest, err := parseKeyDigest(k.GetSha256())
	if err != nil {
		c.Addf(path+".sha256", "%v (run `enforcer keys new` for a key and its hash)", err)
	}
	c.Text(path+".name", k.GetName())
	id, idOK := keys.ParseKeyID(k.GetId())
	if !idOK {
		c.Addf(path+".id", "a key id is 12 characters of 0-9 and a-z (the part after tg_ of a key from `enforcer keys new`), got %q", k.GetId())
	}
	// No name: Lookup names it after its digest (keys.DefaultKeyName).
	key := keys.APIKey{Name: k.GetName(), ID: id, AppID: k.GetApplication()}
	if app != nil {
		key.AppID = app.ID // one copy of the id for all its keys
	}
	if k.GetExpiresAt() != nil {
		key.ExpiresAt = k.GetExpiresAt().AsTime()
	}
	cidrs := c.Prefixes(path+".allowedCidrs", k.GetAllowedCidrs())
	c.Scopes(path+".scopes", k.GetScopes())
	if len(cidrs) > 0 || len(k.GetScopes()) > 0 {
		key.Limits = &keys.KeyLimits{AllowedCIDRs: cidrs, Scopes: k.GetScopes(), ScopeText: strings.Join(k.GetScopes(), " ")}
	}
	if err != nil || !idOK || (app == nil && !c.in.Partial) {
		return keys.Entry{}, false
	}
	c.holdIf(app == nil)
	return keys.Entry{Digest: digest, Key: key}, true
}

// parseKeyDigest reads a key's SHA-256 in hex of either case.
func parseKeyDigest(s string) (keys.Digest, error) {
	if !isLowerHex(s) {
		s = strings.ToLower(s)
	}
	return keys.ParseDigest(s)
}

func isLowerHex(s string) bool {
	for i := range len(s) {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// CompileAPIKey validates one key as part of a partial input, against
// the applications it may refer to (a key whose application is not
// among them is kept: it authenticates nobody until the application is
// there). Problem paths are the key's fields ("sha256"). It is how a
// source that receives keys one at a time compiles each as it arrives.
func CompileAPIKey(k *tollgatev1.ApiKey, apps map[string]*catalog.Application) (keys.Entry, []Problem) {
	c := compiler{in: Input{Partial: true}, unsure: func(string) bool { return false }}
	entry, _ := c.apiKey("", orEmpty(k), apps)
	for i := range c.Problems {
		c.Problems[i].Path = strings.TrimPrefix(c.Problems[i].Path, ".")
	}
	return entry, c.Problems
}

// ApplyAPIKeys makes a snapshot that differs from base only in its API
// keys: set (compiled by CompileAPIKey) added or replaced, remove (by
// digest) removed, as keys.APIKeyIndex.With reads them. Everything else,
// including the shards of the key index the change does not touch, is
// shared with base, so a key changed among a million costs microseconds.
// The keys held back are counted against base's applications.
func ApplyAPIKeys(base *Snapshot, set []keys.Entry, remove []keys.Digest) *Snapshot {
	next := *base
	next.APIKeys = base.APIKeys.With(set, remove)
	before, after := next.APIKeys.CountChanged(base.APIKeys, func(k keys.APIKey) bool { return base.Applications[k.AppID] == nil })
	next.Held += after - before
	return &next
}

// ApplySubscriptions makes a snapshot that differs from base only in its
// subscriptions: set compiled against base (as a partial input: one
// whose application or API has not arrived is kept, and held) and added
// or replaced, remove taken out. Nothing else is compiled again, and the
// subscription table shares every shard the change leaves alone. The
// problem paths are "subscriptions[i]", i an index into set; set must
// name each subscription once.
func ApplySubscriptions(base *Snapshot, set []*tollgatev1.Subscription, remove []catalog.SubscriptionKey) (*Snapshot, []Problem) {
	c := compiler{in: Input{Partial: true, Settings: base.Settings}, unsure: func(string) bool { return false },
		appIDsUnsure: true, apiIDsUnsure: true, policies: base.RateLimitPolicies}
	subs := make([]*catalog.Subscription, 0, len(set))
	var withheld []catalog.SubscriptionKey
	touched := make(map[catalog.SubscriptionKey]bool, len(set)+len(remove))
	for i, s := range set {
		sub, ok := c.subscription("subscriptions["+strconv.Itoa(i)+"]", orEmpty(s), base)
		if !ok {
			continue
		}
		touched[sub.Key()] = true
		if sub.Withheld {
			withheld = append(withheld, sub.Key())
		} else {
			subs = append(subs, &sub.Subscription)
		}
	}
	if len(c.Problems) > 0 {
		return nil, c.Problems
	}
	for _, k := range remove {
		touched[k] = true
	}
	next := *base
	next.Subscriptions = base.Subscriptions.With(subs, withheld, remove)
	for k := range touched {
		next.Held += btoi(next.heldSubscription(k)) - btoi(base.heldSubscription(k))
	}
	return &next, nil
}

// heldSubscription reports whether the subscription k is held back:
// withheld, or waiting for its application or API.
func (s *Snapshot) heldSubscription(k catalog.SubscriptionKey) bool {
	if s.Subscriptions.IsWithheld(k) {
		return true
	}
	sub := s.Subscriptions.Get(k.App, k.API)
	return sub != nil && s.waitsForReference(sub)
}

// ApplyApplications makes a snapshot that differs from base only in its
// applications: set compiled against base (as a partial input) and
// added or replaced, remove taken out, with their client ids,
// certificates and principals. Keys and subscriptions refer to
// applications by id, so none is compiled again. The problem paths are
// "applications[i]", i an index into set; set must name each
// application once. ok is false when the change cannot be applied on
// its own (an application it touches has a principal pattern, see
// keys.PrincipalIndex.Without): the caller compiles everything then.
func ApplyApplications(base *Snapshot, set []*tollgatev1.Application, remove []string) (next *Snapshot, problems []Problem, ok bool) {
	ids := make(map[string]bool, len(set)+len(remove)) // changed or removed
	for _, a := range set {
		if slices.ContainsFunc(a.GetPrincipals(), keys.HasPattern) {
			return nil, nil, false
		}
		ids[a.GetId()] = true
	}
	for _, id := range remove {
		ids[id] = true
	}
	old := make(map[*catalog.Application]bool, len(ids))
	for id := range ids {
		if app := base.Applications[id]; app != nil {
			old[app] = true
		}
	}
	principals, ok := base.Principals.Without(old)
	if !ok {
		return nil, nil, false
	}
	n := *base
	n.Principals = principals
	n.Applications = maps.Clone(base.Applications)
	n.heldApps = maps.Clone(base.heldApps)
	for id := range ids {
		delete(n.Applications, id)
		delete(n.heldApps, id)
	}
	isOld := func(_ keys.Digest, app *catalog.Application) bool { return old[app] }
	n.Certificates = maps.Clone(base.Certificates)
	maps.DeleteFunc(n.Certificates, isOld)
	n.ClientIDs = maps.Clone(base.ClientIDs)
	maps.DeleteFunc(n.ClientIDs, func(_ string, app *catalog.Application) bool { return old[app] })
	c := compiler{in: Input{Partial: true}, unsure: func(string) bool { return false }, appIDsUnsure: true,
		policies: base.RateLimitPolicies}
	for i, a := range set {
		c.application("applications["+strconv.Itoa(i)+"]", orEmpty(a), &n)
	}
	if len(c.Problems) > 0 {
		return nil, c.Problems, true
	}
	n.Held += len(n.heldApps) - len(base.heldApps) + n.heldReferrers(base, ids)
	return &n, nil, true
}

// heldReferrers is the change in keys and subscriptions held back for
// their application, from base to s, among those of the applications
// ids. Only an application that came or went changes it.
func (s *Snapshot) heldReferrers(base *Snapshot, ids map[string]bool) int {
	moved := map[string]bool{}
	for id := range ids {
		if (base.Applications[id] == nil) != (s.Applications[id] == nil) {
			moved[id] = true
		}
	}
	if len(moved) == 0 {
		return 0
	}
	delta := 0
	for _, k := range s.APIKeys.All() {
		if moved[k.AppID] {
			delta += btoi(s.Applications[k.AppID] == nil) - btoi(base.Applications[k.AppID] == nil)
		}
	}
	for sub := range s.Subscriptions.All() {
		if moved[sub.AppID] {
			delta += btoi(s.waitsForReference(sub)) - btoi(base.waitsForReference(sub))
		}
	}
	return delta
}
