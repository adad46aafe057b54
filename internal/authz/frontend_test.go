package authz

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
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
	wantSlice(t, "headers_to_remove", ok.GetHeadersToRemove(), "x-consumer-extra")
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
		{"no attributes", &authv3.CheckRequest{}, 5, 404, "404", ""},
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
	wantSlice(t, "headers_to_remove", resp.GetOkResponse().GetHeadersToRemove(), "apikey")
}

func TestGRPCOverTheWire(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.ForceServerCodecV2(Codec()))
	NewGRPCServer(testEngine(t, testConfig)).Register(srv)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)

	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := authv3.NewAuthorizationClient(conn)
	resp, err := client.Check(context.Background(), checkRequest("GET", "/x", map[string]string{"apikey": keyMobile},
		map[string]string{"api": "petstore", "operation": "/pets"}))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetOkResponse() == nil || upstreamHeaders(resp.GetOkResponse())["x-consumer-id"] != "mobile" {
		t.Fatalf("response = %v", resp)
	}

	// A message that is not a CheckRequest is a gRPC error, as the
	// generated code's reading would make it; the server carries on.
	var out authv3.CheckResponse
	err = conn.Invoke(context.Background(), authv3.Authorization_Check_FullMethodName, []byte{0x0a, 0x05, 0x22}, &out,
		grpc.ForceCodecV2(rawRequestCodec{}))
	if status.Code(err) != codes.Internal {
		t.Fatalf("junk request: err = %v, want Internal", err)
	}
	if _, err := client.Check(context.Background(), checkRequest("GET", "/x", nil, nil)); err != nil {
		t.Fatalf("after junk: %v", err)
	}
}

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
	h := NewHTTPHandler(testEngine(t, testConfig))
	cases := []struct {
		name    string
		method  string
		target  string
		headers map[string]string
		status  int
		want    map[string]string // response headers
		absent  []string
	}{
		{name: "envoy shape allow", method: "GET", target: "/petstore/v1/pets",
			headers: map[string]string{"apikey": keyMobile, "X-Consumer-Custom": "eve"}, status: 200,
			want: map[string]string{"X-Consumer-Id": "mobile", "X-Credential-Type": "apiKey",
				"X-Envoy-Auth-Headers-To-Remove": "apikey,x-consumer-custom"},
			absent: []string{HeaderErrorBody}},
		{name: "envoy shape deny", method: "DELETE", target: "/petstore/v1/pets/1",
			headers: map[string]string{"apikey": keyReadOnly}, status: 403,
			want: map[string]string{"Content-Type": "application/json"}, absent: []string{HeaderErrorBody, "X-Consumer-Id"}},
		{name: "nginx shape allow", method: "GET", target: "/auth",
			headers: map[string]string{HeaderOriginalURI: "/petstore/v1/pets/3/../1", HeaderOriginalMethod: "DELETE", "apikey": keyMobile},
			status:  200, want: map[string]string{"X-Consumer-Name": "Mobile app", "X-Authenticated-Userid": "alice"}},
		{name: "nginx shape deny repeats the body in a header", method: "GET", target: "/auth",
			headers: map[string]string{HeaderOriginalURI: "/petstore/v1/pets"}, status: 401,
			want: map[string]string{"Www-Authenticate": `APIKey realm="petstore", header="apikey"`}},
		{name: "nginx shape method defaults to GET", method: "POST", target: "/auth",
			headers: map[string]string{HeaderOriginalURI: "/petstore/v1/health"}, status: 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.target, nil)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
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
				if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body["code"] == "" {
					t.Fatalf("deny body %q: %v", w.Body, err)
				}
				if tc.headers[HeaderOriginalURI] != "" && w.Header().Get(HeaderErrorBody) != strings.TrimSpace(w.Body.String()) {
					t.Errorf("%s = %q, want the body", HeaderErrorBody, w.Header().Get(HeaderErrorBody))
				}
			} else if w.Body.Len() != 0 {
				t.Errorf("allow has a body: %q", w.Body)
			}
		})
	}
}

func TestHTTPClientIPFromTrustedProxy(t *testing.T) {
	h := NewHTTPHandler(testEngine(t, strings.Replace(testConfig,
		"clientIp: {header: x-forwarded-for, trustedProxies: [10.0.0.1]}",
		"clientIp: {header: x-real-ip, trustedProxies: [127.0.0.1]}", 1)))
	call := func(remote, realIP string) int {
		r := httptest.NewRequest("GET", "/auth", nil)
		r.RemoteAddr = remote
		r.Header.Set(HeaderOriginalURI, "/petstore/v1/pets")
		r.Header.Set("apikey", keyCIDR)
		r.Header.Set("X-Real-IP", realIP)
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
