package authz_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/internal/analytics"
	"github.com/tollgate/tollgate/internal/authz"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/model"
	"github.com/tollgate/tollgate/internal/observe"
)

// BenchmarkCheck measures the gRPC front end's whole Check handler as the
// server runs it, metrics included: reading the CheckRequest from its
// wire form, the decision, building the CheckResponse, recording it. Only
// the gRPC transport and the response's marshalling are left out.
func BenchmarkCheck(b *testing.B) {
	const key = "tgk_bench_key"
	sum := sha256.Sum256([]byte(key))
	snap, err := config.Compile([]byte(`
apis:
  - id: petstore
    basePath: /petstore/v1
    security: [apiKey]
    operations:
      - {path: /pets, methods: [GET]}
      - {path: "/pets/{id}", methods: [GET, DELETE]}
applications: [{id: mobile, name: Mobile app, owner: alice}]
subscriptions: [{application: mobile, api: petstore, state: active}]
apiKeys: [{application: mobile, sha256: `+hex.EncodeToString(sum[:])+`}]
`), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name    string
		key     string
		allowed bool
	}{
		{"apikey-allow", key, true},
		{"apikey-deny-unknown", "tgk_unknown_key", false},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			engine := authz.NewEngine(authz.Options{Config: model.NewStore(snap.Snapshot), Metrics: observe.Decisions(analytics.Recorder{Metrics: analytics.NewMetrics()})})
			s := authz.NewGRPCServer(engine)
			in := benchCheckRequest("/petstore/v1/pets/42", map[string]string{"apikey": tc.key})
			msg, err := proto.Marshal(in)
			if err != nil {
				b.Fatal(err)
			}
			var w authz.WireCheckRequest
			b.ReportAllocs()
			for b.Loop() {
				if err := w.Unmarshal(msg); err != nil {
					b.Fatal(err)
				}
				resp, _ := s.CheckWire(context.Background(), &w)
				if (resp.GetOkResponse() != nil) != tc.allowed {
					b.Fatal("unexpected decision")
				}
			}
		})
	}
}

// benchCheckRequest is the benchmarks' GET of path as the edge Envoy
// sends it, with headers besides the usual ones.
func benchCheckRequest(path string, headers map[string]string) *authv3.CheckRequest {
	h := map[string]string{
		":authority": "api.example.com", ":method": "GET", ":path": path,
		"accept": "application/json", "user-agent": "curl/8.5.0",
		"x-request-id": "5b8f6a1e-94b6-4b8e-9d7c-0e8d1f2a3b4c", "x-forwarded-proto": "https",
	}
	for k, v := range headers {
		h[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "10.1.2.3"}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Host: "api.example.com", Path: path, Headers: h,
		}},
	}}
}
