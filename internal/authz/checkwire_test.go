package authz

import (
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// headersOf gives tests the Headers a CheckRequest's headers map becomes.
func headersOf(m map[string]string) Headers {
	hs := Headers{lastWins: true}
	for k, v := range m {
		hs.fields = append(hs.fields, headerField{k, v})
	}
	return hs
}

// expectedRequest is what the pipeline must see for a CheckRequest, read
// through the generated code: the oracle WireCheckRequest is held to.
type expectedRequest struct {
	req     Request // without Headers
	headers func(name string) string
	names   []string // every header name sent
}

func expect(in *authv3.CheckRequest) expectedRequest {
	attrs := in.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	e := expectedRequest{req: Request{
		Frontend: FrontendGRPC, Method: h.GetMethod(), Host: h.GetHost(), Target: h.GetPath(),
		SourcePrincipal: attrs.GetSource().GetPrincipal(), SourceCertificate: attrs.GetSource().GetCertificate(),
		APIID: attrs.GetContextExtensions()["api"], OperationID: attrs.GetContextExtensions()["operation"],
	}}
	m, raw := h.GetHeaders(), h.GetHeaderMap().GetHeaders()
	e.headers = func(name string) string {
		if m != nil {
			return m[name]
		}
		for _, hv := range raw {
			if hv.GetKey() == name {
				if v := hv.GetValue(); v != "" {
					return v
				}
				return string(hv.GetRawValue())
			}
		}
		return ""
	}
	if m != nil {
		for k := range m {
			e.names = append(e.names, k)
		}
	} else {
		for _, hv := range raw {
			e.names = append(e.names, hv.GetKey())
		}
	}
	if e.req.Target == "" {
		e.req.Target = e.headers(":path")
	}
	if e.req.Host == "" {
		e.req.Host = e.headers(":authority")
	}
	if e.req.RequestID = e.headers("x-request-id"); e.req.RequestID == "" {
		e.req.RequestID = h.GetId()
	}
	if ip, err := netip.ParseAddr(attrs.GetSource().GetAddress().GetSocketAddress().GetAddress()); err == nil {
		e.req.Peer = ip.Unmap()
	}
	return e
}

// sameRequest reports how got differs from want, or "".
func sameRequest(got *Request, want expectedRequest) string {
	g := *got
	g.Headers = Headers{}
	if !reflect.DeepEqual(g, want.req) {
		return "request fields differ"
	}
	for _, name := range append(want.names, "x-request-id", ":path", "absent") {
		if got.Headers.Get(name) != want.headers(name) {
			return "header " + name + " differs"
		}
	}
	var reserved []string // the five identity headers are removed whether sent or not
	for _, name := range want.names {
		if isReservedHeader(name) && !identityHeader(name) && !slices.Contains(reserved, name) {
			reserved = append(reserved, name)
		}
	}
	gotReserved := got.Headers.appendReserved(nil, &Decision{}, nil)
	slices.Sort(gotReserved)
	slices.Sort(reserved)
	if !slices.Equal(slices.Compact(gotReserved), reserved) {
		return "reserved headers differ"
	}
	return ""
}

func peerAt(addr string) *authv3.AttributeContext_Peer {
	return &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
		SocketAddress: &corev3.SocketAddress{Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 443}}}}}
}

func httpCheck(h *authv3.AttributeContext_HttpRequest) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: h}}}
}

// wireCheckCases are CheckRequests shaped as Envoy and Istio send them,
// and some that only a test would send.
func wireCheckCases() map[string]*authv3.CheckRequest {
	full := checkRequest("GET", "/petstore/v1/pets?apikey=k", map[string]string{
		":authority": "api.example.com", "x-request-id": "rid-7", "apikey": "k", "x-consumer-id": "eve", "X-Consumer-Odd": "1",
	}, map[string]string{"api": "petstore", "operation": "list", "other": "x"})
	full.Attributes.Source.Principal = "spiffe://cluster.local/ns/shop/sa/web"
	full.Attributes.Source.Certificate = "-----BEGIN%20CERTIFICATE-----"
	full.Attributes.Destination = peerAt("10.0.0.2")
	full.Attributes.Request.Http.Scheme = "https"
	full.Attributes.Request.Http.Body = "ignored"

	pipe := checkRequest("GET", "/", nil, nil)
	pipe.Attributes.Source.Address = &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/run/envoy.sock"}}}
	mapped := checkRequest("GET", "/", nil, nil)
	mapped.Attributes.Source = peerAt("::ffff:192.168.1.10")

	return map[string]*authv3.CheckRequest{
		"empty":        {},
		"no http":      {Attributes: &authv3.AttributeContext{Source: peerAt("10.1.2.3")}},
		"istio shaped": full,
		"pseudo headers only": httpCheck(&authv3.AttributeContext_HttpRequest{Id: "42", Headers: map[string]string{
			":path": "/from/header", ":authority": "host.example", ":method": "GET"}}),
		"stream id fallback": httpCheck(&authv3.AttributeContext_HttpRequest{Id: "1234", Method: "POST"}),
		"raw header map": httpCheck(&authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/p", HeaderMap: &corev3.HeaderMap{
			Headers: []*corev3.HeaderValue{
				{Key: "apikey", RawValue: []byte("raw-key")}, {Key: "apikey", Value: "second"},
				{Key: "x-request-id", Value: "rid", RawValue: []byte("ignored")}, {Key: "x-authenticated-userid", Value: "mallory"},
				{Key: "bin", RawValue: []byte{0xff, 0xfe}},
			}}}),
		"map wins over header map": httpCheck(&authv3.AttributeContext_HttpRequest{
			Headers:   map[string]string{"apikey": "from-map"},
			HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "apikey", Value: "from-header-map"}, {Key: "only-raw", Value: "x"}}}}),
		"pipe address":        pipe,
		"ipv4-mapped address": mapped,
		"many headers": httpCheck(&authv3.AttributeContext_HttpRequest{Headers: func() map[string]string {
			m := map[string]string{}
			for i := range 100 {
				m[string(rune('a'+i%26))+string(rune('a'+i/26))] = "v"
			}
			return m
		}()}),
	}
}

func TestWireCheckRequestMatchesGeneratedCode(t *testing.T) {
	for name, in := range wireCheckCases() {
		t.Run(name, func(t *testing.T) {
			msg, err := proto.Marshal(in)
			if err != nil {
				t.Fatal(err)
			}
			var w WireCheckRequest
			if err := w.Unmarshal(msg); err != nil {
				t.Fatal(err)
			}
			if diff := sameRequest(w.Request(), expect(in)); diff != "" {
				t.Errorf("%s: got %+v, want %+v", diff, *w.Request(), expect(in).req)
			}
		})
	}
}

// Hand-encoded messages for protobuf's rules on repeated and mistyped
// fields, which the generated code's Marshal never produces.
func TestWireCheckRequestProtobufRules(t *testing.T) {
	bytesField := func(num protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
	}
	str := func(num protowire.Number, v string) []byte { return bytesField(num, []byte(v)) }
	cat := func(parts ...[]byte) []byte { return slices.Concat(parts...) }
	entry := func(k, v string) []byte { return cat(str(1, k), str(2, v)) }
	httpReq := func(parts ...[]byte) []byte {
		return bytesField(1, bytesField(4, bytesField(2, cat(parts...)))) // attributes.request.http
	}
	socket := func(addr string) []byte { return bytesField(1, bytesField(2, str(2, addr))) } // Address.socket_address.address
	source := func(address ...[]byte) []byte {
		return bytesField(1, bytesField(1, bytesField(1, cat(address...)))) // attributes.source.address
	}
	varintField := func(num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
	}

	cases := []struct {
		name string
		msg  []byte
	}{
		{"repeated attributes merge", cat(httpReq(str(2, "GET")), httpReq(str(4, "/p")))},
		{"last scalar wins", httpReq(str(2, "GET"), str(2, "POST"))},
		{"repeated map key, last wins", httpReq(bytesField(3, entry("apikey", "a")), bytesField(3, entry("apikey", "b")))},
		{"map entry without value", httpReq(bytesField(3, str(1, "apikey")))},
		{"map entry fields reversed", httpReq(bytesField(3, cat(str(2, "v"), str(1, "apikey"))))},
		{"mistyped field is unknown", httpReq(varintField(2, 7), str(4, "/p"))},
		{"unknown fields and groups skipped", httpReq(varintField(99, 1), str(98, "x"),
			protowire.AppendTag(protowire.AppendTag(nil, 97, protowire.StartGroupType), 97, protowire.EndGroupType), str(2, "GET"))},
		{"oneof: pipe replaces socket", source(socket("10.0.0.1"), bytesField(2, str(1, "/sock")))},
		{"oneof: socket after pipe", source(bytesField(2, str(1, "/sock")), socket("10.0.0.1"))},
		{"oneof: socket messages merge", source(socket("10.0.0.1"), bytesField(1, varintField(3, 80)))},
		{"mistyped oneof member ignored", source(socket("10.0.0.1"), varintField(2, 1))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var in authv3.CheckRequest
			if err := proto.Unmarshal(tc.msg, &in); err != nil {
				t.Fatalf("test message: %v", err)
			}
			var w WireCheckRequest
			if err := w.Unmarshal(tc.msg); err != nil {
				t.Fatal(err)
			}
			if diff := sameRequest(w.Request(), expect(&in)); diff != "" {
				t.Errorf("%s: got %+v, want %+v", diff, *w.Request(), expect(&in).req)
			}
		})
	}

	bad := []struct {
		name string
		msg  []byte
	}{
		{"truncated length", httpReq(str(2, "GET"))[:5]},
		{"field number 0", protowire.AppendVarint(nil, 2)},
		{"stray end group", protowire.AppendTag(nil, 5, protowire.EndGroupType)},
		{"invalid UTF-8 method", httpReq(bytesField(2, []byte{0xff}))},
		{"invalid UTF-8 header name", httpReq(bytesField(3, cat(bytesField(1, []byte{0xc0}), str(2, "v"))))},
		{"invalid UTF-8 context extension", bytesField(1, bytesField(10, cat(str(1, "api"), bytesField(2, []byte{0xff}))))},
		{"truncated nested message", bytesField(1, bytesField(4, []byte{0x12, 0x09, 0x12}))},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			var in authv3.CheckRequest
			if proto.Unmarshal(tc.msg, &in) == nil {
				t.Fatal("test message: the generated code accepts it")
			}
			var w WireCheckRequest
			err := w.Unmarshal(tc.msg)
			if err == nil {
				t.Fatalf("accepted, read as %+v", *w.Request())
			}
			if tc.name[:7] == "invalid" && !errors.Is(err, errInvalidUTF8) {
				t.Errorf("err = %v, want invalid UTF-8", err)
			}
		})
	}
}

// A reused WireCheckRequest keeps nothing of the previous request.
func TestWireCheckRequestReuse(t *testing.T) {
	var w WireCheckRequest
	first, _ := proto.Marshal(wireCheckCases()["istio shaped"])
	second, _ := proto.Marshal(&authv3.CheckRequest{})
	if err := w.Unmarshal(first); err != nil {
		t.Fatal(err)
	}
	first[len(first)-1] ^= 0xff // the caller's buffer is not referenced
	if w.Request().SourcePrincipal != "spiffe://cluster.local/ns/shop/sa/web" || w.Request().Headers.Get("apikey") != "k" {
		t.Fatalf("first read: %+v", *w.Request())
	}
	if err := w.Unmarshal(second); err != nil {
		t.Fatal(err)
	}
	if r := w.Request(); r.SourcePrincipal != "" || r.Headers.Get("apikey") != "" || r.APIID != "" {
		t.Fatalf("second read kept the first: %+v", *r)
	}
}

// FuzzWireCheckRequest holds the reader to the generated code: whatever
// bytes arrive, it must not panic, and whenever the generated code accepts
// a message the reader must too, and see the same request.
func FuzzWireCheckRequest(f *testing.F) {
	for _, in := range wireCheckCases() {
		msg, err := proto.Marshal(in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(msg)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		var w WireCheckRequest
		err := w.Unmarshal(msg)
		var in authv3.CheckRequest
		if proto.Unmarshal(msg, &in) != nil {
			return // the reader may be more lenient with fields it skips
		}
		if err != nil {
			t.Fatalf("generated code accepts, reader refuses: %v", err)
		}
		if diff := sameRequest(w.Request(), expect(&in)); diff != "" {
			t.Fatalf("%s: got %+v, want %+v", diff, *w.Request(), expect(&in).req)
		}
	})
}

func BenchmarkWireCheckRequest(b *testing.B) {
	msg, err := proto.Marshal(wireCheckCases()["istio shaped"])
	if err != nil {
		b.Fatal(err)
	}
	b.Run("WireCheckRequest", func(b *testing.B) {
		b.ReportAllocs()
		var w WireCheckRequest
		for b.Loop() {
			if err := w.Unmarshal(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("generated code", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var in authv3.CheckRequest
			if err := proto.Unmarshal(msg, &in); err != nil {
				b.Fatal(err)
			}
		}
	})
}
