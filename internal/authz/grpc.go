package authz

import (
	"context"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/internal/policy"
)

// GRPCServer is the ext_authz v3 Authorization service: what Envoy's
// ext_authz filter, an Istio CUSTOM provider or the edge gateway calls.
type GRPCServer struct {
	engine *Engine
}

// NewGRPCServer returns the gRPC front end for e.
func NewGRPCServer(e *Engine) *GRPCServer { return &GRPCServer{engine: e} }

// Register adds the Authorization service to g. The server must use
// Codec, which reads Check requests as WireCheckRequest.
func (s *GRPCServer) Register(g grpc.ServiceRegistrar) { g.RegisterService(&authorizationService, s) }

// authorizationService is envoy.service.auth.v3.Authorization as the
// generated code declares it, except that Check takes a WireCheckRequest.
var authorizationService = grpc.ServiceDesc{
	ServiceName: "envoy.service.auth.v3.Authorization",
	HandlerType: (*interface {
		CheckWire(context.Context, *WireCheckRequest) (*authv3.CheckResponse, error)
	})(nil),
	Methods:  []grpc.MethodDesc{{MethodName: "Check", Handler: checkHandler}},
	Metadata: "envoy/service/auth/v3/external_auth.proto", // for server reflection
}

func checkHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new(WireCheckRequest)
	if err := dec(in); err != nil {
		// Only transport failures get here (a broken stream, or a message
		// over limits.maxRequestBytes, which gRPC refuses before it is
		// read): the codec turns everything it reads into a decision.
		return nil, err
	}
	s := srv.(*GRPCServer) // Register is the only way in
	if interceptor == nil {
		return s.CheckWire(ctx, in)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: authv3.Authorization_Check_FullMethodName}
	return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
		return s.CheckWire(ctx, req.(*WireCheckRequest))
	})
}

// CheckWire answers envoy.service.auth.v3.Authorization/Check. A deny is
// a normal response, never a gRPC error: Envoy applies it as written.
func (s *GRPCServer) CheckWire(ctx context.Context, in *WireCheckRequest) (*authv3.CheckResponse, error) {
	start := s.engine.Now()
	r := in.Request()
	d := s.engine.DecideSafely(ctx, r)
	out := checkResponse(&d)
	s.engine.Observe(r, &d, start)
	return out, nil
}

// Check answers a CheckRequest built in process (an embedding program, a
// test) the way it answers one from the network: encoded, then read.
func (s *GRPCServer) Check(ctx context.Context, in *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	msg, err := proto.Marshal(in)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "encoding CheckRequest: %v", err)
	}
	var w WireCheckRequest
	w.read(msg)
	return s.CheckWire(ctx, &w)
}

// Codec is the gRPC server's codec: protobuf, except that a Check request
// is read by WireCheckRequest, and that every CheckRequest gets a
// CheckResponse: one that does not decode is answered with a 400 denial,
// one that does not encode is replaced by a 500 denial — never an RPC
// error, which Envoy's failure_mode_allow would turn into an allow.
func Codec() encoding.CodecV2 { return codec{proto: encoding.GetCodecV2(grpcproto.Name)} }

type codec struct{ proto encoding.CodecV2 }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	out, err := c.proto.Marshal(v)
	if _, isCheck := v.(*authv3.CheckResponse); err != nil && isCheck {
		d := Decision{Denial: denyInternal}
		return c.proto.Marshal(checkResponse(&d))
	}
	return out, err
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	w, ok := v.(*WireCheckRequest)
	if !ok {
		return c.proto.Unmarshal(data, v)
	}
	if len(data) == 1 {
		w.read(data[0].ReadOnlyData()) // copied by Unmarshal
		return nil
	}
	w.read(data.Materialize())
	return nil
}

func (codec) Name() string { return grpcproto.Name }

var (
	statusOK          = &rpcstatus.Status{Code: 0}
	headerContentType = header("content-type", "application/json")
	overwriteOrAdd    = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
)

func header(name, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: name, Value: value},
		AppendAction: overwriteOrAdd,
	}
}

// checkResponse renders a decision as Envoy expects it.
func checkResponse(d *Decision) *authv3.CheckResponse {
	out := &authv3.CheckResponse{}
	setDynamicMetadata(out, d)
	if !d.Allowed {
		den := &d.Denial
		headers := []*corev3.HeaderValueOption{headerContentType}
		body := ""
		if den.NoBody {
			headers = headers[:0]
		} else {
			body = string(den.Body())
		}
		for _, h := range den.Headers {
			headers = append(headers, header(h.Name, h.Value))
		}
		if den.Challenge != "" {
			headers = append(headers, header("www-authenticate", den.Challenge))
		}
		if den.RetryAfter > 0 {
			headers = append(headers, header("retry-after", strconv.FormatInt(den.RetryAfter, 10)))
		}
		headers = appendRateLimitHeaders(headers, &d.RateLimit)
		out.Status = &rpcstatus.Status{Code: den.GRPCCode(), Message: den.Message}
		out.HttpResponse = &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(den.Status)},
			Headers: headers,
			Body:    body,
		}}
		return out
	}
	ok := &authv3.OkHttpResponse{
		HeadersToRemove:         d.RemoveHeaders,
		QueryParametersToRemove: d.RemoveQuery,
		Headers:                 upstreamHeaderOptions(d),
		ResponseHeadersToAdd:    appendRateLimitHeaders(nil, &d.RateLimit),
	}
	if len(d.Mutation.SetQuery) > 0 || len(d.ResponseHeaders) > 0 {
		addPolicies(ok, d)
	}
	setPolicyHeaders(ok, &d.Mutation)
	out.Status = statusOK
	out.HttpResponse = &authv3.CheckResponse_OkResponse{OkResponse: ok}
	return out
}

// upstreamHeaderOptions renders the headers to set upstream. The messages
// are allocated in three batches rather than two per header: this runs on
// every allowed request.
func upstreamHeaderOptions(d *Decision) []*corev3.HeaderValueOption {
	n := len(d.Extra)
	for _, v := range d.Upstream {
		if v != "" {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	opts := make([]corev3.HeaderValueOption, n)
	values := make([]corev3.HeaderValue, n)
	out := make([]*corev3.HeaderValueOption, n)
	i := 0
	add := func(name, value string) {
		values[i].Key, values[i].Value = name, value
		opts[i].Header, opts[i].AppendAction = &values[i], overwriteOrAdd
		out[i] = &opts[i]
		i++
	}
	d.UpstreamHeaders(add)
	return out
}

// Field numbers of the messages setPolicyHeaders writes.
const (
	okHeaders            protowire.Number = 2 // OkHttpResponse.headers (HeaderValueOption)
	okHeadersToRemove    protowire.Number = 5 // OkHttpResponse.headers_to_remove
	optionHeader         protowire.Number = 1 // HeaderValueOption.header (HeaderValue)
	optionAppendAction   protowire.Number = 3 // HeaderValueOption.append_action
	overwriteIfExistsAdd                  = uint64(corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD)
)

// setPolicyHeaders gives the response the request policies' headers (the
// path and method as the :path and :method pseudo-headers) and header
// removals in wire form: more elements of OkHttpResponse.headers and
// headers_to_remove, after Tollgate's own, which protobuf emits verbatim (as setDynamicMetadata does; in this
// process they are unknown fields). One buffer instead of three messages
// per header, on every request of an operation with policies.
func setPolicyHeaders(ok *authv3.OkHttpResponse, m *policy.Upstream) {
	size := 0
	each := func(fn func(name, value string)) {
		for _, h := range m.SetHeaders {
			fn(h.Name, h.Value)
		}
		if m.Path != "" {
			fn(":path", m.Path)
		}
		if m.Method != "" {
			fn(":method", m.Method)
		}
	}
	each(func(name, value string) {
		_, opt := policyHeaderSizes(name, value)
		size += protowire.SizeTag(okHeaders) + protowire.SizeBytes(opt)
	})
	for _, name := range m.RemoveHeaders {
		size += protowire.SizeTag(okHeadersToRemove) + protowire.SizeBytes(len(name))
	}
	if size == 0 {
		return
	}
	b := make([]byte, 0, size)
	each(func(name, value string) {
		hv, opt := policyHeaderSizes(name, value)
		b = protowire.AppendTag(b, okHeaders, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(opt))
		b = protowire.AppendTag(b, optionHeader, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(hv))
		b = protowire.AppendTag(b, headerValueKey, protowire.BytesType)
		b = protowire.AppendString(b, name)
		b = protowire.AppendTag(b, headerValueValue, protowire.BytesType)
		b = protowire.AppendString(b, value)
		b = protowire.AppendTag(b, optionAppendAction, protowire.VarintType)
		b = protowire.AppendVarint(b, overwriteIfExistsAdd)
	})
	for _, name := range m.RemoveHeaders {
		b = protowire.AppendTag(b, okHeadersToRemove, protowire.BytesType)
		b = protowire.AppendString(b, name)
	}
	if prev := ok.ProtoReflect().GetUnknown(); len(prev) > 0 {
		b = append(prev[:len(prev):len(prev)], b...)
	}
	ok.ProtoReflect().SetUnknown(b)
}

// policyHeaderSizes are the wire sizes of one header's HeaderValue and
// HeaderValueOption.
func policyHeaderSizes(name, value string) (headerValue, option int) {
	headerValue = protowire.SizeTag(headerValueKey) + protowire.SizeBytes(len(name)) + protowire.SizeTag(headerValueValue) + protowire.SizeBytes(len(value))
	option = protowire.SizeTag(optionHeader) + protowire.SizeBytes(headerValue) + protowire.SizeTag(optionAppendAction) + protowire.SizeVarint(overwriteIfExistsAdd)
	return headerValue, option
}

// addPolicies renders what the policies change besides the upstream
// headers (setPolicyHeaders): query parameters set, and the response's
// headers.
func addPolicies(ok *authv3.OkHttpResponse, d *Decision) {
	m := &d.Mutation
	for _, q := range m.SetQuery {
		ok.QueryParametersToSet = append(ok.QueryParametersToSet, &corev3.QueryParameter{Key: q.Name, Value: q.Value})
	}
	for _, h := range d.ResponseHeaders {
		opt := header(h.Name, h.Value)
		if h.Append {
			opt.AppendAction = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
		}
		ok.ResponseHeadersToAdd = append(ok.ResponseHeadersToAdd, opt)
	}
}

// appendRateLimitHeaders adds ratelimit-limit, -remaining and -reset for
// the client, when a limit applied.
func appendRateLimitHeaders(dst []*corev3.HeaderValueOption, rl *RateLimitHeaders) []*corev3.HeaderValueOption {
	if rl.Limit == 0 {
		return dst
	}
	return append(dst,
		header("ratelimit-limit", strconv.FormatInt(rl.Limit, 10)),
		header("ratelimit-remaining", strconv.FormatInt(rl.Remaining, 10)),
		header("ratelimit-reset", strconv.FormatInt(rl.Reset, 10)))
}
