package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/internal/resources"
	"github.com/tollgate/tollgate/internal/store"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// plainKind is a kind the API serves as its message and nothing more:
// rate-limit policies, issuers, revoked tokens.
type plainKind struct {
	kind        store.Kind
	noun        string
	newMsg      func() proto.Message
	idOf        func(proto.Message) string
	bundle      func(proto.Message) *tollgatev1.Resources
	read        func(Caller) bool
	write       func(Caller) bool
	writers     string
	inUse       func(tx *store.Tx, id string) error // nil: deletion is always allowed
	replaceable bool
}

var kindPolicy = &plainKind{
	kind: store.KindPolicy, noun: "rate-limit policy",
	newMsg: func() proto.Message { return &tollgatev1.RateLimitPolicy{} },
	idOf:   func(m proto.Message) string { return m.(*tollgatev1.RateLimitPolicy).GetName() },
	bundle: func(m proto.Message) *tollgatev1.Resources {
		return &tollgatev1.Resources{RateLimitPolicies: []*tollgatev1.RateLimitPolicy{m.(*tollgatev1.RateLimitPolicy)}}
	},
	// Developers read the tiers they choose from.
	read: func(Caller) bool { return true }, write: Caller.publisher, writers: "admins and publishers",
	inUse: policyInUse, replaceable: true,
}

var kindIssuer = &plainKind{
	kind: store.KindIssuer, noun: "issuer",
	newMsg: func() proto.Message { return &tollgatev1.Issuer{} },
	idOf:   func(m proto.Message) string { return resources.IssuerName(m.(*tollgatev1.Issuer)) },
	bundle: func(m proto.Message) *tollgatev1.Resources {
		return &tollgatev1.Resources{Issuers: []*tollgatev1.Issuer{m.(*tollgatev1.Issuer)}}
	},
	read: Caller.publisher, write: Caller.admin, writers: "admins", replaceable: true,
}

var kindRevokedToken = &plainKind{
	kind: store.KindRevokedToken, noun: "revoked token",
	newMsg: func() proto.Message { return &tollgatev1.RevokedToken{} },
	idOf:   func(m proto.Message) string { return m.(*tollgatev1.RevokedToken).GetJti() },
	bundle: func(m proto.Message) *tollgatev1.Resources {
		return &tollgatev1.Resources{RevokedTokens: []*tollgatev1.RevokedToken{m.(*tollgatev1.RevokedToken)}}
	},
	read: Caller.publisher, write: Caller.admin, writers: "admins",
}

func (k *plainKind) show(r store.Record) (object, error) {
	m := k.newMsg()
	if _, err := store.DecodeBody(r.Body, m); err != nil {
		return nil, err
	}
	return specObject(m).stamp(r), nil
}

func (s *Server) plainRoutes(base string, k *plainKind) {
	s.handle("GET "+base, func(w http.ResponseWriter, c *call) error {
		if !k.read(c.caller) {
			return forbidden("you may not read these")
		}
		offset, limit, err := paging(c)
		if err != nil {
			return err
		}
		return s.listPage(w, c, k.kind, store.Filter{Offset: offset, Limit: limit}, k.show)
	})
	s.handle("GET "+base+"/{id}", func(w http.ResponseWriter, c *call) error {
		if !k.read(c.caller) {
			return forbidden("you may not read these")
		}
		r, err := s.st.Get(c.r.Context(), k.kind, c.r.PathValue("id"))
		if err != nil {
			return err
		}
		o, err := k.show(r)
		if err != nil {
			return err
		}
		w.Header().Set("ETag", etag(r.Version))
		writeJSON(w, http.StatusOK, o)
		return nil
	})
	s.handle("POST "+base, func(w http.ResponseWriter, c *call) error { return s.putPlain(w, c, k, "") })
	if k.replaceable {
		s.handle("PUT "+base+"/{id}", func(w http.ResponseWriter, c *call) error { return s.putPlain(w, c, k, c.r.PathValue("id")) })
	}
	s.handle("DELETE "+base+"/{id}", func(w http.ResponseWriter, c *call) error {
		if !k.write(c.caller) {
			return forbidden(k.writers + " only")
		}
		id := c.r.PathValue("id")
		return s.commit(w, c, func(tx *store.Tx) (result, error) {
			r, err := tx.Get(k.kind, id)
			if err != nil {
				return result{}, err
			}
			if err := ifMatch(c, r.Version); err != nil {
				return result{}, err
			}
			if k.inUse != nil {
				if err := k.inUse(tx, id); err != nil {
					return result{}, err
				}
			}
			before, err := k.show(r)
			if err != nil {
				return result{}, err
			}
			if err := tx.Delete(k.kind, id); err != nil {
				return result{}, err
			}
			return result{status: http.StatusNoContent}, s.audit(tx, c, "delete", k.kind, id, before, nil)
		})
	})
}

// putPlain creates (id "") or replaces a record of a plain kind.
func (s *Server) putPlain(w http.ResponseWriter, c *call, k *plainKind, id string) error {
	if !k.write(c.caller) {
		return forbidden(k.writers + " only")
	}
	in, err := parseInput(c.body)
	if err != nil {
		return err
	}
	in.drop("createdAt", "updatedAt")
	m := k.newMsg()
	if err := in.into(m); err != nil {
		return err
	}
	if id != "" && k.idOf(m) != id {
		return invalid(fmt.Sprintf("the %s's name cannot change (the body names %q)", k.noun, k.idOf(m)))
	}
	if err := s.validate("the "+k.noun, k.bundle(m)); err != nil {
		return err
	}
	return s.commit(w, c, func(tx *store.Tx) (result, error) {
		rec := store.Record{Kind: k.kind, ID: k.idOf(m)}
		var before object
		status := http.StatusCreated
		if id != "" {
			cur, err := tx.Get(k.kind, id)
			if err != nil {
				return result{}, err
			}
			if err := ifMatch(c, cur.Version); err != nil {
				return result{}, err
			}
			if before, err = k.show(cur); err != nil {
				return result{}, err
			}
			rec.Version, status = cur.Version, http.StatusOK
		}
		rec, after, err := s.writeRecord(tx, c, rec, m, store.Meta{}, before, k.show)
		return result{status: status, body: after, etag: rec.Version}, err
	})
}

// policyInUse refuses to delete a policy that an API, application or
// subscription names: replicas would hold them back.
func policyInUse(tx *store.Tx, name string) error {
	check := func(kind store.Kind, uses func(store.Record) (bool, error)) error {
		recs, _, err := tx.List(kind, store.Filter{})
		if err != nil {
			return err
		}
		for _, r := range recs {
			used, err := uses(r)
			if err != nil {
				return err
			}
			if used {
				return conflict(fmt.Sprintf("policy %q is used by %s %q", name, kind, r.ID))
			}
		}
		return nil
	}
	if err := check(store.KindAPI, func(r store.Record) (bool, error) {
		a, meta, err := decodeSpec(r, &tollgatev1.Api{})
		if err != nil {
			return false, err
		}
		used := a.GetRateLimit() == name || a.GetAnonymousRateLimit() == name || slices.Contains(meta.Tiers, name)
		for _, op := range a.GetOperations() {
			used = used || op.GetRateLimit() == name
		}
		return used, nil
	}); err != nil {
		return err
	}
	if err := check(store.KindApplication, func(r store.Record) (bool, error) {
		a, _, err := decodeSpec(r, &tollgatev1.Application{})
		return err == nil && a.GetRateLimit() == name, err
	}); err != nil {
		return err
	}
	return check(store.KindSubscription, func(r store.Record) (bool, error) {
		sub, _, err := decodeSpec(r, &tollgatev1.Subscription{})
		return err == nil && sub.GetRateLimit() == name, err
	})
}

// auditObject is an audit entry as the API shows it.
func auditObject(e store.AuditEntry) object {
	o := object{"seq": e.Seq, "at": e.At, "actor": e.Actor, "role": e.Role, "action": e.Action, "kind": e.Kind, "object": e.Object}
	for name, v := range map[string]string{"before": e.Before, "after": e.After} {
		if v != "" {
			o[name] = json.RawMessage(v)
		}
	}
	return o
}

func (s *Server) listAudit(w http.ResponseWriter, c *call) error {
	if !c.caller.admin() {
		return forbidden("admins only")
	}
	offset, limit, err := paging(c)
	if err != nil {
		return err
	}
	q := c.r.URL.Query()
	entries, total, err := s.st.AuditList(c.r.Context(), store.AuditFilter{Kind: store.Kind(q.Get("kind")), Object: q.Get("object"),
		Actor: q.Get("actor"), Offset: offset, Limit: limit})
	if err != nil {
		return err
	}
	p := page{Items: make([]any, 0, len(entries)), Total: total, Offset: offset, Limit: limit}
	for _, e := range entries {
		p.Items = append(p.Items, auditObject(e))
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (s *Server) me(w http.ResponseWriter, c *call) error {
	writeJSON(w, http.StatusOK, object{"name": c.caller.Name, "role": c.caller.Role})
	return nil
}

func (s *Server) routes() {
	// Anything else under /api/v1 gets the one error shape too.
	s.mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		// The path is not echoed: it may hold what was never meant for it.
		writeError(w, notFound("no such route in the admin API; see /api/v1/openapi.json"))
	})
	s.mux.HandleFunc("GET /api/v1/openapi.json", serveOpenAPI)
	s.handle("GET /api/v1/me", s.me)
	s.handle("GET /api/v1/apis", s.listAPIs)
	s.handle("POST /api/v1/apis", s.createAPI)
	s.handle("GET /api/v1/apis/{id}", s.getAPI)
	s.handle("PUT /api/v1/apis/{id}", s.changeAPI(true))
	s.handle("PATCH /api/v1/apis/{id}", s.changeAPI(false))
	s.handle("DELETE /api/v1/apis/{id}", s.deleteAPI)
	s.handle("GET /api/v1/apis/{id}/openapi", s.getAPIDocument)
	s.handleLimited("POST /api/v1/apis/import", s.o.MaxImportBytes, s.importOpenAPI)

	s.handle("GET /api/v1/applications", s.listApplications)
	s.handle("POST /api/v1/applications", s.createApplication)
	s.handle("GET /api/v1/applications/{id}", s.getApplication)
	s.handle("PUT /api/v1/applications/{id}", s.changeApplication(true))
	s.handle("PATCH /api/v1/applications/{id}", s.changeApplication(false))
	s.handle("DELETE /api/v1/applications/{id}", s.deleteApplication)
	s.handle("POST /api/v1/applications/{id}/block", s.blockApplication(true))
	s.handle("POST /api/v1/applications/{id}/unblock", s.blockApplication(false))
	s.handle("GET /api/v1/applications/{id}/keys", s.listKeys)
	s.handle("POST /api/v1/applications/{id}/keys", s.createKey)
	s.handle("GET /api/v1/applications/{id}/keys/{keyId}", s.getKey)
	s.handle("DELETE /api/v1/applications/{id}/keys/{keyId}", s.deleteKey)
	s.handle("POST /api/v1/applications/{id}/keys/{keyId}/regenerate", s.regenerateKey)
	s.handle("POST /api/v1/applications/{id}/keys/{keyId}/revoke", s.revokeKey)

	s.handle("GET /api/v1/subscriptions", s.listSubscriptions)
	s.handle("POST /api/v1/subscriptions", s.createSubscription)
	s.handle("GET /api/v1/subscriptions/{application}/{api}", s.getSubscription)
	s.handle("PATCH /api/v1/subscriptions/{application}/{api}", s.changeSubscription)
	s.handle("DELETE /api/v1/subscriptions/{application}/{api}", s.deleteSubscription)
	s.handle("POST /api/v1/subscriptions/{application}/{api}/approve", s.approveSubscription)

	s.plainRoutes("/api/v1/policies", kindPolicy)
	s.plainRoutes("/api/v1/issuers", kindIssuer)
	s.plainRoutes("/api/v1/revoked-tokens", kindRevokedToken)
	s.handle("GET /api/v1/audit", s.listAudit)
	s.handle("GET /api/v1/usage", s.getUsage)
	s.handle("GET /api/v1/export", s.export)
	s.handleLimited("POST /api/v1/import", s.o.MaxTransferBytes, s.importResources)
}
