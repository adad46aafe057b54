package admin

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"

	"github.com/tollgate/tollgate/internal/store"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

func applicationObject(r store.Record) (object, error) {
	spec, meta, err := decodeSpec(r, &tollgatev1.Application{})
	if err != nil {
		return nil, err
	}
	o := specObject(spec).rename("rateLimit", "tier").stamp(r)
	o["blocked"] = meta.Blocked
	return o, nil
}

// developerAppFields are what a developer may set on an application.
// Client ids, principals and certificates bind identities of the mesh and
// of the identity provider to the application, so only admins set them.
var developerAppFields = []string{"id", "name", "tier"}

// ownedApp reads an application the caller may see: a developer's own.
// Anyone else's is as if absent, so its existence is not told either.
func ownedApp(c *call, get func(store.Kind, string) (store.Record, error), id string) (store.Record, error) {
	r, err := get(store.KindApplication, id)
	if err == nil && c.caller.developer() && r.Owner != c.caller.Name {
		err = notFound(fmt.Sprintf("application %q: not found", id))
	}
	return r, err
}

func (s *Server) storeGet(c *call) func(store.Kind, string) (store.Record, error) {
	return func(k store.Kind, id string) (store.Record, error) { return s.st.Get(c.r.Context(), k, id) }
}

func (s *Server) listApplications(w http.ResponseWriter, c *call) error {
	offset, limit, err := paging(c)
	if err != nil {
		return err
	}
	f := store.Filter{Offset: offset, Limit: limit, Owner: c.r.URL.Query().Get("owner")}
	if c.caller.developer() {
		f.Owner = c.caller.Name
	}
	return s.listPage(w, c, store.KindApplication, f, applicationObject)
}

func (s *Server) getApplication(w http.ResponseWriter, c *call) error {
	r, err := ownedApp(c, s.storeGet(c), c.r.PathValue("id"))
	if err != nil {
		return err
	}
	o, err := applicationObject(r)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(r.Version))
	writeJSON(w, http.StatusOK, o)
	return nil
}

// appInput reads an application body into spec, holding each role to
// what it may set.
func appInput(c *call, spec *tollgatev1.Application) error {
	in, err := parseInput(c.body)
	if err != nil {
		return err
	}
	in.drop("createdAt", "updatedAt", "blocked")
	if c.caller.developer() {
		if err := in.only("a developer", developerAppFields...); err != nil {
			return err
		}
	}
	if raw, ok := in["tier"]; ok {
		delete(in, "tier")
		in["rateLimit"] = raw
	}
	return in.into(spec)
}

func newID(prefix string) string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return prefix + string(b)
}

func (s *Server) createApplication(w http.ResponseWriter, c *call) error {
	if !c.caller.admin() && !c.caller.developer() {
		return forbidden("applications are created by developers (their own) and admins")
	}
	spec := &tollgatev1.Application{}
	if err := appInput(c, spec); err != nil {
		return err
	}
	if c.caller.developer() || spec.GetOwner() == "" {
		spec.Owner = c.caller.Name
	}
	if spec.GetId() == "" {
		spec.Id = newID("app-")
	}
	if spec.GetName() == "" {
		spec.Name = spec.GetId()
	}
	return s.commit(w, c, func(tx *store.Tx) (result, error) {
		rec, err := s.putApplication(tx, c, store.Record{Kind: store.KindApplication, ID: spec.GetId()}, spec, store.Meta{}, nil)
		if err != nil {
			return result{}, err
		}
		o, err := applicationObject(rec)
		return result{status: http.StatusCreated, body: o, etag: rec.Version}, err
	})
}

func (s *Server) putApplication(tx *store.Tx, c *call, rec store.Record, spec *tollgatev1.Application, meta store.Meta, before object) (store.Record, error) {
	if !ValidOwner(spec.GetOwner()) {
		return rec, invalid("owner: printable characters without spaces, at most 256")
	}
	for i, cert := range spec.GetCertificates() {
		spec.Certificates[i] = strings.ToLower(cert)
	}
	if err := s.validate("the application", &tollgatev1.Resources{Applications: []*tollgatev1.Application{spec}}); err != nil {
		return rec, err
	}
	if err := exists(tx, store.KindPolicy, spec.GetRateLimit(), "tier"); err != nil {
		return rec, err
	}
	holder := store.HolderKey(store.KindApplication, spec.GetId())
	for _, claim := range []struct {
		kind   string
		values []string
	}{{"clientId", spec.GetClientIds()}, {"principal", spec.GetPrincipals()}, {"certificate", spec.GetCertificates()}} {
		if err := tx.Claim(claim.kind, holder, claim.values); err != nil {
			return rec, err
		}
	}
	rec.Owner = spec.GetOwner()
	rec, after, err := s.writeRecord(tx, c, rec, spec, meta, before, applicationObject)
	if err != nil {
		return rec, err
	}
	if before != nil && before["owner"] != after["owner"] {
		// What hangs off the application belongs to its owner too.
		if err := s.reown(tx, spec.GetId(), spec.GetOwner()); err != nil {
			return rec, err
		}
	}
	return rec, nil
}

// reown moves an application's subscriptions and keys to a new owner.
func (s *Server) reown(tx *store.Tx, app, owner string) error {
	for _, kind := range []store.Kind{store.KindSubscription, store.KindAPIKey} {
		recs, _, err := tx.List(kind, store.Filter{Parent: app})
		if err != nil {
			return err
		}
		for _, r := range recs {
			r.Owner = owner
			if _, err := tx.Update(r); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Server) changeApplication(replace bool) handler {
	return func(w http.ResponseWriter, c *call) error {
		if c.caller.Role == "publisher" {
			return forbidden("publishers read applications; developers and admins change them")
		}
		id := c.r.PathValue("id")
		return s.commit(w, c, func(tx *store.Tx) (result, error) {
			rec, err := ownedApp(c, tx.Get, id)
			if err != nil {
				return result{}, err
			}
			if err := ifMatch(c, rec.Version); err != nil {
				return result{}, err
			}
			before, err := applicationObject(rec)
			if err != nil {
				return result{}, err
			}
			spec, meta, err := decodeSpec(rec, &tollgatev1.Application{})
			if err != nil {
				return result{}, err
			}
			if replace {
				// A developer's replacement keeps what only admins set.
				keep := spec
				spec = &tollgatev1.Application{Id: id, Owner: keep.GetOwner()}
				if c.caller.developer() {
					spec.ClientIds, spec.Principals, spec.Certificates = keep.GetClientIds(), keep.GetPrincipals(), keep.GetCertificates()
				}
			}
			if err := appInput(c, spec); err != nil {
				return result{}, err
			}
			if spec.GetId() != id {
				return result{}, invalid("id: an application's id cannot change")
			}
			if c.caller.developer() {
				spec.Owner = c.caller.Name
			}
			rec, err = s.putApplication(tx, c, rec, spec, meta, before)
			if err != nil {
				return result{}, err
			}
			o, err := applicationObject(rec)
			return result{status: http.StatusOK, body: o, etag: rec.Version}, err
		})
	}
}

// deleteApplication removes an application with its subscriptions and
// keys: they stop working on every replica with the same update.
func (s *Server) deleteApplication(w http.ResponseWriter, c *call) error {
	if c.caller.Role == "publisher" {
		return forbidden("publishers read applications; developers and admins delete them")
	}
	id := c.r.PathValue("id")
	return s.commit(w, c, func(tx *store.Tx) (result, error) {
		rec, err := ownedApp(c, tx.Get, id)
		if err != nil {
			return result{}, err
		}
		if err := ifMatch(c, rec.Version); err != nil {
			return result{}, err
		}
		for _, kind := range []store.Kind{store.KindSubscription, store.KindAPIKey} {
			recs, _, err := tx.List(kind, store.Filter{Parent: id})
			if err != nil {
				return result{}, err
			}
			for _, r := range recs {
				if err := tx.Delete(kind, r.ID); err != nil {
					return result{}, err
				}
				if kind == store.KindAPIKey {
					if err := tx.ReleaseClaims(store.HolderKey(kind, r.ID)); err != nil {
						return result{}, err
					}
				}
			}
		}
		before, err := applicationObject(rec)
		if err != nil {
			return result{}, err
		}
		if err := tx.ReleaseClaims(store.HolderKey(store.KindApplication, id)); err != nil {
			return result{}, err
		}
		if err := tx.Delete(store.KindApplication, id); err != nil {
			return result{}, err
		}
		return result{status: http.StatusNoContent}, s.audit(tx, c, "delete", store.KindApplication, id, before, nil)
	})
}
