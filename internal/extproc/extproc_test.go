package extproc_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate/tollgate/internal/authz"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/extproc"
	"github.com/tollgate/tollgate/internal/model"
)

// interceptor is a test interceptor service: Choreo Connect's contract over
// real HTTP, answering with what the test's answer function returns.
type interceptor struct {
	*httptest.Server
	mu    sync.Mutex
	calls []recorded
	// release unblocks handlers that wait for the test's end.
	release chan struct{}
}

type recorded struct {
	Path string
	Body map[string]any
}

// answerFunc answers one call: the HTTP status and the JSON body.
type answerFunc func(path string, call map[string]any) (int, string)

func newInterceptor(t testing.TB, answer answerFunc) *interceptor {
	t.Helper()
	ic := &interceptor{release: make(chan struct{})}
	ic.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		var call map[string]any
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(data, &call) != nil {
			http.Error(w, "not the contract", http.StatusBadRequest)
			return
		}
		ic.mu.Lock()
		ic.calls = append(ic.calls, recorded{r.URL.Path, call})
		ic.mu.Unlock()
		status, body := answer(r.URL.Path, call)
		if status < 0 { // block until the caller gives up or the test ends
			select {
			case <-r.Context().Done():
			case <-ic.release:
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(ic.Close)
	t.Cleanup(func() { close(ic.release) }) // runs before Close
	return ic
}

func (ic *interceptor) recorded() []recorded {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	return append([]recorded(nil), ic.calls...)
}

// configFor is a config with an API whose operations use the interceptor
// at url in every way the tests need.
func configFor(url string) string {
	return strings.ReplaceAll(`
apis:
  - id: shop
    name: Shop
    version: v2
    basePath: /shop
    hosts: [shop.example]
    security: [none]
    operations:
      - path: /items
        methods: [POST]
        policies:
          response: [{removeHeader: {name: x-internal}}]
          interceptors:
            request: {url: "URL", includes: [requestHeaders, requestBody, invocationContext]}
            response: {url: "URL", includes: [responseHeaders, responseBody, invocationContext]}
            timeout: 2s
            maxBodyBytes: 64
      - path: /headers
        methods: [GET]
        policies:
          interceptors:
            request: {url: "URL"}
            response: {url: "URL", includes: [responseHeaders]}
      - path: /slow
        methods: [GET]
        policies:
          interceptors: {request: {url: "URL"}, timeout: 50ms}
      - path: /slow-open
        methods: [GET]
        policies:
          interceptors: {request: {url: "URL"}, timeout: 50ms, failureMode: open}
      - path: /trailers
        methods: [POST]
        policies:
          interceptors:
            request: {url: "URL", includes: [requestHeaders, requestTrailers]}
      - path: /removal
        methods: [GET]
        policies:
          response: [{removeHeader: {name: x-internal}}, {setHeader: {name: x-set, value: "1"}}]
      - path: /plain
        methods: [GET]
`, "URL", url)
}

type fixture struct {
	client extprocv3.ExternalProcessorClient
	reg    *prometheus.Registry
}

// start serves the config on loopback gRPC with the enforcer's codec, as
// the replica does, and connects a client.
func start(t testing.TB, cfg string) *fixture {
	t.Helper()
	c, err := config.Compile([]byte(cfg), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	reg := prometheus.NewRegistry()
	srv := extproc.New(extproc.Options{Store: model.NewStore(c.Snapshot), Registerer: reg})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.ForceServerCodecV2(authz.Codec()))
	srv.Register(gs)
	go gs.Serve(l)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &fixture{client: extprocv3.NewExternalProcessorClient(conn), reg: reg}
}

// exchange is one Process stream, driven message by message.
type exchange struct {
	t      *testing.T
	stream extprocv3.ExternalProcessor_ProcessClient
}

func (f *fixture) open(t *testing.T) *exchange {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := f.client.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &exchange{t, s}
}

func (e *exchange) send(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	e.t.Helper()
	if err := e.stream.Send(req); err != nil {
		e.t.Fatal(err)
	}
	resp, err := e.stream.Recv()
	if err != nil {
		e.t.Fatalf("answer: %v", err)
	}
	return resp
}

func headerMap(eos bool, kv ...string) *extprocv3.HttpHeaders {
	h := &corev3.HeaderMap{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Headers = append(h.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return &extprocv3.HttpHeaders{Headers: h, EndOfStream: eos}
}

func requestHeaders(method, path string, eos bool, kv ...string) *extprocv3.ProcessingRequest {
	kv = append([]string{":method", method, ":path", path, ":authority", "shop.example", ":scheme", "https",
		"x-request-id", "req-1"}, kv...)
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: headerMap(eos, kv...)}}
}

func responseHeaders(status int, eos bool, kv ...string) *extprocv3.ProcessingRequest {
	kv = append([]string{":status", strconv.Itoa(status)}, kv...)
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: headerMap(eos, kv...)}}
}

func requestBody(b string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
		RequestBody: &extprocv3.HttpBody{Body: []byte(b), EndOfStream: true}}}
}

func responseBody(b string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
		ResponseBody: &extprocv3.HttpBody{Body: []byte(b), EndOfStream: true}}}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// mutation is a header mutation in a comparable form.
type mutation struct {
	set    map[string]string // name → value; appended values after a "+"
	remove []string
}

func mutationOf(m *extprocv3.HeaderMutation) mutation {
	out := mutation{set: map[string]string{}, remove: m.GetRemoveHeaders()}
	for _, h := range m.GetSetHeaders() {
		v := string(h.GetHeader().GetRawValue())
		if h.GetAppendAction() == corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD {
			v = "+" + v
		}
		out.set[h.GetHeader().GetKey()] = v
	}
	return out
}

func common(t *testing.T, r *extprocv3.ProcessingResponse) *extprocv3.CommonResponse {
	t.Helper()
	switch m := r.GetResponse().(type) {
	case *extprocv3.ProcessingResponse_RequestHeaders:
		return m.RequestHeaders.GetResponse()
	case *extprocv3.ProcessingResponse_ResponseHeaders:
		return m.ResponseHeaders.GetResponse()
	case *extprocv3.ProcessingResponse_RequestBody:
		return m.RequestBody.GetResponse()
	case *extprocv3.ProcessingResponse_ResponseBody:
		return m.ResponseBody.GetResponse()
	}
	t.Fatalf("not a headers or body answer: %v", r)
	return nil
}

// denial reads an ImmediateResponse carrying a Tollgate deny body.
func denial(t *testing.T, r *extprocv3.ProcessingResponse) (int, string) {
	t.Helper()
	im := r.GetImmediateResponse()
	if im == nil {
		t.Fatalf("want an immediate response, got %v", r)
	}
	var body struct{ Code, ErrorMessage, ErrorDescription string }
	if err := json.Unmarshal(im.GetBody(), &body); err != nil {
		t.Fatalf("deny body %q: %v", im.GetBody(), err)
	}
	if mutationOf(im.GetHeaders()).set["content-type"] != "application/json" {
		t.Errorf("deny without content-type application/json: %v", im.GetHeaders())
	}
	return int(im.GetStatus().GetCode()), body.Code
}

// TestRequestAndResponseFlows: a POST whose body both interceptors see and
// replace, its headers changed as the contract says, the request flow's
// interceptorContext handed to the response flow of the same stream, and
// the response policy's removal applied beside the interceptor's changes.
func TestRequestAndResponseFlows(t *testing.T) {
	ic := newInterceptor(t, func(path string, call map[string]any) (int, string) {
		if path == "/api/v1/handle-request" {
			return 200, `{"headersToAdd": {"X-Added": "a"}, "headersToReplace": {"x-replaced": "r"},
				"headersToRemove": ["x-removed", "x-envoy-skipped"], "body": "` + b64(`{"new":true}`) + `",
				"interceptorContext": {"user": "alice", "trace": "t-1"}}`
		}
		return 200, `{"responseCode": 201, "headersToAdd": {"x-resp": "1"}, "headersToRemove": ["server"],
			"body": "` + b64("replaced") + `"}`
	})
	f := start(t, configFor(ic.URL))
	e := f.open(t)

	// Request headers: the body is needed, so Envoy is asked to buffer it
	// and the headers wait.
	r := e.send(requestHeaders("POST", "/shop/items?q=1", false, "content-type", "application/json",
		"content-length", "11", "x-forwarded-for", "203.0.113.9", "x-removed", "gone"))
	if c := common(t, r); c.GetHeaderMutation() != nil || c.GetBodyMutation() != nil {
		t.Fatalf("headers answered with changes before the body came: %v", r)
	}
	mo := r.GetModeOverride()
	if mo.GetRequestBodyMode() != extprocfilterv3.ProcessingMode_BUFFERED ||
		mo.GetResponseHeaderMode() != extprocfilterv3.ProcessingMode_SEND ||
		mo.GetResponseBodyMode() != extprocfilterv3.ProcessingMode_BUFFERED {
		t.Fatalf("mode override %v: want buffered bodies and the response headers", mo)
	}
	if len(ic.recorded()) != 0 {
		t.Fatal("the interceptor was called before the body came")
	}

	r = e.send(requestBody(`{"old":1}`))
	c := common(t, r)
	got := mutationOf(c.GetHeaderMutation())
	want := map[string]string{"x-added": "+a", "x-replaced": "r", "content-length": "12"}
	for k, v := range want {
		if got.set[k] != v {
			t.Errorf("request header %s = %q, want %q (%v)", k, got.set[k], v, got.set)
		}
	}
	if len(got.remove) != 1 || got.remove[0] != "x-removed" {
		t.Errorf("request removals %v, want [x-removed] (x-envoy-* is skipped)", got.remove)
	}
	if b := c.GetBodyMutation().GetBody(); string(b) != `{"new":true}` {
		t.Errorf("request body %q", b)
	}
	if c.GetStatus() != extprocv3.CommonResponse_CONTINUE {
		t.Errorf("body answer status %v", c.GetStatus())
	}

	calls := ic.recorded()
	if len(calls) != 1 {
		t.Fatalf("%d calls, want 1", len(calls))
	}
	req := calls[0].Body
	hdrs, _ := req["requestHeaders"].(map[string]any)
	if hdrs[":path"] != "/shop/items?q=1" || hdrs["x-removed"] != "gone" {
		t.Errorf("requestHeaders %v", hdrs)
	}
	if req["requestBody"] != b64(`{"old":1}`) {
		t.Errorf("requestBody %v, want the base64 body", req["requestBody"])
	}
	inv, _ := req["invocationContext"].(map[string]any)
	wantInv := map[string]any{"requestId": "req-1", "scheme": "https", "apiName": "Shop", "apiVersion": "v2",
		"vhost": "shop.example", "basePath": "/shop", "supportedMethods": "POST", "method": "POST",
		"path": "/shop/items?q=1", "pathTemplate": "/items", "source": "203.0.113.9"}
	for k, v := range wantInv {
		if inv[k] != v {
			t.Errorf("invocationContext.%s = %v, want %v", k, inv[k], v)
		}
	}

	// Response headers: the policy's removal goes at once; the body is
	// awaited for the response interceptor.
	r = e.send(responseHeaders(200, false, "content-type", "text/plain", "x-internal", "secret", "server", "up"))
	if got := mutationOf(common(t, r).GetHeaderMutation()); len(got.remove) != 1 || got.remove[0] != "x-internal" {
		t.Errorf("response header removals %v, want [x-internal]", got.remove)
	}
	r = e.send(responseBody("upstream"))
	c = common(t, r)
	got = mutationOf(c.GetHeaderMutation())
	for k, v := range map[string]string{":status": "201", "x-resp": "+1", "content-length": "8"} {
		if got.set[k] != v {
			t.Errorf("response header %s = %q, want %q", k, got.set[k], v)
		}
	}
	if len(got.remove) != 1 || got.remove[0] != "server" {
		t.Errorf("response removals %v", got.remove)
	}
	if string(c.GetBodyMutation().GetBody()) != "replaced" {
		t.Errorf("response body %q", c.GetBodyMutation().GetBody())
	}

	calls = ic.recorded()
	if len(calls) != 2 || calls[1].Path != "/api/v1/handle-response" {
		t.Fatalf("calls %v", calls)
	}
	resp := calls[1].Body
	if resp["responseCode"] != float64(200) || resp["responseBody"] != b64("upstream") {
		t.Errorf("response call %v", resp)
	}
	if rh, _ := resp["responseHeaders"].(map[string]any); rh["x-internal"] != "secret" {
		t.Errorf("responseHeaders %v", rh)
	}
	if ctx, _ := resp["interceptorContext"].(map[string]any); ctx["user"] != "alice" || ctx["trace"] != "t-1" {
		t.Errorf("interceptorContext %v, want the request flow's", resp["interceptorContext"])
	}
	if inv, _ := resp["invocationContext"].(map[string]any); inv["apiName"] != "Shop" {
		t.Errorf("response invocationContext %v", resp["invocationContext"])
	}
	if v := testutil.ToFloat64(callsMetric(f, "shop", "request", "ok")); v != 1 {
		t.Errorf("request calls ok = %v", v)
	}
}

func callsMetric(f *fixture, api, flow, result string) prometheus.Collector {
	mfs, _ := f.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "tollgate_interceptor_calls_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["api"] == api && labels["flow"] == flow && labels["result"] == result {
				c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
				c.Add(m.GetCounter().GetValue())
				return c
			}
		}
	}
	return prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
}

// TestHeadersOnly: an interceptor that does not include the body is called
// at the request headers; a body it returns replaces the request's with
// CONTINUE_AND_REPLACE; only the response headers are asked for.
func TestHeadersOnly(t *testing.T) {
	ic := newInterceptor(t, func(path string, call map[string]any) (int, string) {
		if path == "/api/v1/handle-request" {
			if _, has := call["requestBody"]; has {
				return 400, `{}`
			}
			return 200, `{"body": "` + b64("made up") + `", "interceptorContext": {"k": "v"}}`
		}
		if call["interceptorContext"].(map[string]any)["k"] != "v" {
			return 500, `{}`
		}
		return 204, ``
	})
	f := start(t, configFor(ic.URL))
	e := f.open(t)
	r := e.send(requestHeaders("GET", "/shop/headers", true))
	c := common(t, r)
	if c.GetStatus() != extprocv3.CommonResponse_CONTINUE_AND_REPLACE || string(c.GetBodyMutation().GetBody()) != "made up" {
		t.Fatalf("headers answer %v: want the body replaced with CONTINUE_AND_REPLACE", r)
	}
	if mutationOf(c.GetHeaderMutation()).set["content-length"] != "7" {
		t.Errorf("content-length not set to the new body's: %v", c.GetHeaderMutation())
	}
	mo := r.GetModeOverride()
	if mo.GetRequestBodyMode() != extprocfilterv3.ProcessingMode_NONE || mo.GetResponseHeaderMode() != extprocfilterv3.ProcessingMode_SEND ||
		mo.GetResponseBodyMode() != extprocfilterv3.ProcessingMode_NONE {
		t.Errorf("mode override %v", mo)
	}
	// 204 from the response interceptor: nothing changes.
	r = e.send(responseHeaders(200, true, "x-a", "1"))
	if c := common(t, r); c.GetHeaderMutation() != nil || c.GetBodyMutation() != nil {
		t.Errorf("a 204 answer changed the response: %v", r)
	}
	if n := len(ic.recorded()); n != 2 {
		t.Errorf("%d calls, want 2", n)
	}
}

// TestDirectRespond: the interceptor answers the client itself; the
// response flow is not called for it.
func TestDirectRespond(t *testing.T) {
	cases := []struct {
		name, answer string
		status       int
		body         string
	}{
		{"with code and body", `{"directRespond": true, "responseCode": 401, "headersToAdd": {"content-type": "application/json", "x-why": "no"}, "body": "` + b64(`{"e":1}`) + `"}`, 401, `{"e":1}`},
		{"body, default 200", `{"directRespond": true, "body": "` + b64("hi") + `"}`, 200, "hi"},
		{"nothing, default 204", `{"directRespond": true}`, 204, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ic := newInterceptor(t, func(string, map[string]any) (int, string) { return 200, tc.answer })
			f := start(t, configFor(ic.URL))
			r := f.open(t).send(requestHeaders("GET", "/shop/headers", true))
			im := r.GetImmediateResponse()
			if im == nil || int(im.GetStatus().GetCode()) != tc.status || string(im.GetBody()) != tc.body {
				t.Fatalf("answer %v: want %d %q", r, tc.status, tc.body)
			}
			if tc.status == 401 {
				if m := mutationOf(im.GetHeaders()); m.set["x-why"] != "no" || m.set["content-type"] != "application/json" {
					t.Errorf("direct response headers %v", m.set)
				}
			}
		})
	}
}

// TestInvalidAnswers: everything the contract or Tollgate's checks refuse
// is a failed call: closed, the request is refused with 503 and no part of
// the answer is applied.
func TestInvalidAnswers(t *testing.T) {
	cases := []struct {
		name   string
		status int
		answer string
	}{
		{"not JSON", 200, `headers please`},
		{"two values", 200, `{} {}`},
		{"wrong type", 200, `{"headersToAdd": ["x"]}`},
		{"pseudo-header", 200, `{"headersToReplace": {":path": "/admin"}}`},
		{"host", 200, `{"headersToReplace": {"host": "evil.example"}}`},
		{"hop-by-hop", 200, `{"headersToAdd": {"transfer-encoding": "chunked"}}`},
		{"bad name", 200, `{"headersToAdd": {"x bad": "1"}}`},
		{"empty name", 200, `{"headersToRemove": [""]}`},
		{"CRLF in value", 200, `{"headersToAdd": {"x-a": "1\r\nx-b: 2"}}`},
		{"NUL in trailer", 200, `{"trailersToAdd": {"x-a": "1\u0000"}}`},
		{"bad base64", 200, `{"body": "not base64!"}`},
		{"body over the limit", 200, `{"body": "` + b64(strings.Repeat("x", 1<<20+1)) + `"}`}, // the default maxBodyBytes
		{"status out of range", 200, `{"directRespond": true, "responseCode": 700}`},
		{"dynamic endpoint", 200, `{"dynamicEndpoint": {"endpointName": "other"}}`},
		{"too many headers", 200, `{"headersToRemove": [` + strings.TrimSuffix(strings.Repeat(`"x-a",`, 101), ",") + `]}`},
		{"HTTP 500", 500, `{}`},
		{"HTTP 302", 302, `{}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ic := newInterceptor(t, func(string, map[string]any) (int, string) { return tc.status, tc.answer })
			f := start(t, configFor(ic.URL))
			r := f.open(t).send(requestHeaders("GET", "/shop/headers", true))
			if status, code := denial(t, r); status != 503 || code != "900930" {
				t.Errorf("got %d %s, want 503 900930", status, code)
			}
		})
	}
}

// TestTimeoutAndFailureMode: an interceptor that never answers fails the
// call at its timeout: closed refuses the request, open lets it go on.
func TestTimeoutAndFailureMode(t *testing.T) {
	ic := newInterceptor(t, func(string, map[string]any) (int, string) { return -1, "" })
	f := start(t, configFor(ic.URL))

	r := f.open(t).send(requestHeaders("GET", "/shop/slow", true))
	if status, code := denial(t, r); status != 503 || code != "900930" {
		t.Errorf("closed: %d %s, want 503 900930", status, code)
	}
	r = f.open(t).send(requestHeaders("GET", "/shop/slow-open", true))
	if c := common(t, r); r.GetRequestHeaders() == nil || c.GetHeaderMutation() != nil {
		t.Errorf("open: %v, want the request to go on unchanged", r)
	}
	if v := testutil.ToFloat64(callsMetric(f, "shop", "request", "timeout")); v != 2 {
		t.Errorf("timeouts counted %v, want 2", v)
	}
}

// TestUnreachable: a service that is not there is a failed call too.
func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close() // nothing listens there now
	f := start(t, configFor(url))
	r := f.open(t).send(requestHeaders("GET", "/shop/headers", true))
	if status, code := denial(t, r); status != 503 || code != "900930" {
		t.Errorf("got %d %s", status, code)
	}
}

// TestResponseFailure: a failed response call replaces the response with a
// 502, the response policy's removal notwithstanding.
func TestResponseFailure(t *testing.T) {
	ic := newInterceptor(t, func(path string, _ map[string]any) (int, string) {
		if path == "/api/v1/handle-request" {
			return 204, ""
		}
		return 200, `{"headersToAdd": {":status": "200"}}`
	})
	f := start(t, configFor(ic.URL))
	e := f.open(t)
	e.send(requestHeaders("GET", "/shop/headers", true))
	if status, code := denial(t, e.send(responseHeaders(200, true))); status != 502 || code != "900931" {
		t.Errorf("got %d %s, want 502 900931", status, code)
	}
}

// TestBodyLimit: a request body over maxBodyBytes is refused with 413
// before the interceptor sees it, whether its content-length says so or
// only the body does; a response body over it is a failed call.
func TestBodyLimit(t *testing.T) {
	ic := newInterceptor(t, func(string, map[string]any) (int, string) { return 204, "" })
	f := start(t, configFor(ic.URL))

	r := f.open(t).send(requestHeaders("POST", "/shop/items", false, "content-length", "65"))
	if status, code := denial(t, r); status != 413 || code != "900932" {
		t.Errorf("by content-length: %d %s, want 413 900932", status, code)
	}
	e := f.open(t)
	e.send(requestHeaders("POST", "/shop/items", false))
	if status, code := denial(t, e.send(requestBody(strings.Repeat("x", 65)))); status != 413 {
		t.Errorf("by body: %d %s, want 413", status, code)
	}
	e = f.open(t)
	e.send(requestHeaders("POST", "/shop/items", false))
	e.send(requestBody("small"))
	e.send(responseHeaders(200, false))
	if status, code := denial(t, e.send(responseBody(strings.Repeat("y", 65)))); status != 502 || code != "900931" {
		t.Errorf("response body: %d %s, want 502 900931", status, code)
	}
	if n := len(ic.recorded()); n != 1 {
		t.Errorf("%d calls, want 1 (the small request body)", n)
	}
}

// TestNothingToDo: an operation without interceptors or removals, and a
// request matching no operation, go on at once, and Envoy is told to send
// nothing more.
func TestNothingToDo(t *testing.T) {
	f := start(t, configFor("http://127.0.0.1:1"))
	for _, path := range []string{"/shop/plain", "/elsewhere"} {
		r := f.open(t).send(requestHeaders("GET", path, false))
		c := common(t, r)
		mo := r.GetModeOverride()
		if r.GetRequestHeaders() == nil || c.GetHeaderMutation() != nil || mo.GetResponseHeaderMode() != extprocfilterv3.ProcessingMode_SKIP ||
			mo.GetRequestBodyMode() != extprocfilterv3.ProcessingMode_NONE || mo.GetResponseBodyMode() != extprocfilterv3.ProcessingMode_NONE ||
			mo.GetRequestTrailerMode() != extprocfilterv3.ProcessingMode_SKIP || mo.GetResponseTrailerMode() != extprocfilterv3.ProcessingMode_SKIP {
			t.Errorf("%s: %v, want CONTINUE skipping the rest", path, r)
		}
	}
	// Without allow_mode_override Envoy sends the rest anyway: each
	// message is answered, unchanged.
	e := f.open(t)
	e.send(requestHeaders("GET", "/shop/plain", false))
	if r := e.send(requestBody("x")); r.GetRequestBody() == nil {
		t.Errorf("request body: %v", r)
	}
	if r := e.send(responseHeaders(200, false)); r.GetResponseHeaders() == nil || common(t, r).GetHeaderMutation() != nil {
		t.Errorf("response headers: %v", r)
	}
	if r := e.send(responseBody("y")); r.GetResponseBody() == nil {
		t.Errorf("response body: %v", r)
	}
}

// TestRemovalOnly: an operation with a removeHeader response policy and no
// interceptor has its response headers asked for and the header removed;
// setHeader, which ext_authz applies, is left alone.
func TestRemovalOnly(t *testing.T) {
	f := start(t, configFor("http://127.0.0.1:1"))
	e := f.open(t)
	r := e.send(requestHeaders("GET", "/shop/removal", true))
	if r.GetModeOverride().GetResponseHeaderMode() != extprocfilterv3.ProcessingMode_SEND {
		t.Fatalf("response headers not asked for: %v", r)
	}
	got := mutationOf(common(t, e.send(responseHeaders(200, true, "x-internal", "1"))).GetHeaderMutation())
	if len(got.remove) != 1 || got.remove[0] != "x-internal" || len(got.set) != 0 {
		t.Errorf("mutation %+v, want only the removal of x-internal", got)
	}
}

// TestMetadataNamesTheOperation: the API and operation ext_authz put in its
// metadata are used, even for a path the catalog would not match (one a
// request policy rewrote).
func TestMetadataNamesTheOperation(t *testing.T) {
	ic := newInterceptor(t, func(string, map[string]any) (int, string) { return 200, `{"headersToAdd": {"x-seen": "1"}}` })
	f := start(t, configFor(ic.URL))
	req := requestHeaders("GET", "/rewritten", true)
	md, _ := structpb.NewStruct(map[string]any{"api": "shop", "operation": "/headers", "credential_type": "apiKey"})
	req.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"envoy.filters.http.ext_authz": md}}
	r := f.open(t).send(req)
	if mutationOf(common(t, r).GetHeaderMutation()).set["x-seen"] != "+1" {
		t.Fatalf("the operation named by the metadata was not intercepted: %v", r)
	}
	inv, _ := ic.recorded()[0].Body["invocationContext"].(map[string]any)
	auth, _ := inv["authenticationContext"].(map[string]any)
	if auth["tokenType"] != "API Key" || auth["keyType"] != "PRODUCTION" {
		t.Errorf("authenticationContext %v", inv["authenticationContext"])
	}
}

// TestTrailers: trailer changes of the answer wait for the request's
// trailers.
func TestTrailers(t *testing.T) {
	ic := newInterceptor(t, func(_ string, call map[string]any) (int, string) {
		if tr, ok := call["requestTrailers"].(map[string]any); !ok || len(tr) != 0 {
			return 400, ""
		}
		return 200, `{"trailersToAdd": {"x-t": "1"}, "trailersToRemove": ["x-old"]}`
	})
	f := start(t, configFor(ic.URL))
	e := f.open(t)
	r := e.send(requestHeaders("POST", "/shop/trailers", false))
	if r.GetModeOverride().GetRequestTrailerMode() != extprocfilterv3.ProcessingMode_SEND {
		t.Fatalf("trailers not asked for: %v", r)
	}
	r = e.send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestTrailers{
		RequestTrailers: &extprocv3.HttpTrailers{Trailers: &corev3.HeaderMap{}}}})
	got := mutationOf(r.GetRequestTrailers().GetHeaderMutation())
	if got.set["x-t"] != "+1" || len(got.remove) != 1 || got.remove[0] != "x-old" {
		t.Errorf("trailer mutation %+v", got)
	}
}

// TestBodyNeverSent: an interceptor that needs the body, on an Envoy that
// did not send it (no allow_mode_override), fails the exchange rather
// than let the request through unseen.
func TestBodyNeverSent(t *testing.T) {
	ic := newInterceptor(t, func(string, map[string]any) (int, string) { return 204, "" })
	f := start(t, configFor(ic.URL))
	e := f.open(t)
	e.send(requestHeaders("POST", "/shop/items", false))
	if status, code := denial(t, e.send(responseHeaders(200, true))); status != 502 || code != "900931" {
		t.Errorf("got %d %s, want 502 900931", status, code)
	}
	if v := testutil.ToFloat64(callsMetric(f, "shop", "request", "skipped")); v != 1 {
		t.Errorf("skipped counted %v", v)
	}
}

// TestConcurrentStreams: many streams at once, some with nothing to do
// (sharing one prebuilt answer), some intercepted, each answered as its
// own (run with -race).
func TestConcurrentStreams(t *testing.T) {
	ic := newInterceptor(t, func(_ string, call map[string]any) (int, string) {
		inv, _ := call["invocationContext"].(map[string]any)
		id, _ := inv["requestId"].(string)
		return 200, `{"headersToAdd": {"x-echo": "` + id + `"}}`
	})
	f := start(t, configFor(ic.URL))
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for i := range 64 {
		wg.Go(func() {
			s, err := f.client.Process(context.Background())
			if err != nil {
				errs <- err.Error()
				return
			}
			defer s.CloseSend()
			id := strconv.Itoa(i)
			path := "/shop/plain"
			if i%2 == 1 {
				path = "/shop/headers"
			}
			req := requestHeaders("GET", path, true)
			for _, h := range req.GetRequestHeaders().GetHeaders().GetHeaders() {
				if h.GetKey() == "x-request-id" {
					h.RawValue = []byte(id)
				}
			}
			if err := s.Send(req); err != nil {
				errs <- err.Error()
				return
			}
			resp, err := s.Recv()
			if err != nil {
				errs <- err.Error()
				return
			}
			got := mutationOf(resp.GetRequestHeaders().GetResponse().GetHeaderMutation()).set["x-echo"]
			if i%2 == 1 && got != "+"+id || i%2 == 0 && got != "" {
				errs <- "stream " + id + " got x-echo " + got
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
