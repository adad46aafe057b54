package authz_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/internal/analytics"
	"github.com/tollgate/tollgate/internal/authz"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/model"
	"github.com/tollgate/tollgate/internal/observe"
)

// BenchmarkCheckPolicies is BenchmarkCheck's allowed API-key Check, the
// response marshalled as gRPC would, without policies and with three
// request policies (set a header, rename one, rewrite the path with the
// template's variable) and one CEL rule (README, "Performance": the
// target is at most 1.15× the CPU without).
func BenchmarkCheckPolicies(b *testing.B) {
	const key = "tgk_bench_key"
	sum := sha256.Sum256([]byte(key))
	// One config for both: the Checks differ only in the operation they
	// reach, so that both run against the same compiled model.
	doc := `
apis:
  - id: petstore
    basePath: /petstore/v1
    security: [apiKey]
    operations:
      - {path: /pets, methods: [GET]}
      - {path: "/pets/{id}", methods: [GET, DELETE]}
  - id: mediated
    basePath: /mediated/v1
    security: [apiKey]
    operations:
      - path: "/pets/{id}"
        methods: [GET, DELETE]
        policies:
          request:
            - {setHeader: {name: x-env, value: prod}}
            - {renameHeader: {from: x-old, to: x-new}}
            - {rewritePath: "/v2/pets/{id}"}
          rules:
            - {expr: "request.method != 'DELETE' || 'admin' in identity.scopes"}
applications: [{id: mobile, name: Mobile app, owner: alice}]
subscriptions: [{application: mobile, api: petstore, state: active}, {application: mobile, api: mediated, state: active}]
apiKeys: [{application: mobile, sha256: ` + hex.EncodeToString(sum[:]) + `}]
`
	snap, err := config.Compile([]byte(doc), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct{ name, base string }{{"without", "/petstore/v1"}, {"with-3-policies-1-rule", "/mediated/v1"}} {
		b.Run(tc.name, func(b *testing.B) {
			engine := authz.NewEngine(authz.Options{Config: model.NewStore(snap.Snapshot), Metrics: observe.Decisions(analytics.Recorder{Metrics: analytics.NewMetrics()})})
			s := authz.NewGRPCServer(engine)
			in := benchCheckRequest(tc.base+"/pets/42", map[string]string{"apikey": key, "x-old": "legacy"})
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
				if resp.GetOkResponse() == nil {
					b.Fatalf("denied: %s", resp.GetDeniedResponse().GetBody())
				}
				if _, err := proto.Marshal(resp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
