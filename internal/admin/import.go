package admin

import (
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/tollgate/tollgate/internal/openapi"
	"github.com/tollgate/tollgate/internal/store"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// importOpenAPI is POST /apis/import: an OpenAPI 3.0, 3.1 or Swagger 2.0
// document becomes an API (created, or published with ?publish=true), or
// updates the API it names, and is stored to be served back. The answer
// says what changed and what the import could not represent exactly.
func (s *Server) importOpenAPI(w http.ResponseWriter, c *call) error {
	if !c.caller.publisher() {
		return forbidden("only admins and publishers import APIs")
	}
	q := c.r.URL.Query()
	publish := q.Get("publish") == "true"
	res, err := openapi.Import(c.body, openapi.Options{ID: q.Get("id"), MaxBytes: int(s.o.MaxImportBytes)})
	if err != nil {
		var de *openapi.DocumentError
		if !errors.As(err, &de) {
			return err
		}
		e := invalid("the document cannot be imported")
		for _, p := range de.Problems {
			e.Details = append(e.Details, Detail{Path: p.Path, Message: p.Message})
		}
		if de.Truncated > 0 {
			e.Details = append(e.Details, Detail{Message: fmt.Sprintf("%d more problems", de.Truncated)})
		}
		return e
	}
	spec := res.API
	meta := store.Meta{RequiresApproval: res.RequiresApproval, Description: res.Description}
	if len(meta.Description) > 4096 {
		meta.Description = meta.Description[:4096]
	}
	for _, t := range res.Tags {
		if validTag(t) && !slices.Contains(meta.Tags, t) && len(meta.Tags) < 32 {
			meta.Tags = append(meta.Tags, t)
		}
	}
	return s.commit(w, c, func(tx *store.Tx) (result, error) {
		var (
			rec     store.Record
			before  object
			changes []string
			status  = http.StatusCreated
		)
		cur, err := tx.Get(store.KindAPI, spec.GetId())
		switch {
		case errors.Is(err, store.ErrNotFound):
			rec = store.Record{Kind: store.KindAPI, ID: spec.GetId(), State: store.APICreated}
			if publish {
				rec.State = store.APIPublished
			}
		case err != nil:
			return result{}, err
		default:
			if err := ifMatch(c, cur.Version); err != nil {
				return result{}, err
			}
			if cur.State == store.APIRetired {
				return result{}, conflict(fmt.Sprintf("api %q is retired: import it under another id", cur.ID))
			}
			old, oldMeta, err := decodeSpec(cur, &tollgatev1.Api{})
			if err != nil {
				return result{}, err
			}
			// Tiers are the publisher's, not the document's; so are tags
			// when the document has none.
			meta.Tiers = oldMeta.Tiers
			if len(meta.Tags) == 0 {
				meta.Tags = oldMeta.Tags
			}
			keepPolicies(spec, old)
			if before, err = apiObject(cur); err != nil {
				return result{}, err
			}
			changes = openapi.Changes(old, spec)
			rec, status = cur, http.StatusOK
			if publish && rec.State == store.APICreated {
				rec.State = store.APIPublished
			}
		}
		if rec, err = s.putAPI(tx, c, rec, spec, meta, before); err != nil {
			return result{}, err
		}
		if err := tx.PutDocument(rec.ID, store.Document{SpecVersion: res.SpecVersion, Content: c.body}); err != nil {
			return result{}, err
		}
		o, err := apiObject(rec)
		if err != nil {
			return result{}, err
		}
		if changes == nil {
			changes = []string{}
		}
		warnings := res.Warnings
		if warnings == nil {
			warnings = []string{}
		}
		return result{status: status, etag: rec.Version, body: object{
			"api": o, "specVersion": res.SpecVersion, "created": status == http.StatusCreated, "changes": changes, "warnings": warnings,
		}}, nil
	})
}

// keepPolicies carries an API's policies and CORS settings over a
// re-import (an OpenAPI document has neither): the API's own, and each
// operation's, to the operation of the same path in the new document.
func keepPolicies(spec, old *tollgatev1.Api) {
	spec.Policies, spec.Cors = old.GetPolicies(), old.GetCors()
	for _, o := range spec.GetOperations() {
		for _, prev := range old.GetOperations() {
			if prev.GetPath() == o.GetPath() && prev.GetPolicies() != nil && slices.Equal(prev.GetMethods(), o.GetMethods()) {
				o.Policies = prev.GetPolicies()
			}
		}
	}
}
