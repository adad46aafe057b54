package authz

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

func checkRequest(method, path string, headers map[string]string, ext map[string]string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "192.168.1.10", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000}}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "req-1", Method: method, Host: "api.example.com", Path: path, Headers: headers,
		}},
		ContextExtensions: ext,
	}}
}

func upstreamHeaders(ok *authv3.OkHttpResponse) map[string]string {
	out := map[string]string{}
	for _, h := range ok.GetHeaders() {
		if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			panic("identity headers must overwrite client copies")
		}
		out[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	return out
}

func TestGRPCCheckAllow(t *testing.T) {
	s := NewGRPCServer(testEngine(t, testConfig))
	resp, err := s.Check(context.Background(), checkRequest("GET", "/petstore/v1/pets?apikey="+keyMobile,
		map[string]string{"x-consumer-id": "eve", "x-consumer-extra": "1"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetStatus().GetCode() != 0 {
		t.Fatalf("status = %v", resp.GetStatus())
	}
	ok := resp.GetOkResponse()
	got := upstreamHeaders(ok)
	want := map[string]string{"x-consumer-id": "mobile", "x-consumer-name": "Mobile app", "x-authenticated-userid": "alice",
		"x-authenticated-scope": "pets:write extra", "x-credential-type": "apiKey"}
	if len(got) != len(want) {
		t.Fatalf("headers = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("header %s = %q, want %q", k, got[k], v)
		}
	}
	wantSlice(t, "query_parameters_to_remove", ok.GetQueryParametersToRemove(), "apikey")
	for _, h := range []string{"x-consumer-extra", "apikey", "x-http-method-override"} {
		if !slices.Contains(ok.GetHeadersToRemove(), h) {
			t.Errorf("headers_to_remove = %q lacks %s", ok.GetHeadersToRemove(), h)
		}
	}
	md := wireMetadata(t, resp)
	for k, v := range map[string]string{"api": "petstore", "operation": "/pets", "application": "mobile", "subject": "alice", "credential_type": "apiKey"} {
		if md[k] != v {
			t.Errorf("metadata %s = %q, want %q", k, md[k], v)
		}
	}
}

func TestGRPCCheckDeny(t *testing.T) {
	s := NewGRPCServer(testEngine(t, testConfig))
	cases := []struct {
		name     string
		req      *authv3.CheckRequest
		grpcCode int32
		http     int
		code     string
		header   string // a response header that must be present
	}{
		{"missing", checkRequest("GET", "/petstore/v1/pets", nil, nil), 16, 401, "900902", "www-authenticate"},
		{"invalid", checkRequest("GET", "/petstore/v1/pets", map[string]string{"apikey": "x"}, nil), 16, 401, "900901", ""},
		{"forbidden", checkRequest("GET", "/petstore/v1/pets", map[string]string{"apikey": keyNoSub}, nil), 7, 403, "900908", ""},
		{"not found", checkRequest("GET", "/nope", nil, nil), 5, 404, "404", ""},
		{"no attributes", &authv3.CheckRequest{}, 3, 400, "900400", ""},
		{"escaped slash", checkRequest("GET", "/petstore/v1/pets/1%2f..%2f..%2fpets", nil, nil), 3, 400, "900400", ""},
		{"blocked subscription names the schemes", checkRequest("GET", "/petstore/v1/pets", map[string]string{"apikey": keyPartner}, nil), 16, 401, "900907", "www-authenticate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := s.Check(context.Background(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			den := resp.GetDeniedResponse()
			if resp.GetStatus().GetCode() != tc.grpcCode || int(den.GetStatus().GetCode()) != tc.http {
				t.Fatalf("status = %v / %v, want %d / %d", resp.GetStatus().GetCode(), den.GetStatus().GetCode(), tc.grpcCode, tc.http)
			}
			var body struct {
				Code    string `json:"code"`
				Message string `json:"error_message"`
				Desc    string `json:"error_description"`
			}
			if err := json.Unmarshal([]byte(den.GetBody()), &body); err != nil || body.Code != tc.code || body.Message == "" || body.Desc == "" {
				t.Fatalf("body %q (%v), want code %s", den.GetBody(), err, tc.code)
			}
			headers := map[string]string{}
			for _, h := range den.GetHeaders() {
				headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
			}
			if headers["content-type"] != "application/json" {
				t.Errorf("content-type = %q", headers["content-type"])
			}
			if tc.header != "" && headers[tc.header] == "" {
				t.Errorf("missing %s in %v", tc.header, headers)
			}
			if md := wireMetadata(t, resp); md["code"] != tc.code {
				t.Errorf("metadata = %v, want code %s", md, tc.code)
			}
		})
	}
}

func TestGRPCRawHeaderMap(t *testing.T) {
	// Envoy with encode_raw_headers sends header_map instead of headers.
	s := NewGRPCServer(testEngine(t, testConfig))
	in := checkRequest("GET", "/petstore/v1/pets", nil, nil)
	in.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: "apikey", RawValue: []byte(keyMobile)},
		{Key: "x-consumer-id", RawValue: []byte("eve")},
	}}
	resp, err := s.Check(context.Background(), in)
	if err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("raw headers: %v %v", resp, err)
	}
	if got := resp.GetOkResponse().GetHeadersToRemove(); !slices.Contains(got, "apikey") {
		t.Errorf("headers_to_remove = %q lacks apikey", got)
	}
}

// serveGRPC runs e behind a real gRPC server on a free loopback port, with
// the server's codec, and returns a connection to it.
func serveGRPC(t *testing.T, e *Engine, opts ...grpc.ServerOption) *grpc.ClientConn {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(append([]grpc.ServerOption{grpc.ForceServerCodecV2(Codec())}, opts...)...)
	NewGRPCServer(e).Register(srv)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestGRPCOverTheWire(t *testing.T) {
	conn := serveGRPC(t, testEngine(t, testConfig))
	client := authv3.NewAuthorizationClient(conn)
	resp, err := client.Check(context.Background(), checkRequest("GET", "/x", map[string]string{"apikey": keyMobile},
		map[string]string{"api": "petstore", "operation": "/pets"}))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetOkResponse() == nil || upstreamHeaders(resp.GetOkResponse())["x-consumer-id"] != "mobile" {
		t.Fatalf("response = %v", resp)
	}

	// What cannot be read is still answered with a denial: an RPC error
	// would be an allow under Envoy's failure_mode_allow. The server
	// carries on afterwards.
	for _, tc := range []struct {
		name string
		msg  []byte
	}{
		{"malformed wire format", []byte{0x0a, 0x05, 0x22}},
		{"invalid UTF-8 in a header", mustMarshal(t, checkRequest("GET", "/petstore/v1/pets", map[string]string{"apikey": "\xff"}, nil))},
	} {
		var out authv3.CheckResponse
		err = conn.Invoke(context.Background(), authv3.Authorization_Check_FullMethodName, tc.msg, &out,
			grpc.ForceCodecV2(rawRequestCodec{}))
		if err != nil || out.GetDeniedResponse().GetStatus().GetCode() != 400 || out.GetStatus().GetCode() != 3 {
			t.Fatalf("%s: %v, err %v; want a 400 denial", tc.name, &out, err)
		}
	}
	if _, err := client.Check(context.Background(), checkRequest("GET", "/x", nil, nil)); err != nil {
		t.Fatalf("after junk: %v", err)
	}
}

// mustMarshal encodes m without the UTF-8 check proto.Marshal makes, as
// Envoy's C++ encoder does.
func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{}.Marshal(m)
	if err == nil {
		return b
	}
	// proto.Marshal refuses invalid UTF-8; build the same message with the
	// header value as bytes in a map entry by hand.
	var entry, http, request, attrs, msg []byte
	entry = protowire.AppendTag(entry, 1, protowire.BytesType)
	entry = protowire.AppendString(entry, "apikey")
	entry = protowire.AppendTag(entry, 2, protowire.BytesType)
	entry = protowire.AppendString(entry, "\xff")
	http = protowire.AppendTag(http, 2, protowire.BytesType)
	http = protowire.AppendString(http, "GET")
	http = protowire.AppendTag(http, 4, protowire.BytesType)
	http = protowire.AppendString(http, "/petstore/v1/pets")
	http = protowire.AppendTag(http, 3, protowire.BytesType)
	http = protowire.AppendBytes(http, entry)
	request = protowire.AppendTag(request, 2, protowire.BytesType)
	request = protowire.AppendBytes(request, http)
	attrs = protowire.AppendTag(attrs, 4, protowire.BytesType)
	attrs = protowire.AppendBytes(attrs, request)
	msg = protowire.AppendTag(msg, 1, protowire.BytesType)
	return protowire.AppendBytes(msg, attrs)
}

func TestGRPCOversizedChecksAndPanics(t *testing.T) {
	rec := &panicCounter{}
	snap := testEngine(t, testConfig).config
	engine := NewEngine(Options{Config: snap, Clock: fixedClock(testNow), Tracer: panickyTracer{}, Metrics: rec})
	client := authv3.NewAuthorizationClient(serveGRPC(t, engine, grpc.MaxRecvMsgSize(64<<10)))

	// gRPC itself refuses a message over the limit before it is read: an
	// RPC error (the README says how to keep Envoy's CheckRequests under
	// it), after which the server carries on.
	big := checkRequest("GET", "/petstore/v1/pets", map[string]string{"x-big": strings.Repeat("a", 128<<10)}, nil)
	if _, err := client.Check(context.Background(), big); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("oversized check: err %v, want ResourceExhausted", err)
	}
	resp, err := client.Check(context.Background(), checkRequest("GET", "/petstore/v1/pets", map[string]string{"apikey": keyMobile}, nil))
	if err != nil || resp.GetDeniedResponse().GetStatus().GetCode() != 500 || !strings.Contains(resp.GetDeniedResponse().GetBody(), "900500") {
		t.Fatalf("panicking check: %v, err %v; want a 500 denial", resp, err)
	}
	if rec.panics.Load() != 1 {
		t.Fatalf("panics counted = %d, want 1", rec.panics.Load())
	}
}

// panickyTracer makes every decision panic: a fault no request can cause.
type panickyTracer struct{}

func (panickyTracer) StartCheck(context.Context, *Request) (context.Context, func(*Decision)) {
	panic("boom")
}

type panicCounter struct {
	nopRecorder
	panics atomic.Int64
}

func (p *panicCounter) ObservePanic(string) { p.panics.Add(1) }

// rawRequestCodec sends a []byte request as it is and reads responses as
// protobuf.
type rawRequestCodec struct{}

func (rawRequestCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}
func (rawRequestCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}
func (rawRequestCodec) Name() string { return "proto" }

func TestHTTPFrontEnd(t *testing.T) {
	type call struct {
		name    string
		method  string
		target  string
		host    string
		headers [][2]string // repeated names allowed
		status  int
		code    string
		want    map[string]string // response headers
		absent  []string
	}
	shapes := []struct {
		shape string
		calls []call
	}{
		{"envoy", []call{
			{name: "allow", method: "GET", target: "/petstore/v1/pets",
				headers: [][2]string{{"apikey", keyMobile}, {"X-Consumer-Custom", "eve"}}, status: 200,
				want:   map[string]string{"X-Consumer-Id": "mobile", "X-Credential-Type": "apiKey"},
				absent: []string{HeaderErrorBody}},
			{name: "deny", method: "DELETE", target: "/petstore/v1/pets/1",
				headers: [][2]string{{"apikey", keyReadOnly}}, status: 403, code: "900910",
				want: map[string]string{"Content-Type": "application/json"}, absent: []string{HeaderErrorBody, "X-Consumer-Id"}},
			// the client cannot choose what is checked
			{name: "X-Original-URI means nothing", method: "DELETE", target: "/petstore/v1/pets/1",
				headers: [][2]string{{HeaderOriginalURI, "/petstore/v1/health"}, {HeaderOriginalMethod, "GET"}}, status: 401, code: "900902"},
			{name: "X-Forwarded-Uri means nothing", method: "DELETE", target: "/petstore/v1/pets/1",
				headers: [][2]string{{HeaderForwardedURI, "/petstore/v1/health"}, {HeaderForwardedMethod, "GET"}}, status: 401, code: "900902"},
			{name: "two Authorization lines", method: "GET", target: "/petstore/v1/pets",
				headers: [][2]string{{"apikey", keyMobile}, {"Authorization", "Bearer a"}, {"Authorization", "Bearer b"}}, status: 200},
			{name: "two apikey lines", method: "GET", target: "/petstore/v1/pets",
				headers: [][2]string{{"apikey", keyMobile}, {"apikey", keyReadOnly}}, status: 400, code: "900400"},
		}},
		{"nginx", []call{
			{name: "allow", method: "GET", target: "/auth",
				headers: [][2]string{{HeaderOriginalURI, "/petstore/v1/pets/3/../1"}, {HeaderOriginalMethod, "DELETE"}, {"apikey", keyMobile}},
				status:  200, want: map[string]string{"X-Consumer-Name": "Mobile app", "X-Authenticated-Userid": "alice"}},
			{name: "deny repeats the body in a header", method: "GET", target: "/auth",
				headers: [][2]string{{HeaderOriginalURI, "/petstore/v1/pets"}, {HeaderOriginalMethod, "GET"}}, status: 401, code: "900902",
				want: map[string]string{"Www-Authenticate": `APIKey realm="petstore", header="apikey"`}},
			{name: "HEAD on a GET operation", method: "GET", target: "/auth",
				headers: [][2]string{{HeaderOriginalURI, "/petstore/v1/health"}, {HeaderOriginalMethod, "HEAD"}}, status: 200},
			{name: "no X-Original-URI", method: "GET", target: "/petstore/v1/health", status: 400, code: "900400"},
			{name: "no X-Original-Method", method: "GET", target: "/auth",
				headers: [][2]string{{HeaderOriginalURI, "/petstore/v1/health"}}, status: 400, code: "900400"},
			{name: "X-Original-URI twice", method: "GET", target: "/auth",
				headers: [][2]string{{HeaderOriginalURI, "/petstore/v1/health"}, {HeaderOriginalURI, "/petstore/v1/pets"}, {HeaderOriginalMethod, "GET"}},
				status:  400, code: "900400"},
		}},
		{"forwardAuth", []call{
			{name: "allow", method: "GET", target: "/", host: "auth.internal",
				headers: [][2]string{{HeaderForwardedMethod, "DELETE"}, {HeaderForwardedHost, "api.example.com"}, {HeaderForwardedURI, "/petstore/v1/pets/1?x=1"},
					{HeaderForwardedProto, "https"}, {"apikey", keyMobile}},
				status: 200, want: map[string]string{"X-Consumer-Id": "mobile"}, absent: []string{HeaderErrorBody, HeaderHeadersToRemove}},
			{name: "deny", method: "GET", target: "/",
				headers: [][2]string{{HeaderForwardedMethod, "DELETE"}, {HeaderForwardedHost, "api.example.com"}, {HeaderForwardedURI, "/petstore/v1/pets/1"}},
				status:  401, code: "900902", absent: []string{HeaderErrorBody}},
			{name: "the host is read from X-Forwarded-Host", method: "GET", target: "/", host: "internal.example.com",
				headers: [][2]string{{HeaderForwardedMethod, "GET"}, {HeaderForwardedHost, "api.example.com"}, {HeaderForwardedURI, "/internal/x"}, {"apikey", keyMobile}},
				status:  404, code: "404"},
			{name: "X-Original-URI means nothing", method: "GET", target: "/",
				headers: [][2]string{{HeaderForwardedMethod, "DELETE"}, {HeaderForwardedHost, "api.example.com"}, {HeaderForwardedURI, "/petstore/v1/pets/1"},
					{HeaderOriginalURI, "/petstore/v1/health"}},
				status: 401, code: "900902"},
			{name: "no X-Forwarded-Uri", method: "GET", target: "/petstore/v1/health",
				headers: [][2]string{{HeaderForwardedMethod, "GET"}, {HeaderForwardedHost, "api.example.com"}}, status: 400, code: "900400"},
			{name: "X-Forwarded-Method twice", method: "GET", target: "/",
				headers: [][2]string{{HeaderForwardedMethod, "GET"}, {HeaderForwardedMethod, "DELETE"}, {HeaderForwardedHost, "api.example.com"}, {HeaderForwardedURI, "/petstore/v1/health"}},
				status:  400, code: "900400"},
		}},
	}
	for _, sh := range shapes {
		h := NewHTTPHandler(testEngine(t, testConfig+"httpFrontEnd: {shape: "+sh.shape+"}\n"))
		for _, tc := range sh.calls {
			t.Run(sh.shape+"/"+tc.name, func(t *testing.T) {
				r := httptest.NewRequest(tc.method, tc.target, nil)
				if tc.host != "" {
					r.Host = tc.host
				}
				for _, kv := range tc.headers {
					r.Header.Add(kv[0], kv[1])
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != tc.status {
					t.Fatalf("status %d, want %d (body %s)", w.Code, tc.status, w.Body)
				}
				for k, v := range tc.want {
					if got := w.Header().Get(k); got != v {
						t.Errorf("header %s = %q, want %q", k, got, v)
					}
				}
				for _, k := range tc.absent {
					if got := w.Header().Get(k); got != "" {
						t.Errorf("header %s = %q, want none", k, got)
					}
				}
				if tc.status != 200 {
					var body map[string]string
					if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body["code"] != tc.code {
						t.Fatalf("deny body %q (%v), want code %s", w.Body, err, tc.code)
					}
					if sh.shape == "nginx" && w.Header().Get(HeaderErrorBody) != strings.TrimSpace(w.Body.String()) {
						t.Errorf("%s = %q, want the body", HeaderErrorBody, w.Header().Get(HeaderErrorBody))
					}
				} else if w.Body.Len() != 0 {
					t.Errorf("allow has a body: %q", w.Body)
				}
				if sh.shape == "envoy" && tc.status == 200 {
					removed := strings.Split(w.Header().Get(HeaderHeadersToRemove), ",")
					want := []string{"apikey", "x-http-method-override", "x-method-override"}
					if r.Header.Get("X-Consumer-Custom") != "" {
						want = append(want, "x-consumer-custom")
					}
					for _, want := range want {
						if !slices.Contains(removed, want) {
							t.Errorf("%s = %q lacks %s", HeaderHeadersToRemove, removed, want)
						}
					}
				}
			})
		}
	}
}

func TestHTTPClientIPFromTrustedProxy(t *testing.T) {
	h := NewHTTPHandler(testEngine(t, strings.Replace(testConfig,
		"clientIp: {header: x-forwarded-for, trustedProxies: [10.0.0.1]}",
		"clientIp: {header: x-real-ip, trustedProxies: [127.0.0.1]}", 1)+"httpFrontEnd: {shape: nginx}\n"))
	call := func(remote string, realIP ...string) int {
		r := httptest.NewRequest("GET", "/auth", nil)
		r.RemoteAddr = remote
		r.Header.Set(HeaderOriginalURI, "/petstore/v1/pets")
		r.Header.Set(HeaderOriginalMethod, "GET")
		r.Header.Set("apikey", keyCIDR)
		for _, ip := range realIP {
			r.Header.Add("X-Real-IP", ip)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	if got := call("127.0.0.1:5000", "192.168.0.9"); got != 200 {
		t.Errorf("trusted proxy, allowed client: %d", got)
	}
	if got := call("127.0.0.1:5000", "8.8.8.8"); got != 403 {
		t.Errorf("trusted proxy, refused client: %d", got)
	}
	if got := call("192.168.0.1:5000", "192.168.0.9"); got != 200 {
		t.Errorf("direct client in range: %d", got)
	}
	if got := call("8.8.4.4:5000", "192.168.0.9"); got != 403 {
		t.Errorf("untrusted peer claiming an allowed address: %d", got)
	}
	if got := call("127.0.0.1:5000", "192.168.0.9", "8.8.8.8"); got != 400 {
		t.Errorf("trusted proxy, X-Real-IP twice: %d, want 400", got)
	}
}

func TestDenyBodyEscapes(t *testing.T) {
	d := Denial{Code: "900901", Message: `a "quoted" \ thing`, Description: "line\nbreak <tag> \x01 \xff é"}
	var got map[string]string
	if err := json.Unmarshal(d.Body(), &got); err != nil {
		t.Fatalf("body %q is not JSON: %v", d.Body(), err)
	}
	if got["error_message"] != d.Message || got["error_description"] != "line\nbreak <tag> \x01 \ufffd é" {
		t.Fatalf("round trip = %q", got)
	}
}

var _ http.Handler = (*HTTPHandler)(nil)

// answer is how a front end answered one request.
type answer struct {
	status int // HTTP status; 200 for an allow
	grpc   int32
	body   denyBody // of a denial
}

type denyBody struct {
	Code        string `json:"code"`
	Message     string `json:"error_message"`
	Description string `json:"error_description"`
}

// onBothFrontEnds sends one request to the gRPC front end, as Envoy's
// CheckRequest, and to the HTTP front end in its envoy shape, as Envoy's
// http_service, and returns both answers: the decision must read the same
// on either.
func onBothFrontEnds(t *testing.T, e *Engine, method, path string, headers map[string]string) (grpcAnswer, httpAnswer answer) {
	t.Helper()
	resp, err := NewGRPCServer(e).Check(context.Background(), checkRequest(method, path, headers, nil))
	if err != nil {
		t.Fatalf("gRPC Check: %v", err)
	}
	grpcAnswer = answer{status: 200, grpc: resp.GetStatus().GetCode()}
	if den := resp.GetDeniedResponse(); den != nil {
		grpcAnswer.status = int(den.GetStatus().GetCode())
		if err := json.Unmarshal([]byte(den.GetBody()), &grpcAnswer.body); err != nil {
			t.Fatalf("gRPC deny body %q: %v", den.GetBody(), err)
		}
	}
	r := httptest.NewRequest(method, path, nil)
	r.Host = "api.example.com"
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	NewHTTPHandler(e).ServeHTTP(w, r)
	httpAnswer = answer{status: w.Code}
	if w.Code != 200 {
		if err := json.Unmarshal(w.Body.Bytes(), &httpAnswer.body); err != nil {
			t.Fatalf("HTTP deny body %q: %v", w.Body, err)
		}
	}
	return grpcAnswer, httpAnswer
}
