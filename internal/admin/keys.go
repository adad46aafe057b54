package admin

import (
	"fmt"
	"net/http"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tollgate/tollgate/internal/keys"
	"github.com/tollgate/tollgate/internal/store"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// keyObject shows a key without its secret, which is never stored, and
// without its digest, which nobody needs to see.
func keyObject(r store.Record) (object, error) {
	spec, meta, err := decodeSpec(r, &tollgatev1.ApiKey{})
	if err != nil {
		return nil, err
	}
	o := specObject(spec).stamp(r)
	delete(o, "sha256")
	o["id"], o["state"], o["prefix"] = r.ID, r.State, keys.KeyPrefix+r.ID
	if meta.ReplacedBy != "" {
		o["replacedBy"] = meta.ReplacedBy
	}
	return o, nil
}

// keyApp reads the application of a keys route, which the caller must
// own (developers) or administer.
func keyApp(c *call, get func(store.Kind, string) (store.Record, error)) (store.Record, error) {
	if c.caller.Role == "publisher" {
		return store.Record{}, forbidden("publishers do not handle applications' keys")
	}
	return ownedApp(c, get, c.r.PathValue("id"))
}

// appKey reads a key of the route's application.
func appKey(c *call, get func(store.Kind, string) (store.Record, error)) (store.Record, store.Record, error) {
	app, err := keyApp(c, get)
	if err != nil {
		return app, store.Record{}, err
	}
	// A key id is 12 characters of [0-9a-z]; anything else (a whole key
	// pasted into the path, say) is not found and never echoed.
	if !keys.ValidKeyID(c.r.PathValue("keyId")) {
		return app, store.Record{}, notFound("no such key: a key id is 12 characters of 0-9 and a-z")
	}
	k, err := get(store.KindAPIKey, c.r.PathValue("keyId"))
	if err == nil && k.Parent != app.ID {
		err = notFound(fmt.Sprintf("key %q: not found", c.r.PathValue("keyId")))
	}
	return app, k, err
}

func (s *Server) listKeys(w http.ResponseWriter, c *call) error {
	app, err := keyApp(c, s.storeGet(c))
	if err != nil {
		return err
	}
	offset, limit, err := paging(c)
	if err != nil {
		return err
	}
	return s.listPage(w, c, store.KindAPIKey, store.Filter{Parent: app.ID, Offset: offset, Limit: limit}, keyObject)
}

func (s *Server) getKey(w http.ResponseWriter, c *call) error {
	_, k, err := appKey(c, s.storeGet(c))
	if err != nil {
		return err
	}
	o, err := keyObject(k)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(k.Version))
	writeJSON(w, http.StatusOK, o)
	return nil
}

// createKey generates a key server-side and returns its secret once.
func (s *Server) createKey(w http.ResponseWriter, c *call) error {
	in, err := parseInput(c.body)
	if err != nil {
		return err
	}
	if err := in.only("a key", "name", "expiresAt", "allowedCidrs", "scopes"); err != nil {
		return invalid(err.Error())
	}
	spec := &tollgatev1.ApiKey{}
	if err := in.into(spec); err != nil {
		return err
	}
	return s.commit(w, c, func(tx *store.Tx) (result, error) {
		app, err := keyApp(c, tx.Get)
		if err != nil {
			return result{}, err
		}
		return s.issueKey(tx, c, app, spec, nil)
	})
}

// issueKey generates a key for app with spec's settings. replaces, if
// set, is the key it succeeds (regenerate), already updated.
func (s *Server) issueKey(tx *store.Tx, c *call, app store.Record, spec *tollgatev1.ApiKey, replaces *store.Record) (result, error) {
	gen, err := keys.GenerateKey()
	if err != nil {
		return result{}, err
	}
	spec.Application, spec.Sha256, spec.Id = app.ID, gen.Digest.String(), gen.ID
	if spec.GetName() == "" {
		spec.Name = gen.ID
	}
	if exp := spec.GetExpiresAt(); exp != nil && !exp.AsTime().After(s.now()) {
		return result{}, invalid("expiresAt: must be in the future")
	}
	if err := s.validate("the key", &tollgatev1.Resources{ApiKeys: []*tollgatev1.ApiKey{spec}}); err != nil {
		return result{}, err
	}
	if err := tx.Claim("keyDigest", store.HolderKey(store.KindAPIKey, gen.ID), []string{spec.GetSha256()}); err != nil {
		return result{}, err
	}
	body, err := store.EncodeBody(spec, store.Meta{})
	if err != nil {
		return result{}, err
	}
	rec, err := tx.Create(store.Record{Kind: store.KindAPIKey, ID: gen.ID, Parent: app.ID, Owner: app.Owner, State: store.KeyActive, Body: body})
	if err != nil {
		return result{}, err
	}
	o, err := keyObject(rec)
	if err != nil {
		return result{}, err
	}
	action := "create"
	if replaces != nil {
		action, o["replaces"] = "regenerate", replaces.ID
	}
	if err := s.audit(tx, c, action, store.KindAPIKey, rec.ID, nil, o); err != nil {
		return result{}, err
	}
	shown := object{}
	for k, v := range o {
		shown[k] = v
	}
	shown["key"] = gen.Key
	// A replay of the request answers the record without the secret: it
	// is shown once and kept nowhere.
	return result{status: http.StatusCreated, body: shown, etag: rec.Version, remembered: o}, nil
}

// regenerateKey issues a successor with the same settings; the old key
// keeps working for the grace period (default Options.RegenerateGrace,
// "grace": "0s" ends it at once), then expires.
func (s *Server) regenerateKey(w http.ResponseWriter, c *call) error {
	grace := s.o.RegenerateGrace
	if len(c.body) > 0 {
		in, err := parseInput(c.body)
		if err != nil {
			return err
		}
		g, ok, err := in.str("grace")
		if err != nil {
			return err
		}
		if len(in) > 0 {
			return invalid("regenerate takes grace, a duration such as 1h")
		}
		if ok {
			if grace, err = time.ParseDuration(g); err != nil || grace < 0 || grace > 30*24*time.Hour {
				return invalid("grace: want a duration from 0s to 720h")
			}
		}
	}
	return s.commit(w, c, func(tx *store.Tx) (result, error) {
		app, old, err := appKey(c, tx.Get)
		if err != nil {
			return result{}, err
		}
		if err := ifMatch(c, old.Version); err != nil {
			return result{}, err
		}
		if old.State != store.KeyActive {
			return result{}, conflict(fmt.Sprintf("key %q is %s", old.ID, old.State))
		}
		before, err := keyObject(old)
		if err != nil {
			return result{}, err
		}
		spec, meta, err := decodeSpec(old, &tollgatev1.ApiKey{})
		if err != nil {
			return result{}, err
		}
		next := &tollgatev1.ApiKey{Name: spec.GetName(), ExpiresAt: spec.GetExpiresAt(), AllowedCidrs: spec.GetAllowedCidrs(), Scopes: spec.GetScopes()}
		if next.GetExpiresAt() != nil && !next.GetExpiresAt().AsTime().After(s.now()) {
			next.ExpiresAt = nil
		}
		res, err := s.issueKey(tx, c, app, next, &old)
		if err != nil {
			return result{}, err
		}
		end := s.now().Add(grace)
		if exp := spec.GetExpiresAt(); exp == nil || exp.AsTime().After(end) {
			spec.ExpiresAt = timestamppb.New(end)
		}
		meta.ReplacedBy = next.GetId()
		if old.Body, err = store.EncodeBody(spec, meta); err != nil {
			return result{}, err
		}
		updated, err := tx.Update(old)
		if err != nil {
			return result{}, err
		}
		after, err := keyObject(updated)
		if err != nil {
			return result{}, err
		}
		return res, s.audit(tx, c, "update", store.KindAPIKey, old.ID, before, after)
	})
}

// revokeKey stops a key at once; the record stays, listed as revoked.
func (s *Server) revokeKey(w http.ResponseWriter, c *call) error {
	return s.commit(w, c, func(tx *store.Tx) (result, error) {
		_, k, err := appKey(c, tx.Get)
		if err != nil {
			return result{}, err
		}
		if err := ifMatch(c, k.Version); err != nil {
			return result{}, err
		}
		if k.State == store.KeyRevoked {
			o, err := keyObject(k)
			return result{status: http.StatusOK, body: o, etag: k.Version}, err
		}
		before, err := keyObject(k)
		if err != nil {
			return result{}, err
		}
		k.State = store.KeyRevoked
		if k, err = tx.Update(k); err != nil {
			return result{}, err
		}
		after, err := keyObject(k)
		if err != nil {
			return result{}, err
		}
		return result{status: http.StatusOK, body: after, etag: k.Version}, s.audit(tx, c, "revoke", store.KindAPIKey, k.ID, before, after)
	})
}

// deleteKey removes a key and its record.
func (s *Server) deleteKey(w http.ResponseWriter, c *call) error {
	return s.commit(w, c, func(tx *store.Tx) (result, error) {
		_, k, err := appKey(c, tx.Get)
		if err != nil {
			return result{}, err
		}
		if err := ifMatch(c, k.Version); err != nil {
			return result{}, err
		}
		before, err := keyObject(k)
		if err != nil {
			return result{}, err
		}
		if err := tx.Delete(store.KindAPIKey, k.ID); err != nil {
			return result{}, err
		}
		if err := tx.ReleaseClaims(store.HolderKey(store.KindAPIKey, k.ID)); err != nil {
			return result{}, err
		}
		return result{status: http.StatusNoContent}, s.audit(tx, c, "delete", store.KindAPIKey, k.ID, before, nil)
	})
}
