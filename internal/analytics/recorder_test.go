package analytics

import (
	"bytes"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/internal/authz"
	"github.com/tollgate/tollgate/internal/catalog"
)

// wireRequest reads a CheckRequest as the gRPC front end does, into one
// copy of the message, and returns the request and a test of whether a
// string points into that copy. The request must carry a header
// "x-padding" that occurs nowhere else in the message: its offset in the
// message locates the copy.
func wireRequest(t *testing.T, check *authv3.CheckRequest) (req *authz.Request, inRequest func(string) bool) {
	t.Helper()
	msg, err := proto.Marshal(check)
	if err != nil {
		t.Fatal(err)
	}
	wire := new(authz.WireCheckRequest)
	if err := wire.Unmarshal(msg); err != nil {
		t.Fatal(err)
	}
	req = wire.Request()
	padding := req.Headers.Get("x-padding")
	offset := bytes.Index(msg, []byte(padding))
	if padding == "" || offset < 0 {
		t.Fatal("no x-padding header to locate the request by")
	}
	start := uintptr(unsafe.Pointer(unsafe.StringData(padding))) - uintptr(offset)
	end := start + uintptr(len(msg))
	inRequest = func(s string) bool {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		return len(s) > 0 && p >= start && p < end
	}
	return req, inRequest
}

// TestEventKeepsNothingOfTheRequest builds an event from a large request
// and checks that no string of it points into the request.
func TestEventKeepsNothingOfTheRequest(t *testing.T) {
	userAgent := "a" + strings.Repeat("é", 200) // 401 bytes
	principal := "spiffe://cluster.local/ns/shop/sa/checkout"
	req, inRequest := wireRequest(t, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Principal: principal},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Host: "shop.example.com", Path: "/pets/1?key=secret",
			Headers: map[string]string{"user-agent": userAgent, "x-request-id": "req-1", "x-padding": strings.Repeat("p", 1<<20)},
		}},
	}})
	for _, s := range []string{req.Method, req.Host, req.Target, req.RequestID, req.SourcePrincipal, req.Headers.Get("user-agent")} {
		if !inRequest(s) {
			t.Fatalf("%q is not a substring of the request: the test would prove nothing", s)
		}
	}

	d := &authz.Decision{
		Allowed:  true,
		ClientIP: netip.MustParseAddr("10.1.2.3"),
		API:      &catalog.API{ID: "petstore", Version: "v1"},
		Identity: authz.Identity{Subject: req.SourcePrincipal, Credential: "mtls"},
	}
	at := time.Date(2026, 11, 25, 13, 0, 0, 0, time.FixedZone("CET", 3600))
	e := eventOf(req, d, time.Millisecond, at)

	v := reflect.ValueOf(*e)
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.String && inRequest(f.String()) {
			t.Errorf("%s points into the request", v.Type().Field(i).Name)
		}
	}
	want := Event{
		Timestamp: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), RequestID: "req-1", Frontend: "grpc", API: "petstore", APIVersion: "v1",
		Method: "GET", Host: "shop.example.com", Path: "/pets/1", Subject: principal, CredentialType: "mtls",
		ClientIP: "10.1.2.3", UserAgent: "a" + strings.Repeat("é", 127), // 255 bytes: the next é would cross 256
		Decision: "allow", Code: AllowCode, Latency: Latency{EnforcerMS: 1},
	}
	if !reflect.DeepEqual(*e, want) {
		t.Errorf("event\n got %+v\nwant %+v", *e, want)
	}
}

func TestClip(t *testing.T) {
	cases := []struct {
		name, in string
		limit    int
		want     string
	}{
		{"short", "GET", 16, "GET"},
		{"exactly the limit", "abcd", 4, "abcd"},
		{"ASCII over", "abcdef", 4, "abcd"},
		{"before a two-byte rune", "abcé", 4, "abc"},
		{"after a two-byte rune", "abéd", 4, "abé"},
		{"inside a four-byte rune", "a😀b", 3, "a"},
		{"not UTF-8", "\x80\x80\x80\x80\x80\x80", 4, "\x80\x80\x80\x80"},
		{"empty", "", 4, ""},
	}
	for _, tc := range cases {
		got := clip(tc.in, tc.limit)
		if got != tc.want {
			t.Errorf("%s: clip(%q, %d) = %q, want %q", tc.name, tc.in, tc.limit, got, tc.want)
		}
		if utf8.ValidString(tc.in) && !utf8.ValidString(got) {
			t.Errorf("%s: cut inside a rune: %q", tc.name, got)
		}
		if got != "" && unsafe.StringData(got) == unsafe.StringData(tc.in) {
			t.Errorf("%s: not a copy", tc.name)
		}
	}
}
