package authz

import (
	"errors"
	"fmt"
	"net/netip"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// WireCheckRequest is an ext_authz CheckRequest as the gRPC front end
// reads it: straight from the wire into a Request, keeping only what the
// decision uses. Every string is a substring of one copy of the message,
// and headers are a slice of pairs, so reading a request costs two
// allocations where the generated protobuf code builds a map entry,
// strings and a message per header — which cost more than Tollgate's whole
// decision.
//
// It follows protobuf's own rules for what it reads: the last value of a
// repeated scalar wins, repeated messages merge, a oneof keeps its last
// member, fields with an unexpected wire type are skipped as unknown,
// strings must be UTF-8. Fields Tollgate does not use are skipped unread.
type WireCheckRequest struct {
	req Request
	// store holds the headers of a typical request without another
	// allocation.
	store [24]headerField
}

// headerField is one request header as Envoy sent it.
type headerField struct{ name, value string }

// Field numbers of the parts of a CheckRequest Tollgate reads
// (envoy/service/auth/v3/external_auth.proto, attribute_context.proto,
// envoy/config/core/v3/address.proto and base.proto).
const (
	checkRequestAttributes protowire.Number = 1

	attributesSource            protowire.Number = 1
	attributesRequest           protowire.Number = 4
	attributesContextExtensions protowire.Number = 10

	peerAddress     protowire.Number = 1
	peerPrincipal   protowire.Number = 4
	peerCertificate protowire.Number = 5

	addressSocketAddress        protowire.Number = 1 // oneof address
	addressPipe                 protowire.Number = 2 // oneof address
	addressEnvoyInternalAddress protowire.Number = 3 // oneof address
	socketAddressAddress        protowire.Number = 2

	requestHTTP protowire.Number = 2

	httpID        protowire.Number = 1
	httpMethod    protowire.Number = 2
	httpHeaders   protowire.Number = 3 // map<string, string>
	httpPath      protowire.Number = 4
	httpHost      protowire.Number = 5
	httpHeaderMap protowire.Number = 13

	headerMapHeaders  protowire.Number = 1
	headerValueKey    protowire.Number = 1
	headerValueValue  protowire.Number = 2
	headerValueRawVal protowire.Number = 3

	mapEntryKeyField   protowire.Number = 1
	mapEntryValueField protowire.Number = 2
)

var errInvalidUTF8 = errors.New("string field contains invalid UTF-8")

// Unmarshal reads msg, a CheckRequest in protobuf wire form, replacing
// what c held. c keeps a copy; msg may be reused afterwards.
func (c *WireCheckRequest) Unmarshal(msg []byte) error {
	r := checkReader{b: msg, s: string(msg), store: c.store[:0]}
	if err := r.checkRequest(span{0, len(msg)}); err != nil {
		c.req = Request{}
		return fmt.Errorf("reading CheckRequest: %w", err)
	}
	r.finish(&c.req)
	return nil
}

// read is Unmarshal for the server: a message that does not read (invalid
// UTF-8 in a string, malformed wire format) becomes a request the decision
// refuses with 400, rather than an error.
func (c *WireCheckRequest) read(msg []byte) {
	if err := c.Unmarshal(msg); err != nil {
		c.req = Request{Frontend: FrontendGRPC, Unreadable: "The CheckRequest is malformed (" + errorText(err) + ")."}
	}
}

// errorText names what was wrong without quoting the request.
func errorText(err error) string {
	if errors.Is(err, errInvalidUTF8) {
		return "a string field holds invalid UTF-8"
	}
	return "invalid protobuf wire format"
}

// Request returns the request as the pipeline sees it.
func (c *WireCheckRequest) Request() *Request { return &c.req }

// span is a part of the message, [start, end).
type span struct{ start, end int }

// checkReader accumulates the fields of one CheckRequest. Reading into one
// state, occurrence after occurrence, is what gives protobuf's merge
// semantics.
type checkReader struct {
	b []byte // the message, for protowire
	s string // the same bytes; every value read is a substring of it

	method, host, path, id string
	mapHeaders, rawHeaders []headerField
	store                  []headerField // room for the first of them
	sourceAddress          string
	principal, certificate string
	apiID, operationID     string
}

func (r *checkReader) appendHeader(dst *[]headerField, f headerField) {
	if *dst == nil {
		*dst, r.store = r.store, nil
	}
	*dst = append(*dst, f)
}

// fieldIter walks the fields of one message.
type fieldIter struct {
	b        []byte
	pos, end int
	num      protowire.Number
	typ      protowire.Type
	val      span // the value of a length-delimited field
	err      error
}

func (r *checkReader) fields(sp span) fieldIter {
	return fieldIter{b: r.b, pos: sp.start, end: sp.end}
}

// next moves to the next field, false at the end or on malformed input
// (then err is set).
func (it *fieldIter) next() bool {
	if it.pos >= it.end {
		return false
	}
	rest := it.b[it.pos:it.end]
	num, typ, n := protowire.ConsumeTag(rest)
	if n < 0 {
		it.err = protowire.ParseError(n)
		return false
	}
	if typ == protowire.BytesType {
		v, m := protowire.ConsumeBytes(rest[n:])
		if m < 0 {
			it.err = protowire.ParseError(m)
			return false
		}
		it.val = span{it.pos + n + m - len(v), it.pos + n + m}
		n += m
	} else {
		m := protowire.ConsumeFieldValue(num, typ, rest[n:])
		if m < 0 {
			it.err = protowire.ParseError(m)
			return false
		}
		n += m
	}
	it.num, it.typ = num, typ
	it.pos += n
	return true
}

// is reports whether the current field is num, length-delimited. A known
// field with another wire type is unknown to protobuf too.
func (it *fieldIter) is(num protowire.Number) bool {
	return it.num == num && it.typ == protowire.BytesType
}

// str returns the current field's value as a string.
func (r *checkReader) str(it *fieldIter) (string, error) {
	v := r.s[it.val.start:it.val.end]
	if !utf8.ValidString(v) {
		return "", errInvalidUTF8
	}
	return v, nil
}

func (r *checkReader) checkRequest(sp span) error {
	it := r.fields(sp)
	for it.next() {
		if it.is(checkRequestAttributes) {
			if err := r.attributes(it.val); err != nil {
				return err
			}
		}
	}
	return it.err
}

func (r *checkReader) attributes(sp span) error {
	it := r.fields(sp)
	for it.next() {
		var err error
		switch {
		case it.is(attributesSource):
			err = r.source(it.val)
		case it.is(attributesRequest):
			err = r.request(it.val)
		case it.is(attributesContextExtensions):
			var k, v string
			if k, v, err = r.mapEntry(it.val); k == "api" {
				r.apiID = v
			} else if k == "operation" {
				r.operationID = v
			}
		}
		if err != nil {
			return err
		}
	}
	return it.err
}

func (r *checkReader) source(sp span) error {
	it := r.fields(sp)
	for it.next() {
		var err error
		switch {
		case it.is(peerAddress):
			err = r.address(it.val)
		case it.is(peerPrincipal):
			r.principal, err = r.str(&it)
		case it.is(peerCertificate):
			r.certificate, err = r.str(&it)
		}
		if err != nil {
			return err
		}
	}
	return it.err
}

func (r *checkReader) address(sp span) error {
	it := r.fields(sp)
	for it.next() {
		switch {
		case it.is(addressSocketAddress):
			sub := r.fields(it.val)
			for sub.next() {
				if sub.is(socketAddressAddress) {
					var err error
					if r.sourceAddress, err = r.str(&sub); err != nil {
						return err
					}
				}
			}
			if sub.err != nil {
				return sub.err
			}
		case it.is(addressPipe), it.is(addressEnvoyInternalAddress):
			// Another member of the oneof replaces the socket address.
			r.sourceAddress = ""
		}
	}
	return it.err
}

func (r *checkReader) request(sp span) error {
	it := r.fields(sp)
	for it.next() {
		if it.is(requestHTTP) {
			if err := r.http(it.val); err != nil {
				return err
			}
		}
	}
	return it.err
}

func (r *checkReader) http(sp span) error {
	it := r.fields(sp)
	for it.next() {
		var err error
		switch {
		case it.is(httpID):
			r.id, err = r.str(&it)
		case it.is(httpMethod):
			r.method, err = r.str(&it)
		case it.is(httpPath):
			r.path, err = r.str(&it)
		case it.is(httpHost):
			r.host, err = r.str(&it)
		case it.is(httpHeaders):
			var f headerField
			if f.name, f.value, err = r.mapEntry(it.val); err == nil {
				r.appendHeader(&r.mapHeaders, f)
			}
		case it.is(httpHeaderMap):
			err = r.headerMap(it.val)
		}
		if err != nil {
			return err
		}
	}
	return it.err
}

func (r *checkReader) headerMap(sp span) error {
	it := r.fields(sp)
	for it.next() {
		if !it.is(headerMapHeaders) {
			continue
		}
		var f headerField
		var raw string
		sub := r.fields(it.val)
		for sub.next() {
			var err error
			switch {
			case sub.is(headerValueKey):
				f.name, err = r.str(&sub)
			case sub.is(headerValueValue):
				f.value, err = r.str(&sub)
			case sub.is(headerValueRawVal):
				raw = r.s[sub.val.start:sub.val.end] // bytes: not UTF-8 checked
			}
			if err != nil {
				return err
			}
		}
		if sub.err != nil {
			return sub.err
		}
		if f.value == "" {
			f.value = raw
		}
		r.appendHeader(&r.rawHeaders, f)
	}
	return it.err
}

// mapEntry reads one entry of a map<string, string>.
func (r *checkReader) mapEntry(sp span) (key, value string, err error) {
	it := r.fields(sp)
	for it.next() {
		switch {
		case it.is(mapEntryKeyField):
			key, err = r.str(&it)
		case it.is(mapEntryValueField):
			value, err = r.str(&it)
		}
		if err != nil {
			return "", "", err
		}
	}
	return key, value, it.err
}

// finish fills req from what was read, as requestFromCheck reads the
// generated message.
func (r *checkReader) finish(req *Request) {
	*req = Request{
		Frontend:          FrontendGRPC,
		Method:            r.method,
		Host:              r.host,
		Target:            r.path,
		SourcePrincipal:   r.principal,
		SourceCertificate: r.certificate,
		APIID:             r.apiID,
		OperationID:       r.operationID,
	}
	// The headers map wins over header_map, as in the generated code's
	// reading; map keys repeat only in hand-made requests, and then the
	// last one counts.
	switch {
	case len(r.mapHeaders) > 0:
		req.Headers = Headers{fields: r.mapHeaders, lastWins: true}
	case len(r.rawHeaders) > 0:
		req.Headers = Headers{fields: r.rawHeaders}
	}
	if req.Target == "" {
		req.Target = req.Headers.Get(":path")
	}
	if req.Host == "" {
		req.Host = req.Headers.Get(":authority")
	}
	// x-request-id is what Envoy's access log reports; http.id is Envoy's
	// own stream id, a fallback only.
	if req.RequestID = req.Headers.Get("x-request-id"); req.RequestID == "" {
		req.RequestID = r.id
	}
	if ip, err := netip.ParseAddr(r.sourceAddress); err == nil {
		req.Peer = ip.Unmap()
	}
}
