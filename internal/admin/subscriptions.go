package admin

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/tollgate/tollgate/internal/resources"
	"github.com/tollgate/tollgate/internal/store"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

func subscriptionObject(r store.Record) object {
	spec, _, err := decodeSpec(r, &tollgatev1.Subscription{})
	if err != nil {
		return object{"id": r.ID}
	}
	o := specObject(spec).rename("rateLimit", "tier").stamp(r)
	o["id"], o["state"] = r.ID, r.State
	return o
}

func subscriptionShow(r store.Record) (object, error) { return subscriptionObject(r), nil }

func subscriptionID(c *call) string { return c.r.PathValue("application") + "/" + c.r.PathValue("api") }

// ownedSubscription reads a subscription the caller may see.
func ownedSubscription(c *call, get func(store.Kind, string) (store.Record, error), id string) (store.Record, error) {
	r, err := get(store.KindSubscription, id)
	if err == nil && c.caller.developer() && r.Owner != c.caller.Name {
		err = notFound(fmt.Sprintf("subscription %q: not found", id))
	}
	return r, err
}

func (s *Server) listSubscriptions(w http.ResponseWriter, c *call) error {
	offset, limit, err := paging(c)
	if err != nil {
		return err
	}
	q := c.r.URL.Query()
	f := store.Filter{Offset: offset, Limit: limit, Parent: q.Get("application"), Ref: q.Get("api")}
	if st := q.Get("state"); st != "" {
		f.States = []string{st}
	}
	if c.caller.developer() {
		f.Owner = c.caller.Name
	}
	return s.listPage(w, c, store.KindSubscription, f, subscriptionShow)
}

func (s *Server) getSubscription(w http.ResponseWriter, c *call) error {
	r, err := ownedSubscription(c, s.storeGet(c), subscriptionID(c))
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(r.Version))
	writeJSON(w, http.StatusOK, subscriptionObject(r))
	return nil
}

var subscriptionStates = []string{store.SubActive, store.SubBlocked, store.SubOnHold, store.SubPending}

func (s *Server) createSubscription(w http.ResponseWriter, c *call) error {
	in, err := parseInput(c.body)
	if err != nil {
		return err
	}
	app, _, err := in.str("application")
	if err != nil {
		return err
	}
	api, _, err := in.str("api")
	if err != nil {
		return err
	}
	tier, _, err := in.str("tier")
	if err != nil {
		return err
	}
	state, _, err := in.str("state")
	if err != nil {
		return err
	}
	if len(in) > 0 {
		return invalid("a subscription takes application, api, tier and (admins and publishers) state")
	}
	if state != "" && c.caller.developer() {
		return forbidden("a developer may not set a subscription's state")
	}
	if state != "" && !slices.Contains(subscriptionStates, state) {
		return invalid("state: want active, blocked, onHold or pending")
	}
	return s.commit(w, c, func(tx *store.Tx) (result, error) {
		appRec, err := ownedApp(c, tx.Get, app)
		if err != nil {
			return result{}, invalidRef("application", err)
		}
		apiRec, err := tx.Get(store.KindAPI, api)
		if err != nil || (c.caller.developer() && !slices.Contains(catalogStates, apiRec.State)) {
			return result{}, invalid(fmt.Sprintf("api: no API %q", api), Detail{Path: "api", Message: "no such API"})
		}
		if apiRec.State != store.APIPublished {
			return result{}, conflict(fmt.Sprintf("api %q is %s: only published APIs take new subscriptions", api, apiRec.State))
		}
		_, meta, err := decodeSpec(apiRec, &tollgatev1.Api{})
		if err != nil {
			return result{}, err
		}
		if tier, err = offeredTier(meta, tier); err != nil {
			return result{}, err
		}
		if err := exists(tx, store.KindPolicy, tier, "tier"); err != nil {
			return result{}, err
		}
		if state == "" {
			state = store.SubActive
			if meta.RequiresApproval && c.caller.developer() {
				state = store.SubPending
			}
		}
		var subMeta store.Meta
		if _, appMeta, err := decodeSpec(appRec, &tollgatev1.Application{}); err != nil {
			return result{}, err
		} else if appMeta.Blocked && state != store.SubBlocked {
			// A blocked application's new subscriptions wait blocked too.
			subMeta.PriorState, state = state, store.SubBlocked
		}
		spec := &tollgatev1.Subscription{Application: app, Api: api, RateLimit: tier}
		rec, err := s.putSubscription(tx, c, store.Record{Kind: store.KindSubscription, ID: resources.SubscriptionName(spec),
			Parent: app, Ref: api, Owner: appRec.Owner, State: state}, spec, subMeta, nil)
		if err != nil {
			return result{}, err
		}
		return result{status: http.StatusCreated, body: subscriptionObject(rec), etag: rec.Version}, nil
	})
}

// offeredTier holds a subscription's tier to the API's tiers, when it
// names any: no tier asked is the first of them.
func offeredTier(meta store.Meta, tier string) (string, error) {
	if len(meta.Tiers) == 0 {
		return tier, nil
	}
	if tier == "" {
		return meta.Tiers[0], nil
	}
	if !slices.Contains(meta.Tiers, tier) {
		return "", invalid(fmt.Sprintf("tier: this API offers %v", meta.Tiers), Detail{Path: "tier", Message: "not offered by this API"})
	}
	return tier, nil
}

// invalidRef turns a missing reference into a 400 naming the field.
func invalidRef(field string, err error) error {
	return invalid(fmt.Sprintf("%s: %v", field, err), Detail{Path: field, Message: "not found"})
}

func (s *Server) putSubscription(tx *store.Tx, c *call, rec store.Record, spec *tollgatev1.Subscription, meta store.Meta, before object) (store.Record, error) {
	// The data plane knows three states; pending is the control plane's
	// and never reaches a replica.
	spec.State = rec.State
	if rec.State == store.SubPending {
		spec.State = store.SubOnHold
	}
	if err := s.validate("the subscription", &tollgatev1.Resources{Subscriptions: []*tollgatev1.Subscription{spec}}); err != nil {
		return rec, err
	}
	spec.State = ""
	rec, _, err := s.writeRecord(tx, c, rec, spec, meta, before, subscriptionShow)
	return rec, err
}

// changeSubscription is PATCH: admins and publishers set the state
// (block, hold, resume) and the tier.
func (s *Server) changeSubscription(w http.ResponseWriter, c *call) error {
	if !c.caller.publisher() {
		return forbidden("admins and publishers change subscriptions; developers subscribe and unsubscribe")
	}
	in, err := parseInput(c.body)
	if err != nil {
		return err
	}
	in.drop("id", "application", "api", "createdAt", "updatedAt")
	state, _, err := in.str("state")
	if err != nil {
		return err
	}
	tier, tierSet, err := in.str("tier")
	if err != nil {
		return err
	}
	if len(in) > 0 {
		return invalid("a subscription's state and tier can change")
	}
	if state != "" && !slices.Contains(subscriptionStates, state) {
		return invalid("state: want active, blocked, onHold or pending")
	}
	return s.updateSubscription(w, c, func(tx *store.Tx, rec *store.Record, spec *tollgatev1.Subscription) error {
		if state != "" && state != rec.State {
			if err := appNotBlocked(tx, rec.Parent, state); err != nil {
				return err
			}
			rec.State = state
		}
		if tierSet {
			if err := exists(tx, store.KindPolicy, tier, "tier"); err != nil {
				return err
			}
			spec.RateLimit = tier
		}
		return nil
	})
}

// appNotBlocked refuses to move a blocked application's subscription out
// of blocked: the application is unblocked as a whole.
func appNotBlocked(tx *store.Tx, app, state string) error {
	if state == store.SubBlocked {
		return nil
	}
	r, err := tx.Get(store.KindApplication, app)
	if err != nil {
		return err
	}
	if _, meta, err := decodeSpec(r, &tollgatev1.Application{}); err != nil {
		return err
	} else if meta.Blocked {
		return conflict(fmt.Sprintf("application %q is blocked: unblock the application", app))
	}
	return nil
}

// approveSubscription moves a pending subscription to active.
func (s *Server) approveSubscription(w http.ResponseWriter, c *call) error {
	if !c.caller.publisher() {
		return forbidden("admins and publishers approve subscriptions")
	}
	return s.updateSubscription(w, c, func(_ *store.Tx, rec *store.Record, _ *tollgatev1.Subscription) error {
		if rec.State != store.SubPending {
			return conflict(fmt.Sprintf("subscription %q is %s, not pending", rec.ID, rec.State))
		}
		rec.State = store.SubActive
		return nil
	})
}

func (s *Server) updateSubscription(w http.ResponseWriter, c *call, change func(*store.Tx, *store.Record, *tollgatev1.Subscription) error) error {
	id := subscriptionID(c)
	return s.commit(w, c, func(tx *store.Tx) (result, error) {
		rec, err := tx.Get(store.KindSubscription, id)
		if err != nil {
			return result{}, err
		}
		if err := ifMatch(c, rec.Version); err != nil {
			return result{}, err
		}
		before := subscriptionObject(rec)
		spec, meta, err := decodeSpec(rec, &tollgatev1.Subscription{})
		if err != nil {
			return result{}, err
		}
		if err := change(tx, &rec, spec); err != nil {
			return result{}, err
		}
		rec, err = s.putSubscription(tx, c, rec, spec, meta, before)
		if err != nil {
			return result{}, err
		}
		return result{status: http.StatusOK, body: subscriptionObject(rec), etag: rec.Version}, nil
	})
}

// deleteSubscription unsubscribes: developers their own applications.
func (s *Server) deleteSubscription(w http.ResponseWriter, c *call) error {
	id := subscriptionID(c)
	return s.commit(w, c, func(tx *store.Tx) (result, error) {
		rec, err := ownedSubscription(c, tx.Get, id)
		if err != nil {
			return result{}, err
		}
		if err := ifMatch(c, rec.Version); err != nil {
			return result{}, err
		}
		if err := tx.Delete(store.KindSubscription, id); err != nil {
			return result{}, err
		}
		return result{status: http.StatusNoContent}, s.audit(tx, c, "delete", store.KindSubscription, id, subscriptionObject(rec), nil)
	})
}
