package portal

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/tollgate/tollgate/internal/admin"
)

// backend is the admin API, called in-process as the signed-in user. The
// portal holds no rules of its own about who may see or change what: a
// developer's page shows what the admin API answers that developer, so
// both front ends stay one set of rules.
type backend struct {
	api http.Handler
}

// apiError is an admin API answer other than 2xx.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Details []struct {
		Path    string `json:"path"`
		Message string `json:"message"`
	} `json:"details"`
}

func (e *apiError) Error() string {
	msg := e.Message
	for i, d := range e.Details {
		if i == 3 {
			msg += fmt.Sprintf("; and %d more", len(e.Details)-i)
			break
		}
		if d.Path != "" {
			msg += "; " + d.Path + ": " + d.Message
		} else {
			msg += "; " + d.Message
		}
	}
	return msg
}

// anonymous is who browses the catalog without signing in: a developer
// without a name, which the admin API lets read the catalog and nothing
// it owns (no application has an empty owner). The portal only makes
// catalog reads for it.
var anonymous = admin.Caller{Role: "developer"}

// do calls the admin API and decodes a 2xx answer into out (if not nil).
func (b *backend) do(ctx context.Context, who admin.Caller, method, path string, query url.Values, body, out any) error {
	if who.Name == "" && (method != http.MethodGet || !strings.HasPrefix(path, "/apis")) {
		// The admin API reads an empty owner as "any": never let the
		// anonymous caller near anything owned.
		return &apiError{Status: http.StatusUnauthorized, Code: "unauthenticated", Message: "sign in first"}
	}
	var in []byte
	if body != nil {
		var err error
		if in, err = json.Marshal(body); err != nil {
			return err
		}
	}
	target := "/api/v1" + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	req := httptest.NewRequestWithContext(admin.AsCaller(ctx, who), method, target, bytes.NewReader(in))
	rec := httptest.NewRecorder()
	b.api.ServeHTTP(rec, req)
	if rec.Code < 200 || rec.Code > 299 {
		e := &apiError{Status: rec.Code}
		if json.Unmarshal(rec.Body.Bytes(), e) != nil || e.Message == "" {
			e.Message = http.StatusText(rec.Code)
		}
		return e
	}
	if out == nil || rec.Code == http.StatusNoContent {
		return nil
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = rec.Body.Bytes()
		return nil
	}
	return json.Unmarshal(rec.Body.Bytes(), out)
}

// The admin API's shapes that the portal reads.

type page[T any] struct {
	Items []T `json:"items"`
	Total int `json:"total"`
}

type apiOperation struct {
	Path     string   `json:"path"`
	Methods  []string `json:"methods"`
	Scopes   []string `json:"scopes"`
	Security []string `json:"security"`
}

type apiRecord struct {
	ID               string                         `json:"id"`
	Name             string                         `json:"name"`
	Version          string                         `json:"version"`
	BasePath         string                         `json:"basePath"`
	Hosts            []string                       `json:"hosts"`
	Security         []string                       `json:"security"`
	APIKey           struct{ Header, Query string } `json:"apiKey"`
	Operations       []apiOperation                 `json:"operations"`
	State            string                         `json:"state"`
	RequiresApproval bool                           `json:"requiresApproval"`
	Description      string                         `json:"description"`
	Tags             []string                       `json:"tags"`
	Tiers            []string                       `json:"tiers"`
	UpdatedAt        string                         `json:"updatedAt"`
}

func (a apiRecord) title() string {
	if a.Name != "" {
		return a.Name
	}
	return a.ID
}

type applicationRecord struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Owner     string `json:"owner"`
	Tier      string `json:"tier"`
	Blocked   bool   `json:"blocked"`
	CreatedAt string `json:"createdAt"`
}

type subscriptionRecord struct {
	ID          string `json:"id"`
	Application string `json:"application"`
	API         string `json:"api"`
	Tier        string `json:"tier"`
	State       string `json:"state"`
	CreatedAt   string `json:"createdAt"`
}

type keyRecord struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Prefix     string `json:"prefix"`
	State      string `json:"state"`
	CreatedAt  string `json:"createdAt"`
	ExpiresAt  string `json:"expiresAt"`
	ReplacedBy string `json:"replacedBy"`
}

type newKey struct {
	keyRecord
	Key string `json:"key"`
}

type policyRecord struct {
	Name   string `json:"name"`
	Limits []struct {
		Requests json.Number `json:"requests"`
		Per      string      `json:"per"`
		Burst    json.Number `json:"burst"`
	} `json:"limits"`
}
