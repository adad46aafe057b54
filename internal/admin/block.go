package admin

import (
	"net/http"

	"github.com/tollgate/tollgate/internal/store"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// blockApplication is POST /applications/{id}/block (block=true) and
// /unblock: admins and publishers stop every subscription of an
// application at once, and restore each to the state it had. The
// subscriptions change, so replicas receive only those records.
func (s *Server) blockApplication(block bool) handler {
	return func(w http.ResponseWriter, c *call) error {
		if !c.caller.publisher() {
			return forbidden("admins and publishers block applications")
		}
		id := c.r.PathValue("id")
		return s.commit(w, c, func(tx *store.Tx) (result, error) {
			rec, err := tx.Get(store.KindApplication, id)
			if err != nil {
				return result{}, err
			}
			if err := ifMatch(c, rec.Version); err != nil {
				return result{}, err
			}
			spec, meta, err := decodeSpec(rec, &tollgatev1.Application{})
			if err != nil {
				return result{}, err
			}
			if meta.Blocked != block {
				before, err := applicationObject(rec)
				if err != nil {
					return result{}, err
				}
				meta.Blocked = block
				if rec, _, err = s.writeRecord(tx, c, rec, spec, meta, before, applicationObject); err != nil {
					return result{}, err
				}
				if err := s.blockSubscriptions(tx, c, id, block); err != nil {
					return result{}, err
				}
			}
			o, err := applicationObject(rec)
			return result{status: http.StatusOK, body: o, etag: rec.Version}, err
		})
	}
}

// blockSubscriptions moves an application's subscriptions to blocked,
// remembering each one's state, or back to the state remembered.
func (s *Server) blockSubscriptions(tx *store.Tx, c *call, app string, block bool) error {
	subs, _, err := tx.List(store.KindSubscription, store.Filter{Parent: app})
	if err != nil {
		return err
	}
	for _, rec := range subs {
		spec, meta, err := decodeSpec(rec, &tollgatev1.Subscription{})
		if err != nil {
			return err
		}
		before := subscriptionObject(rec)
		switch {
		case block && rec.State != store.SubBlocked:
			meta.PriorState, rec.State = rec.State, store.SubBlocked
		case !block && meta.PriorState != "":
			rec.State, meta.PriorState = meta.PriorState, ""
		default:
			continue // blocked on its own: it stays so
		}
		if _, err := s.putSubscription(tx, c, rec, spec, meta, before); err != nil {
			return err
		}
	}
	return nil
}
