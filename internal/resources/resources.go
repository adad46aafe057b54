// Package resources names Tollgate's resources for xDS: the type URL of
// each kind and the name of each resource, and the conversion between
// one tollgate.v1.Resources bundle and sets of named resources by type.
// The control plane and the replica's xDS source both use it, so that
// they agree on names without sharing anything else.
package resources

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// Type URLs, one per kind of resource.
const (
	typePrefix      = "type.googleapis.com/tollgate.v1."
	RateLimitPolicy = typePrefix + "RateLimitPolicy"
	Issuer          = typePrefix + "Issuer"
	MtlsSettings    = typePrefix + "MtlsSettings"
	Api             = typePrefix + "Api"
	Application     = typePrefix + "Application"
	Subscription    = typePrefix + "Subscription"
	ApiKey          = typePrefix + "ApiKey"
	RevokedToken    = typePrefix + "RevokedToken"
)

// Types lists every type URL in dependency order: a kind comes after the
// kinds its resources refer to. The control plane pushes changes in this
// order, so a replica tends to receive a resource before those that refer
// to it.
var Types = []string{RateLimitPolicy, Issuer, MtlsSettings, Api, Application, Subscription, ApiKey, RevokedToken}

// ShortName is a type URL's message name ("ApiKey"), for logs, metrics
// and the replicas listing.
func ShortName(typeURL string) string { return strings.TrimPrefix(typeURL, typePrefix) }

// MtlsName is the name of the one MtlsSettings resource.
const MtlsName = "mtls"

// Set is resources of every kind by type URL and then by name.
type Set map[string]map[string]proto.Message

// Count is the number of resources in the set.
func (s Set) Count() int {
	n := 0
	for _, byName := range s {
		n += len(byName)
	}
	return n
}

// Split names every resource of a bundle. Two resources of one kind with
// the same name are an error (validation reports them first as
// duplicates, so this only guards the conversion).
func Split(r *tollgatev1.Resources) (Set, error) {
	sizes := map[string]int{RateLimitPolicy: len(r.GetRateLimitPolicies()), Issuer: len(r.GetIssuers()), MtlsSettings: 1,
		Api: len(r.GetApis()), Application: len(r.GetApplications()), Subscription: len(r.GetSubscriptions()),
		ApiKey: len(r.GetApiKeys()), RevokedToken: len(r.GetRevokedTokens())}
	s := Set{}
	for _, t := range Types {
		s[t] = make(map[string]proto.Message, sizes[t])
	}
	var err error
	add := func(typeURL, name string, m proto.Message) {
		if _, dup := s[typeURL][name]; dup && err == nil {
			err = fmt.Errorf("two %s resources are both named %q", ShortName(typeURL), name)
		}
		s[typeURL][name] = m
	}
	for _, p := range r.GetRateLimitPolicies() {
		add(RateLimitPolicy, p.GetName(), p)
	}
	for _, i := range r.GetIssuers() {
		add(Issuer, IssuerName(i), i)
	}
	if m := r.GetMtls(); m != nil {
		add(MtlsSettings, MtlsName, m)
	}
	for _, a := range r.GetApis() {
		add(Api, a.GetId(), a)
	}
	for _, a := range r.GetApplications() {
		add(Application, a.GetId(), a)
	}
	for _, sub := range r.GetSubscriptions() {
		add(Subscription, SubscriptionName(sub), sub)
	}
	for _, k := range r.GetApiKeys() {
		add(ApiKey, strings.ToLower(k.GetSha256()), k)
	}
	for _, t := range r.GetRevokedTokens() {
		add(RevokedToken, t.GetJti(), t)
	}
	return s, err
}

// IssuerName is an issuer's resource name: its name, or its iss value.
func IssuerName(i *tollgatev1.Issuer) string { return cmp.Or(i.GetName(), i.GetIssuer()) }

// SubscriptionName is "application/api".
func SubscriptionName(s *tollgatev1.Subscription) string {
	return s.GetApplication() + "/" + s.GetApi()
}

// Join builds a bundle from a set, each kind in name order, so that the
// same set always compiles the same way. Messages of the wrong type for
// their type URL are an error.
func Join(s Set) (*tollgatev1.Resources, error) {
	r := &tollgatev1.Resources{}
	for _, t := range Types {
		for _, name := range slices.Sorted(maps.Keys(s[t])) {
			m := s[t][name]
			ok := true
			switch t {
			case RateLimitPolicy:
				ok = appendAs(&r.RateLimitPolicies, m)
			case Issuer:
				ok = appendAs(&r.Issuers, m)
			case MtlsSettings:
				r.Mtls, ok = m.(*tollgatev1.MtlsSettings)
			case Api:
				ok = appendAs(&r.Apis, m)
			case Application:
				ok = appendAs(&r.Applications, m)
			case Subscription:
				ok = appendAs(&r.Subscriptions, m)
			case ApiKey:
				ok = appendAs(&r.ApiKeys, m)
			case RevokedToken:
				ok = appendAs(&r.RevokedTokens, m)
			}
			if !ok {
				return nil, fmt.Errorf("%s %q: not a %s message", ShortName(t), name, ShortName(t))
			}
		}
	}
	return r, nil
}

func appendAs[T proto.Message](list *[]T, m proto.Message) bool {
	v, ok := m.(T)
	if ok {
		*list = append(*list, v)
	}
	return ok
}

// New returns an empty message of a type URL's kind, or nil for a type
// URL that is not Tollgate's.
func New(typeURL string) proto.Message {
	switch typeURL {
	case RateLimitPolicy:
		return &tollgatev1.RateLimitPolicy{}
	case Issuer:
		return &tollgatev1.Issuer{}
	case MtlsSettings:
		return &tollgatev1.MtlsSettings{}
	case Api:
		return &tollgatev1.Api{}
	case Application:
		return &tollgatev1.Application{}
	case Subscription:
		return &tollgatev1.Subscription{}
	case ApiKey:
		return &tollgatev1.ApiKey{}
	case RevokedToken:
		return &tollgatev1.RevokedToken{}
	}
	return nil
}

// Where turns a problem path of a joined bundle ("apiKeys[3].sha256")
// into the resource it is about (`ApiKey "ab12…": sha256`), for errors
// that a control plane shows.
func Where(s Set, path string) string {
	section, rest, _ := strings.Cut(path, "[")
	t, ok := sections[section]
	if !ok {
		return path
	}
	idx, field, _ := strings.Cut(rest, "]")
	var i int
	if _, err := fmt.Sscanf(idx, "%d", &i); err != nil {
		return path
	}
	names := slices.Sorted(maps.Keys(s[t]))
	if i < 0 || i >= len(names) {
		return path
	}
	where := fmt.Sprintf("%s %q", ShortName(t), names[i])
	if field = strings.TrimPrefix(field, "."); field != "" {
		where += ": " + field
	}
	return where
}

var sections = map[string]string{
	"rateLimitPolicies": RateLimitPolicy, "issuers": Issuer, "apis": Api, "applications": Application,
	"subscriptions": Subscription, "apiKeys": ApiKey, "revokedTokens": RevokedToken,
}

// PartialSuffix ends the system_version_info of a delta response that is
// one piece of a larger one: more pieces of the same change follow, and
// a replica applies them all together once the last (unmarked) arrives.
const PartialSuffix = "+partial"

// NameOf is the name a resource of kind typeURL must be served under.
func NameOf(typeURL string, m proto.Message) string {
	switch v := m.(type) {
	case *tollgatev1.RateLimitPolicy:
		return v.GetName()
	case *tollgatev1.Issuer:
		return IssuerName(v)
	case *tollgatev1.MtlsSettings:
		return MtlsName
	case *tollgatev1.Api:
		return v.GetId()
	case *tollgatev1.Application:
		return v.GetId()
	case *tollgatev1.Subscription:
		return SubscriptionName(v)
	case *tollgatev1.ApiKey:
		return strings.ToLower(v.GetSha256())
	case *tollgatev1.RevokedToken:
		return v.GetJti()
	}
	return ""
}
