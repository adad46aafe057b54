package admin

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/internal/keys"
	"github.com/tollgate/tollgate/internal/resources"
	"github.com/tollgate/tollgate/internal/store"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// allKinds are every kind of record, in dependency order.
var allKinds = []store.Kind{store.KindPolicy, store.KindIssuer, store.KindMtls, store.KindAPI,
	store.KindApplication, store.KindSubscription, store.KindAPIKey, store.KindRevokedToken}

// export answers every record as one tollgate.v1.Resources: what
// replicas are served in the sections of a config file, and the rest in
// its management section.
func (s *Server) export(w http.ResponseWriter, c *call) error {
	if !c.caller.admin() {
		return forbidden("admins only")
	}
	out := &tollgatev1.Resources{Management: &tollgatev1.Management{}}
	mg := out.Management
	_, err := s.st.Snapshot(c.r.Context(), allKinds, func(r store.Record) error {
		_, _, msg, served, err := store.Served(r)
		if err != nil {
			return fmt.Errorf("%s %q: %w", r.Kind, r.ID, err)
		}
		switch m := msg.(type) {
		case *tollgatev1.RateLimitPolicy:
			out.RateLimitPolicies = append(out.RateLimitPolicies, m)
		case *tollgatev1.Issuer:
			out.Issuers = append(out.Issuers, m)
		case *tollgatev1.MtlsSettings:
			out.Mtls = m
		case *tollgatev1.RevokedToken:
			out.RevokedTokens = append(out.RevokedTokens, m)
		case *tollgatev1.Application:
			out.Applications = append(out.Applications, m)
			if meta, _ := store.DecodeBody(r.Body, &tollgatev1.Application{}); meta.Blocked {
				mg.BlockedApplications = append(mg.BlockedApplications, r.ID)
			}
		case *tollgatev1.Api:
			meta, _ := store.DecodeBody(r.Body, &tollgatev1.Api{})
			mg.Apis = append(mg.Apis, &tollgatev1.ApiManagement{Id: r.ID, State: r.State, RequiresApproval: meta.RequiresApproval,
				Description: meta.Description, Tags: meta.Tags, Tiers: meta.Tiers})
			if served {
				out.Apis = append(out.Apis, m)
			} else {
				mg.HeldApis = append(mg.HeldApis, m)
			}
		case *tollgatev1.Subscription:
			if served {
				out.Subscriptions = append(out.Subscriptions, m)
			} else {
				mg.PendingSubscriptions = append(mg.PendingSubscriptions, m)
			}
		case *tollgatev1.ApiKey:
			if served {
				out.ApiKeys = append(out.ApiKeys, m)
			} else {
				mg.RevokedKeys = append(mg.RevokedKeys, m)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	b, err := protojson.MarshalOptions{Multiline: true}.Marshal(out)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
	return nil
}

// importCounts says what an import did to one kind.
type importCounts struct {
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
}

// importer applies one import in one transaction.
type importer struct {
	s      *Server
	tx     *store.Tx
	c      *call
	counts map[store.Kind]*importCounts
	// blocked are the applications the file says are blocked.
	blocked []string
}

// put creates or replaces one record; an equal one is left alone (its
// ETag stays).
func (im *importer) put(rec store.Record, spec proto.Message, meta store.Meta) error {
	body, err := store.EncodeBody(spec, meta)
	if err != nil {
		return err
	}
	rec.Body = body
	n := im.counts[rec.Kind]
	if n == nil {
		n = &importCounts{}
		im.counts[rec.Kind] = n
	}
	cur, err := im.tx.Get(rec.Kind, rec.ID)
	switch {
	case err != nil:
		if _, err := im.tx.Create(rec); err != nil {
			return err
		}
		n.Created++
	case bytes.Equal(cur.Body, rec.Body) && cur.State == rec.State && cur.Owner == rec.Owner && cur.Parent == rec.Parent:
		n.Unchanged++
		return nil
	default:
		rec.Version = cur.Version
		if _, err := im.tx.Update(rec); err != nil {
			return err
		}
		n.Updated++
	}
	return im.s.audit(im.tx, im.c, "import", rec.Kind, rec.ID, nil, object{"id": rec.ID, "state": rec.State})
}

// importResources applies a tollgate.v1.Resources (what export writes,
// or any config file's resource sections): each resource is created or
// replaced, nothing is deleted, all in one transaction.
func (s *Server) importResources(w http.ResponseWriter, c *call) error {
	if !c.caller.admin() {
		return forbidden("admins only")
	}
	r := &tollgatev1.Resources{}
	if err := decodeInto(c.body, r); err != nil {
		return err
	}
	mg := r.GetManagement()
	// One validation of everything, as a file gets; pending subscriptions
	// and revoked keys are checked as what they would be when served.
	check := proto.Clone(r).(*tollgatev1.Resources)
	check.Management = nil
	check.Apis = append(check.Apis, mg.GetHeldApis()...)
	for _, sub := range mg.GetPendingSubscriptions() {
		held := proto.Clone(sub).(*tollgatev1.Subscription)
		held.State = store.SubOnHold
		check.Subscriptions = append(check.Subscriptions, held)
	}
	check.ApiKeys = append(check.ApiKeys, mg.GetRevokedKeys()...)
	if err := s.validate("the import", check); err != nil {
		return err
	}
	states := map[string]*tollgatev1.ApiManagement{}
	for _, a := range mg.GetApis() {
		states[a.GetId()] = a
	}
	return s.commit(w, c, func(tx *store.Tx) (result, error) {
		im := &importer{s: s, tx: tx, c: c, counts: map[store.Kind]*importCounts{}, blocked: mg.GetBlockedApplications()}
		for _, p := range r.GetRateLimitPolicies() {
			if err := im.put(store.Record{Kind: store.KindPolicy, ID: p.GetName()}, p, store.Meta{}); err != nil {
				return result{}, err
			}
		}
		for _, is := range r.GetIssuers() {
			if err := im.put(store.Record{Kind: store.KindIssuer, ID: resources.IssuerName(is)}, is, store.Meta{}); err != nil {
				return result{}, err
			}
		}
		if m := r.GetMtls(); m != nil {
			if err := im.put(store.Record{Kind: store.KindMtls, ID: resources.MtlsName}, m, store.Meta{}); err != nil {
				return result{}, err
			}
		}
		for i, list := range [][]*tollgatev1.Api{r.GetApis(), mg.GetHeldApis()} {
			for _, a := range list {
				if err := s.importAPI(im, a, states[a.GetId()], i == 1); err != nil {
					return result{}, err
				}
			}
		}
		for _, a := range r.GetApplications() {
			if err := s.importApplication(im, a); err != nil {
				return result{}, err
			}
		}
		for i, list := range [][]*tollgatev1.Subscription{r.GetSubscriptions(), mg.GetPendingSubscriptions()} {
			for _, sub := range list {
				if err := importSubscription(im, sub, i == 1); err != nil {
					return result{}, err
				}
			}
		}
		for i, list := range [][]*tollgatev1.ApiKey{r.GetApiKeys(), mg.GetRevokedKeys()} {
			for _, k := range list {
				if err := importKey(im, k, i == 1); err != nil {
					return result{}, err
				}
			}
		}
		for _, t := range r.GetRevokedTokens() {
			if err := im.put(store.Record{Kind: store.KindRevokedToken, ID: t.GetJti()}, t, store.Meta{}); err != nil {
				return result{}, err
			}
		}
		out := map[string]*importCounts{}
		for k, n := range im.counts {
			out[string(k)] = n
		}
		return result{status: http.StatusOK, body: out}, nil
	})
}

func (s *Server) importAPI(im *importer, a *tollgatev1.Api, mg *tollgatev1.ApiManagement, held bool) error {
	state := mg.GetState()
	switch {
	case state == "" && held:
		state = store.APICreated
	case state == "" && a.GetBlocked():
		state = store.APIBlocked
	case state == "":
		state = store.APIPublished
	}
	if _, ok := transitions[state]; !ok {
		return invalid(fmt.Sprintf("management.apis: API %q has no state %q", a.GetId(), state))
	}
	if served := state != store.APICreated && state != store.APIRetired; served == held {
		return invalid(fmt.Sprintf("API %q is %s: it belongs in %s", a.GetId(), state, map[bool]string{true: "apis", false: "management.heldApis"}[served]))
	}
	// The record's state says blocked; the message served is derived.
	spec := proto.Clone(a).(*tollgatev1.Api)
	spec.Blocked = false
	if err := s.checkAPI(im.tx, spec); err != nil {
		return err
	}
	return im.put(store.Record{Kind: store.KindAPI, ID: a.GetId(), State: state}, spec,
		store.Meta{RequiresApproval: mg.GetRequiresApproval(), Description: mg.GetDescription(), Tags: mg.GetTags(), Tiers: mg.GetTiers()})
}

func (s *Server) importApplication(im *importer, a *tollgatev1.Application) error {
	if !ValidOwner(a.GetOwner()) {
		a = proto.Clone(a).(*tollgatev1.Application)
		a.Owner = im.c.caller.Name
	}
	if err := exists(im.tx, store.KindPolicy, a.GetRateLimit(), "applications."+a.GetId()+".rateLimit"); err != nil {
		return err
	}
	holder := store.HolderKey(store.KindApplication, a.GetId())
	for _, claim := range []struct {
		kind   string
		values []string
	}{{"clientId", a.GetClientIds()}, {"principal", a.GetPrincipals()}, {"certificate", lower(a.GetCertificates())}} {
		if err := im.tx.Claim(claim.kind, holder, claim.values); err != nil {
			return err
		}
	}
	blocked := slices.Contains(im.blocked, a.GetId())
	return im.put(store.Record{Kind: store.KindApplication, ID: a.GetId(), Owner: a.GetOwner()}, a, store.Meta{Blocked: blocked})
}

func lower(list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = strings.ToLower(s)
	}
	return out
}

func importSubscription(im *importer, sub *tollgatev1.Subscription, pending bool) error {
	app, err := im.tx.Get(store.KindApplication, sub.GetApplication())
	if err != nil {
		return invalidRef("subscriptions: application "+sub.GetApplication(), err)
	}
	if err := exists(im.tx, store.KindAPI, sub.GetApi(), "subscriptions: api"); err != nil {
		return err
	}
	if err := exists(im.tx, store.KindPolicy, sub.GetRateLimit(), "subscriptions: rateLimit"); err != nil {
		return err
	}
	state := sub.GetState()
	if pending {
		state = store.SubPending
	}
	spec := proto.Clone(sub).(*tollgatev1.Subscription)
	spec.State = ""
	return im.put(store.Record{Kind: store.KindSubscription, ID: resources.SubscriptionName(sub), Parent: sub.GetApplication(),
		Ref: sub.GetApi(), Owner: app.Owner, State: state}, spec, store.Meta{})
}

// importKey stores a key by its digest. A key without an id (one made
// before ids, or by hand) is named by the first characters of its
// digest.
func importKey(im *importer, k *tollgatev1.ApiKey, revoked bool) error {
	app, err := im.tx.Get(store.KindApplication, k.GetApplication())
	if err != nil {
		return invalidRef("apiKeys: application "+k.GetApplication(), err)
	}
	spec := proto.Clone(k).(*tollgatev1.ApiKey)
	spec.Sha256 = strings.ToLower(spec.GetSha256())
	if spec.GetId() == "" && len(spec.GetSha256()) == 64 {
		spec.Id = spec.GetSha256()[:12]
	}
	if !keys.ValidKeyID(spec.GetId()) {
		return invalid(fmt.Sprintf("apiKeys: key id %q is not 12 characters of [0-9a-z]", spec.GetId()))
	}
	if err := im.tx.Claim("keyDigest", store.HolderKey(store.KindAPIKey, spec.GetId()), []string{spec.GetSha256()}); err != nil {
		return err
	}
	state := store.KeyActive
	if revoked {
		state = store.KeyRevoked
	}
	return im.put(store.Record{Kind: store.KindAPIKey, ID: spec.GetId(), Parent: app.ID, Owner: app.Owner, State: state}, spec, store.Meta{})
}
