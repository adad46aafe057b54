package controlplane

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	"google.golang.org/genproto/googleapis/rpc/status"

	"github.com/tollgate/tollgate/internal/admin"
	tgconfig "github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/resources"
)

// fixedSource reports a given status.
type fixedSource sourceStatus

func (fixedSource) watch(context.Context)  {}
func (f fixedSource) status() sourceStatus { return sourceStatus(f) }

// TestReplicasAndStatusMatchTheDocument holds the control plane's own
// routes of /api/v1 to the admin API's OpenAPI document (the admin
// package checks the rest), with and without the admin API in front.
func TestReplicasAndStatusMatchTheDocument(t *testing.T) {
	doc, err := libopenapi.NewDocument(admin.OpenAPIDocument())
	if err != nil {
		t.Fatal(err)
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatal(err)
	}
	v, errs := validator.NewValidator(doc, config.WithFormatAssertions())
	if len(errs) > 0 {
		t.Fatal(errs)
	}

	// Replicas in every state the listing shows, by its callbacks: one
	// that accepted a response, refused another and has a third pending,
	// and one that has not said who it is yet.
	now := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	reps := newReplicas(newMetrics(), func() time.Time { return now })
	ctx := context.Background()
	_ = reps.OnDeltaStreamOpen(ctx, 1, resources.ApiKey)
	_ = reps.OnStreamDeltaRequest(1, &discovery.DeltaDiscoveryRequest{Node: nodeOf("replica-1"), TypeUrl: resources.ApiKey})
	for i, answer := range []*discovery.DeltaDiscoveryRequest{
		{TypeUrl: resources.ApiKey},
		{TypeUrl: resources.Api, ErrorDetail: &status.Status{Code: 3, Message: "operations[0].path: must start with /"}},
		nil,
	} {
		typ := resources.ApiKey
		if i > 0 {
			typ = resources.Api
		}
		nonce := fmt.Sprint("n", i)
		reps.OnStreamDeltaResponse(1, nil, &discovery.DeltaDiscoveryResponse{Nonce: nonce, TypeUrl: typ, SystemVersionInfo: fmt.Sprint("v", i)})
		if answer != nil {
			answer.ResponseNonce = nonce
			_ = reps.OnStreamDeltaRequest(1, answer)
		}
	}
	_ = reps.OnDeltaStreamOpen(ctx, 2, resources.ApiKey)

	hash := func(s string) string { sum := sha256.Sum256([]byte(s)); return hex.EncodeToString(sum[:]) }
	auth, err := admin.NewAuthenticator(ctx, tgconfig.AdminAuth{Tokens: []tgconfig.AdminToken{
		{Name: "pub", SHA256: hash("pub-token"), Role: tgconfig.RolePublisher},
		{Name: "dev", SHA256: hash("dev-token"), Role: tgconfig.RoleDeveloper},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	planes := []struct {
		name  string
		src   fixedSource
		admin *adminAPI
	}{
		{"store", fixedSource{Source: "sqlite", Changes: 3, LastChange: now, Resources: map[string]int{"Api": 2, "ApiKey": 1}}, admin.New(admin.Options{Auth: auth})},
		{"file", fixedSource{Source: "resources.yaml", LastError: "resources.yaml is not valid (1 problem(s), logged)", Resources: map[string]int{}}, nil},
	}
	for _, p := range planes {
		t.Run(p.name, func(t *testing.T) {
			var ready atomic.Bool
			mux := apiMux(newMetrics(), reps, p.src, p.admin, nil, &ready)
			for path, item := range model.Model.Paths.PathItems.FromOldest() {
				for method, op := range item.GetOperations().FromOldest() {
					pattern := strings.ToUpper(method) + " " + path
					if !slices.Contains(op.Tags, "Control plane") {
						continue
					}
					if _, served := mux.Handler(httptest.NewRequest(strings.ToUpper(method), path, nil)); served != pattern {
						t.Errorf("documented %s, served by %q", pattern, served)
					}
				}
			}
			srv := httptest.NewServer(mux)
			defer srv.Close()
			type call struct {
				path, token string
				want        int
			}
			calls := []call{{"/api/v1/replicas", "pub-token", 200}, {"/api/v1/status", "pub-token", 200}}
			if p.admin != nil {
				calls = append(calls, call{"/api/v1/replicas", "", 401}, call{"/api/v1/status", "dev-token", 403})
			}
			for _, c := range calls {
				req, _ := http.NewRequest("GET", srv.URL+c.path, nil)
				if c.token != "" {
					req.Header.Set("Authorization", "Bearer "+c.token)
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != c.want {
					t.Fatalf("GET %s: %d, want %d: %s", c.path, res.StatusCode, c.want, body)
				}
				res.Body = io.NopCloser(bytes.NewReader(body))
				if ok, errs := v.ValidateHttpResponse(req, res); !ok {
					for _, e := range errs {
						t.Errorf("GET %s -> %d: %s: %s %v", c.path, res.StatusCode, e.Message, e.Reason, e.SchemaValidationErrors)
					}
					t.Logf("body: %s", body)
				}
			}
		})
	}
}
