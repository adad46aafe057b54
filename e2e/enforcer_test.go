package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
)

const (
	keyMobile  = "tgk_e2e_mobile_key"
	keyPartner = "tgk_e2e_partner_key" // subscription blocked
	keyNoSub   = "tgk_e2e_nosub_key"
	keyRO      = "tgk_e2e_readonly_key"
)

// petstoreAPI is the API-key API most tests call, as an item of apis.
const petstoreAPI = `
  - id: petstore-v1
    name: PetStore
    basePath: /petstore/v1
    security: [apiKey]
    apiKey: {header: apikey, query: apikey}
    operations:
      - {path: /pets, methods: [GET]}
      - {path: "/pets/{id}", methods: [GET]}
      - {path: "/pets/{id}", methods: [DELETE], scopes: ["pets:write"]}
      - {path: /health, methods: [GET], security: [none]}
`

var petstoreConfig = `
clientIp: {header: x-real-ip, trustedProxies: [127.0.0.1]}
apis:` + petstoreAPI + `applications:
  - {id: mobile, name: Mobile app, owner: alice}
  - {id: partner, name: Partner}
  - {id: nosub, name: Nobody}
subscriptions:
  - {application: mobile, api: petstore-v1, state: active}
  - {application: partner, api: petstore-v1, state: blocked}
apiKeys:
  - {application: mobile, name: ci, sha256: ` + sha(keyMobile) + `, scopes: ["pets:write"]}
  - {application: mobile, name: ro, sha256: ` + sha(keyRO) + `}
  - {application: partner, sha256: ` + sha(keyPartner) + `}
  - {application: nosub, sha256: ` + sha(keyNoSub) + `}
`

func check(method, path string, headers map[string]string, ext map[string]string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "10.0.0.5", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 51000}}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: method, Host: "api.example.com", Path: path, Headers: headers, Scheme: "https", Protocol: "HTTP/1.1",
		}},
		ContextExtensions: ext,
	}}
}

func TestGRPCFrontEnd(t *testing.T) {
	e := startEnforcer(t, petstoreConfig)
	client := e.AuthClient()
	ctx := context.Background()

	cases := []struct {
		name     string
		req      *authv3.CheckRequest
		grpcCode int32
		httpCode int
		code     string
	}{
		{"allow", check("GET", "/petstore/v1/pets", map[string]string{"apikey": keyMobile}, nil), 0, 200, ""},
		{"allow by query", check("GET", "/petstore/v1/pets/1?apikey="+keyMobile, nil, nil), 0, 200, ""},
		{"allow named by route", check("GET", "/rewritten", map[string]string{"apikey": keyMobile},
			map[string]string{"api": "petstore-v1", "operation": "/pets"}), 0, 200, ""},
		{"public", check("GET", "/petstore/v1/health", nil, nil), 0, 200, ""},
		{"missing", check("GET", "/petstore/v1/pets", nil, nil), 16, 401, "900902"},
		{"invalid", check("GET", "/petstore/v1/pets", map[string]string{"apikey": "tgk_wrong"}, nil), 16, 401, "900901"},
		{"blocked", check("GET", "/petstore/v1/pets", map[string]string{"apikey": keyPartner}, nil), 16, 401, "900907"},
		{"not subscribed", check("GET", "/petstore/v1/pets", map[string]string{"apikey": keyNoSub}, nil), 7, 403, "900908"},
		{"scope", check("DELETE", "/petstore/v1/pets/1", map[string]string{"apikey": keyRO}, nil), 7, 403, "900910"},
		{"unmatched", check("GET", "/other", map[string]string{"apikey": keyMobile}, nil), 5, 404, "404"},
		{"unknown route API", check("GET", "/petstore/v1/pets", map[string]string{"apikey": keyMobile},
			map[string]string{"api": "nope"}), 5, 404, "404"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := client.Check(ctx, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetStatus().GetCode() != tc.grpcCode {
				t.Fatalf("grpc status %d, want %d (%v)", resp.GetStatus().GetCode(), tc.grpcCode, resp)
			}
			if tc.httpCode == 200 {
				if resp.GetOkResponse() == nil {
					t.Fatalf("no ok response: %v", resp)
				}
				return
			}
			den := resp.GetDeniedResponse()
			if int(den.GetStatus().GetCode()) != tc.httpCode {
				t.Fatalf("http status %d, want %d", den.GetStatus().GetCode(), tc.httpCode)
			}
			var body map[string]string
			if err := json.Unmarshal([]byte(den.GetBody()), &body); err != nil || body["code"] != tc.code {
				t.Fatalf("body %q, want code %s", den.GetBody(), tc.code)
			}
		})
	}

	// The allow carries the identity headers and strips the credential and spoofed identity.
	resp, err := client.Check(ctx, check("GET", "/petstore/v1/pets?apikey="+keyMobile,
		map[string]string{"x-consumer-id": "eve", "x-consumer-groups": "admins"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	ok := resp.GetOkResponse()
	got := map[string]string{}
	for _, h := range ok.GetHeaders() {
		got[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	if got["x-consumer-id"] != "mobile" || got["x-authenticated-userid"] != "alice" || got["x-credential-type"] != "apiKey" {
		t.Errorf("identity headers = %v", got)
	}
	removed := ok.GetHeadersToRemove()
	if strings.Join(ok.GetQueryParametersToRemove(), ",") != "apikey" || !slices.Contains(removed, "x-consumer-groups") ||
		!slices.Contains(removed, "x-http-method-override") || slices.Contains(removed, "x-consumer-id") {
		t.Errorf("removals: query %v headers %v", ok.GetQueryParametersToRemove(), removed)
	}
	if md := resp.GetDynamicMetadata().GetFields(); md["api"].GetStringValue() != "petstore-v1" || md["application"].GetStringValue() != "mobile" {
		t.Errorf("dynamic metadata = %v", resp.GetDynamicMetadata())
	}

	// Health and reflection.
	conn := e.Dial()
	for _, svc := range []string{"", "envoy.service.auth.v3.Authorization"} {
		h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health(%q) = %v, %v", svc, h, err)
		}
	}
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	list, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var services []string
	for _, s := range list.GetListServicesResponse().GetService() {
		services = append(services, s.GetName())
	}
	if !strings.Contains(strings.Join(services, " "), "envoy.service.auth.v3.Authorization") {
		t.Errorf("reflection lists %v", services)
	}
	_ = stream.CloseSend()

	// Metrics saw it all, labelled by API and code.
	if v := e.Metric("tollgate_decisions_total", "api", "petstore-v1", "decision", "allow", "code", "200"); v < 5 {
		t.Errorf("allow count = %v, want >= 5", v)
	}
	if v := e.Metric("tollgate_decisions_total", "api", "petstore-v1", "decision", "deny", "code", "900907"); v != 1 {
		t.Errorf("900907 count = %v, want 1", v)
	}
	if v := e.Metric("tollgate_decisions_total", "api", "", "code", "404"); v != 2 {
		t.Errorf("unmatched count = %v, want 2", v)
	}
	if v := e.Metric("tollgate_decision_duration_seconds", "frontend", "grpc"); v < 12 {
		t.Errorf("grpc duration samples = %v", v)
	}
	if v := e.Metric("grpc_server_handled_total", "grpc_method", "Check", "grpc_code", "OK"); v < 12 {
		t.Errorf("grpc_server_handled_total = %v", v)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "tollgate_config_reloads_total"} {
		if e.Metric(name) < 0 {
			t.Errorf("metric %s missing", name)
		}
	}
	// The keys never reach the log, even at debug level.
	for _, k := range []string{keyMobile, keyRO, keyPartner, keyNoSub} {
		if strings.Contains(e.Logs(), k) {
			t.Fatalf("the log contains API key %q", k)
		}
	}
	if !e.hasLog("decision", "api", "petstore-v1", "code", "900910") {
		t.Error("no debug decision line for the scope denial")
	}
}

func TestHTTPFrontEndEnvoyShape(t *testing.T) {
	e := startEnforcer(t, petstoreConfig)
	do := func(method, path string, headers map[string]string) *http.Response {
		req, _ := http.NewRequest(method, e.HTTPURL()+path, nil)
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}

	resp := do("GET", "/petstore/v1/pets/3", map[string]string{"apikey": keyMobile, "X-Authenticated-Userid": "eve"})
	if resp.StatusCode != 200 || resp.Header.Get("X-Consumer-Id") != "mobile" || resp.Header.Get("X-Authenticated-Userid") != "alice" {
		t.Fatalf("allow: %d %v", resp.StatusCode, resp.Header)
	}
	// Listed whether sent or not: Envoy's http_service shows Tollgate only
	// some headers, and a copy Tollgate never saw must not pass either.
	removed := strings.Split(resp.Header.Get("X-Envoy-Auth-Headers-To-Remove"), ",")
	for _, want := range []string{"apikey", "x-http-method-override", "x-http-method", "x-method-override"} {
		if !slices.Contains(removed, want) {
			t.Errorf("x-envoy-auth-headers-to-remove = %q lacks %s", removed, want)
		}
	}
	if slices.Contains(removed, "x-authenticated-userid") {
		t.Errorf("x-envoy-auth-headers-to-remove = %q removes a header Tollgate sets", removed)
	}

	resp = do("DELETE", "/petstore/v1/pets/3", map[string]string{"apikey": keyRO})
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 403 || resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(string(body), `"code":"900910"`) {
		t.Fatalf("deny: %d %s", resp.StatusCode, body)
	}
	resp = do("GET", "/petstore/v1/pets", nil)
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "APIKey") {
		t.Fatalf("missing key: %d %v", resp.StatusCode, resp.Header)
	}
	if v := e.Metric("tollgate_decision_duration_seconds", "frontend", "http"); v != 3 {
		t.Errorf("http duration samples = %v, want 3", v)
	}
}

func TestAdminEndpoints(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   string
		codes map[string]int
	}{
		{"default", petstoreConfig, map[string]int{
			"/healthz": 200, "/readyz": 200, "/metrics": 200, "/.well-known/jwks.json": 200,
			"/nope": 404, "/debug/pprof/": 404, "/debug/pprof/heap": 404,
		}},
		{"pprof on", petstoreConfig + "admin: {pprof: true}\n", map[string]int{
			"/metrics": 200, "/debug/pprof/": 200, "/debug/pprof/heap": 200, "/debug/pprof/goroutine?debug=1": 200,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnforcer(t, tc.cfg)
			for path, want := range tc.codes {
				resp, err := http.Get(e.AdminURL() + path)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != want {
					t.Errorf("GET %s = %d, want %d", path, resp.StatusCode, want)
				}
			}
		})
	}
}
