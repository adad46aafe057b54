package analytics

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"
)

// TestEventKeepsNothingOfTheRequest builds an event from a decision whose
// strings are substrings of a large request, as the pipeline's are, and
// checks that no string of the event points into it.
func TestEventKeepsNothingOfTheRequest(t *testing.T) {
	userAgent := "a" + strings.Repeat("é", 200) // 401 bytes
	principal := "spiffe://cluster.local/ns/shop/sa/checkout"
	request := strings.Join([]string{"GET", "shop.example.com", "/pets/1", "req-1", principal, userAgent, strings.Repeat("p", 1<<20)}, "\x00")
	start := uintptr(unsafe.Pointer(unsafe.StringData(request)))
	inRequest := func(s string) bool {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		return len(s) > 0 && p >= start && p < start+uintptr(len(request))
	}
	part := func(s string) string {
		i := strings.Index(request, s)
		if i < 0 {
			t.Fatalf("%q is not in the request", s)
		}
		return request[i : i+len(s)]
	}

	d := Decision{
		Frontend: FrontendGRPC, API: "petstore", APIVersion: "v1", Allowed: true, Elapsed: time.Millisecond,
		Method: part("GET"), Host: part("shop.example.com"), Path: part("/pets/1"), RequestID: part("req-1"),
		Subject: part(principal), Credential: "mtls+apiKey", KeyID: "k3y1d0000042", UserAgent: part(userAgent),
		ClientIP: netip.MustParseAddr("10.1.2.3"),
	}
	for _, s := range []string{d.Method, d.Host, d.Path, d.RequestID, d.Subject, d.UserAgent} {
		if !inRequest(s) {
			t.Fatalf("%q is not a substring of the request: the test would prove nothing", s)
		}
	}
	at := time.Date(2026, 11, 25, 13, 0, 0, 0, time.FixedZone("CET", 3600))
	e := eventOf(d, at)

	v := reflect.ValueOf(*e)
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.String && inRequest(f.String()) {
			t.Errorf("%s points into the request", v.Type().Field(i).Name)
		}
	}
	want := Event{
		Timestamp: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), RequestID: "req-1", Frontend: "grpc", API: "petstore", APIVersion: "v1",
		Method: "GET", Host: "shop.example.com", Path: "/pets/1", Subject: principal, CredentialType: "mtls+apiKey", KeyID: "k3y1d0000042",
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

// TestEventNamesPolicies: the policies a request ran are in its event.
func TestEventNamesPolicies(t *testing.T) {
	for _, tc := range []struct {
		policies []string
		want     string
	}{
		{[]string{"request.setHeader", "rule"}, `"policies":["request.setHeader","rule"]`},
		{nil, ""},
	} {
		data, err := json.Marshal(eventOf(Decision{Allowed: true, Policies: tc.policies}, time.Unix(0, 0)))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(string(data), `"policies"`); got != (tc.want != "") || tc.want != "" && !strings.Contains(string(data), tc.want) {
			t.Errorf("event %s, want %q", data, tc.want)
		}
	}
}
