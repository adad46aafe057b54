package admin

import (
	"fmt"
	"net/http"
	"slices"
	"unicode"

	"github.com/tollgate/tollgate/internal/store"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// transitions are the lifecycle moves an API may make.
var transitions = map[string][]string{
	store.APICreated:    {store.APIPublished, store.APIRetired},
	store.APIPublished:  {store.APIDeprecated, store.APIBlocked, store.APIRetired},
	store.APIDeprecated: {store.APIPublished, store.APIBlocked, store.APIRetired},
	store.APIBlocked:    {store.APIPublished, store.APIDeprecated, store.APIRetired},
	store.APIRetired:    {},
}

// catalogStates are what developers see: APIs they can call or still use.
var catalogStates = []string{store.APIPublished, store.APIDeprecated}

func apiObject(r store.Record) (object, error) {
	spec, meta, err := decodeSpec(r, &tollgatev1.Api{})
	if err != nil {
		return nil, err
	}
	o := specObject(spec).stamp(r)
	o["state"] = r.State
	o["requiresApproval"] = meta.RequiresApproval
	if meta.Description != "" {
		o["description"] = meta.Description
	}
	o["tags"], o["tiers"] = nonNil(meta.Tags), nonNil(meta.Tiers)
	return o, nil
}

func (s *Server) listAPIs(w http.ResponseWriter, c *call) error {
	offset, limit, err := paging(c)
	if err != nil {
		return err
	}
	f := store.Filter{Offset: offset, Limit: limit}
	if st := c.r.URL.Query().Get("state"); st != "" {
		f.States = []string{st}
	}
	if c.caller.developer() {
		f.States = intersect(f.States, catalogStates)
		if len(f.States) == 0 {
			writeJSON(w, http.StatusOK, page{Items: []any{}, Offset: offset, Limit: limit})
			return nil
		}
	}
	return s.listPage(w, c, store.KindAPI, f, apiObject)
}

func intersect(asked, allowed []string) []string {
	if len(asked) == 0 {
		return allowed
	}
	var out []string
	for _, a := range asked {
		if slices.Contains(allowed, a) {
			out = append(out, a)
		}
	}
	return out
}

// listPage answers one page of records.
func (s *Server) listPage(w http.ResponseWriter, c *call, kind store.Kind, f store.Filter, show func(store.Record) (object, error)) error {
	recs, total, err := s.st.List(c.r.Context(), kind, f)
	if err != nil {
		return err
	}
	p := page{Items: make([]any, 0, len(recs)), Total: total, Offset: f.Offset, Limit: f.Limit}
	for _, r := range recs {
		o, err := show(r)
		if err != nil {
			return err
		}
		p.Items = append(p.Items, o)
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

// visibleAPI reads an API the caller may see: developers see the catalog
// only, and anything else is as if absent.
func (s *Server) visibleAPI(c *call, id string) (store.Record, error) {
	r, err := s.st.Get(c.r.Context(), store.KindAPI, id)
	if err == nil && c.caller.developer() && !slices.Contains(catalogStates, r.State) {
		err = notFound(fmt.Sprintf("api %q: not found", id))
	}
	return r, err
}

func (s *Server) getAPI(w http.ResponseWriter, c *call) error {
	r, err := s.visibleAPI(c, c.r.PathValue("id"))
	if err != nil {
		return err
	}
	o, err := apiObject(r)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(r.Version))
	writeJSON(w, http.StatusOK, o)
	return nil
}

// apiChange is what a request says about an API beside its definition.
type apiChange struct {
	state            string
	requiresApproval *bool
	description      *string
	tags, tiers      *[]string
}

func takeAPIChange(in input) (apiChange, error) {
	var ch apiChange
	in.drop("createdAt", "updatedAt")
	st, _, err := in.str("state")
	if err != nil {
		return ch, err
	}
	ch.state = st
	if ch.requiresApproval, err = in.boolean("requiresApproval"); err != nil {
		return ch, err
	}
	if d, ok, err := in.str("description"); err != nil {
		return ch, err
	} else if ok {
		if len(d) > 4096 {
			return ch, invalid("description: at most 4096 bytes")
		}
		ch.description = &d
	}
	if ch.tags, err = in.names("tags", 32, validTag); err != nil {
		return ch, err
	}
	if ch.tiers, err = in.names("tiers", 32, func(string) bool { return true }); err != nil {
		return ch, err
	}
	return ch, nil
}

// validTag accepts a short label: letters, digits, space, - _ . /
func validTag(t string) bool {
	if t == "" || len(t) > 64 {
		return false
	}
	for _, r := range t {
		if !(r == ' ' || r == '-' || r == '_' || r == '.' || r == '/' || unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return false
		}
	}
	return true
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (ch apiChange) apply(meta *store.Meta) {
	if ch.requiresApproval != nil {
		meta.RequiresApproval = *ch.requiresApproval
	}
	if ch.description != nil {
		meta.Description = *ch.description
	}
	if ch.tags != nil {
		meta.Tags = *ch.tags
	}
	if ch.tiers != nil {
		meta.Tiers = *ch.tiers
	}
}

// checkTiers holds an API's tiers to existing rate-limit policies.
func checkTiers(tx *store.Tx, meta store.Meta) error {
	for i, t := range meta.Tiers {
		if err := exists(tx, store.KindPolicy, t, fmt.Sprintf("tiers[%d]", i)); err != nil {
			return err
		}
	}
	return nil
}

// checkAPI validates a definition and its references.
func (s *Server) checkAPI(tx *store.Tx, spec *tollgatev1.Api) error {
	if err := s.validate("the API", &tollgatev1.Resources{Apis: []*tollgatev1.Api{spec}}); err != nil {
		return err
	}
	if err := exists(tx, store.KindPolicy, spec.GetRateLimit(), "rateLimit"); err != nil {
		return err
	}
	if err := exists(tx, store.KindPolicy, spec.GetAnonymousRateLimit(), "anonymousRateLimit"); err != nil {
		return err
	}
	for i, op := range spec.GetOperations() {
		if err := exists(tx, store.KindPolicy, op.GetRateLimit(), fmt.Sprintf("operations[%d].rateLimit", i)); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) createAPI(w http.ResponseWriter, c *call) error {
	if !c.caller.publisher() {
		return forbidden("only admins and publishers create APIs")
	}
	in, err := parseInput(c.body)
	if err != nil {
		return err
	}
	ch, err := takeAPIChange(in)
	if err != nil {
		return err
	}
	state := ch.state
	if state == "" {
		state = store.APICreated
	}
	if _, ok := transitions[state]; !ok || state == store.APIRetired {
		return invalid("state: a new API is created, published, deprecated or blocked")
	}
	spec := &tollgatev1.Api{}
	if err := in.into(spec); err != nil {
		return err
	}
	var meta store.Meta
	ch.apply(&meta)
	return s.commit(w, c, func(tx *store.Tx) (result, error) {
		rec, err := s.putAPI(tx, c, store.Record{Kind: store.KindAPI, ID: spec.GetId(), State: state}, spec, meta, nil)
		if err != nil {
			return result{}, err
		}
		o, err := apiObject(rec)
		return result{status: http.StatusCreated, body: o, etag: rec.Version}, err
	})
}

// putAPI checks and writes an API; before is nil for a new one.
func (s *Server) putAPI(tx *store.Tx, c *call, rec store.Record, spec *tollgatev1.Api, meta store.Meta, before object) (store.Record, error) {
	if err := s.checkAPI(tx, spec); err != nil {
		return rec, err
	}
	if err := checkTiers(tx, meta); err != nil {
		return rec, err
	}
	rec, _, err := s.writeRecord(tx, c, rec, spec, meta, before, apiObject)
	return rec, err
}

// changeAPI is PUT (replace the definition) and PATCH (merge fields, move
// through the lifecycle).
func (s *Server) changeAPI(replace bool) handler {
	return func(w http.ResponseWriter, c *call) error {
		if !c.caller.publisher() {
			return forbidden("only admins and publishers change APIs")
		}
		in, err := parseInput(c.body)
		if err != nil {
			return err
		}
		ch, err := takeAPIChange(in)
		if err != nil {
			return err
		}
		id := c.r.PathValue("id")
		return s.commit(w, c, func(tx *store.Tx) (result, error) {
			rec, err := tx.Get(store.KindAPI, id)
			if err != nil {
				return result{}, err
			}
			if err := ifMatch(c, rec.Version); err != nil {
				return result{}, err
			}
			before, err := apiObject(rec)
			if err != nil {
				return result{}, err
			}
			spec, meta, err := decodeSpec(rec, &tollgatev1.Api{})
			if err != nil {
				return result{}, err
			}
			if replace {
				spec = &tollgatev1.Api{Id: id}
			}
			if err := in.into(spec); err != nil {
				return result{}, err
			}
			if spec.GetId() != id {
				return result{}, invalid("id: an API's id cannot change")
			}
			if ch.state != "" && ch.state != rec.State {
				if !slices.Contains(transitions[rec.State], ch.state) {
					return result{}, conflict(fmt.Sprintf("state: an API that is %s cannot become %s (it can become %v)", rec.State, ch.state, transitions[rec.State]))
				}
				rec.State = ch.state
			}
			ch.apply(&meta)
			rec, err = s.putAPI(tx, c, rec, spec, meta, before)
			if err != nil {
				return result{}, err
			}
			o, err := apiObject(rec)
			return result{status: http.StatusOK, body: o, etag: rec.Version}, err
		})
	}
}

// deleteAPI removes an API that is not in use: created or retired. Its
// subscriptions and document go with it.
func (s *Server) deleteAPI(w http.ResponseWriter, c *call) error {
	if !c.caller.publisher() {
		return forbidden("only admins and publishers delete APIs")
	}
	id := c.r.PathValue("id")
	return s.commit(w, c, func(tx *store.Tx) (result, error) {
		rec, err := tx.Get(store.KindAPI, id)
		if err != nil {
			return result{}, err
		}
		if err := ifMatch(c, rec.Version); err != nil {
			return result{}, err
		}
		if rec.State != store.APICreated && rec.State != store.APIRetired {
			return result{}, conflict(fmt.Sprintf("api %q is %s: retire it first", id, rec.State))
		}
		subs, _, err := tx.List(store.KindSubscription, store.Filter{Ref: id})
		if err != nil {
			return result{}, err
		}
		for _, sub := range subs {
			if err := tx.Delete(store.KindSubscription, sub.ID); err != nil {
				return result{}, err
			}
			if err := s.audit(tx, c, "delete", store.KindSubscription, sub.ID, subscriptionObject(sub), nil); err != nil {
				return result{}, err
			}
		}
		before, err := apiObject(rec)
		if err != nil {
			return result{}, err
		}
		if err := tx.Delete(store.KindAPI, id); err != nil {
			return result{}, err
		}
		if err := tx.DeleteDocument(id); err != nil {
			return result{}, err
		}
		return result{status: http.StatusNoContent}, s.audit(tx, c, "delete", store.KindAPI, id, before, nil)
	})
}

func (s *Server) getAPIDocument(w http.ResponseWriter, c *call) error {
	r, err := s.visibleAPI(c, c.r.PathValue("id"))
	if err != nil {
		return err
	}
	doc, err := s.st.Document(c.r.Context(), r.ID)
	if err != nil {
		return err
	}
	ct := "application/yaml"
	if len(doc.Content) > 0 && (doc.Content[0] == '{' || doc.Content[0] == '[') {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("X-OpenAPI-Version", doc.SpecVersion)
	_, _ = w.Write(doc.Content)
	return nil
}
