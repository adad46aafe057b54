package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestExtProcOnTheGRPCPort: the replica serves Envoy's External Processing
// API beside ext_authz, through the server's codec, calling the
// operation's interceptor from the config file, and exports its metrics.
func TestExtProcOnTheGRPCPort(t *testing.T) {
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/handle-request" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, `{"headersToAdd": {"x-intercepted": "yes"}}`)
	}))
	defer svc.Close()
	r := start(t, listenAny+`apis:
  - id: shop
    basePath: /shop
    security: [none]
    operations:
      - path: /items
        policies: {interceptors: {request: {url: "`+svc.URL+`"}}}
`)
	poll(t, "ready", func() bool { return get(t, "http://"+r.addr("admin")+"/readyz") == 200 })
	conn, err := grpc.NewClient(r.addr("grpc"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := extprocv3.NewExternalProcessorClient(conn).Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	headers := &corev3.HeaderMap{}
	for _, kv := range [][2]string{{":method", "GET"}, {":path", "/shop/items"}, {":authority", "api.example"}} {
		headers.Headers = append(headers.Headers, &corev3.HeaderValue{Key: kv[0], RawValue: []byte(kv[1])})
	}
	if err := stream.Send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: headers, EndOfStream: true}}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	set := resp.GetRequestHeaders().GetResponse().GetHeaderMutation().GetSetHeaders()
	if len(set) != 1 || set[0].GetHeader().GetKey() != "x-intercepted" || string(set[0].GetHeader().GetRawValue()) != "yes" {
		t.Fatalf("answer %v: want x-intercepted added", resp)
	}
	res, err := http.Get("http://" + r.addr("admin") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if !strings.Contains(string(body), `tollgate_interceptor_calls_total{api="shop",flow="request",result="ok"} 1`) {
		t.Error("the interceptor call is not in /metrics")
	}
}
