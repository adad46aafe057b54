package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestExtProcInterceptors: the binary's gRPC port, driven as Envoy drives
// it — ext_authz's Check first, then one ext_proc stream carrying the
// Check's dynamic metadata (forwarding_namespaces) — calls the operation's
// request and response interceptors from the config file, hands the
// request flow's interceptorContext to the response flow, and removes the
// header a removeHeader response policy names.
func TestExtProcInterceptors(t *testing.T) {
	var mu sync.Mutex
	var responseCall map[string]any
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var call map[string]any
		if err := json.NewDecoder(r.Body).Decode(&call); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		switch r.URL.Path {
		case "/api/v1/handle-request":
			io.WriteString(w, `{"headersToAdd": {"x-intercepted": "yes"}, "interceptorContext": {"order": "o-1"}}`)
		case "/api/v1/handle-response":
			mu.Lock()
			responseCall = call
			mu.Unlock()
			io.WriteString(w, `{"headersToReplace": {"x-served-by": "interceptor"}}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer svc.Close()
	e := startEnforcer(t, `
apis:
  - id: shop
    name: Shop
    basePath: /shop
    security: [none]
    operations:
      - path: /orders
        methods: [POST]
        policies:
          response: [{removeHeader: {name: x-internal}}]
          interceptors:
            request: {url: "`+svc.URL+`"}
            response: {url: "`+svc.URL+`", includes: [responseHeaders]}
`)
	ctx := context.Background()
	checked, err := e.AuthClient().Check(ctx, check("POST", "/shop/orders", nil, nil))
	if err != nil || checked.GetOkResponse() == nil {
		t.Fatalf("Check: %v %v", checked, err)
	}
	md := checked.GetDynamicMetadata()
	if md.GetFields()["api"].GetStringValue() != "shop" {
		t.Fatalf("Check metadata %v: no api", md)
	}

	stream, err := extprocv3.NewExternalProcessorClient(e.Dial()).Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	send := func(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		t.Helper()
		req.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"envoy.filters.http.ext_authz": md}}
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	headers := func(kv ...string) *extprocv3.HttpHeaders {
		h := &corev3.HeaderMap{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Headers = append(h.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
		}
		return &extprocv3.HttpHeaders{Headers: h, EndOfStream: true}
	}
	// The path as a rewritePath policy might have left it: the operation
	// comes from ext_authz's metadata.
	r := send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: headers(":method", "POST", ":path", "/v2/orders", ":authority", "api.example.com", ":scheme", "https")}})
	set := r.GetRequestHeaders().GetResponse().GetHeaderMutation().GetSetHeaders()
	if len(set) != 1 || set[0].GetHeader().GetKey() != "x-intercepted" {
		t.Fatalf("request headers answer %v: want x-intercepted added", r)
	}
	r = send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: headers(":status", "200", "x-internal", "secret", "x-served-by", "backend")}})
	m := r.GetResponseHeaders().GetResponse().GetHeaderMutation()
	if len(m.GetRemoveHeaders()) != 1 || m.GetRemoveHeaders()[0] != "x-internal" ||
		len(m.GetSetHeaders()) != 1 || string(m.GetSetHeaders()[0].GetHeader().GetRawValue()) != "interceptor" {
		t.Fatalf("response headers mutation %v", m)
	}
	mu.Lock()
	ictx, _ := responseCall["interceptorContext"].(map[string]any)
	mu.Unlock()
	if ictx["order"] != "o-1" {
		t.Errorf("the response interceptor got interceptorContext %v, want the request flow's", ictx)
	}
	if v := e.Metric("tollgate_interceptor_calls_total", "api", "shop", "flow", "response", "result", "ok"); v != 1 {
		t.Errorf("response calls counted %v, want 1", v)
	}
	waitFor(t, "the debug log of the call", 5*time.Second, func() bool { return e.hasLog("interceptor call", "api", "shop", "flow", "request") })
}
