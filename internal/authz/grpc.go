package authz

import (
	"context"
	"net/netip"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
)

// GRPCServer is the ext_authz v3 Authorization service: what Envoy's
// ext_authz filter, an Istio CUSTOM provider or the edge gateway calls.
type GRPCServer struct {
	authv3.UnimplementedAuthorizationServer
	engine *Engine
}

// NewGRPCServer returns the gRPC front end for e.
func NewGRPCServer(e *Engine) *GRPCServer { return &GRPCServer{engine: e} }

// Check implements envoy.service.auth.v3.Authorization/Check. A deny is a
// normal response, never a gRPC error: Envoy applies it as written.
func (s *GRPCServer) Check(ctx context.Context, in *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	start := s.engine.Now()
	r := requestFromCheck(in)
	d := s.engine.Decide(ctx, &r)
	out := checkResponse(&d)
	s.engine.Observe(&r, &d, start)
	return out, nil
}

// requestFromCheck reads a CheckRequest without copying headers. Missing
// fields read as empty, so a malformed request ends as a 404, not a panic.
func requestFromCheck(in *authv3.CheckRequest) Request {
	attrs := in.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	r := Request{
		Frontend: FrontendGRPC,
		Method:   h.GetMethod(),
		Host:     h.GetHost(),
		Target:   h.GetPath(),
		Headers:  Headers{m: h.GetHeaders()},
	}
	if r.Headers.m == nil {
		r.Headers.raw = h.GetHeaderMap().GetHeaders()
	}
	if r.Headers.m == nil && r.Headers.raw == nil {
		r.Headers.m = map[string]string{} // reads as "no headers"
	}
	if r.Target == "" {
		r.Target = r.Headers.Get(":path")
	}
	if r.Host == "" {
		r.Host = r.Headers.Get(":authority")
	}
	// x-request-id is what Envoy's access log reports; http.id is Envoy's
	// own stream id, a fallback only.
	r.RequestID = r.Headers.Get("x-request-id")
	if r.RequestID == "" {
		r.RequestID = h.GetId()
	}
	if ip, err := netip.ParseAddr(attrs.GetSource().GetAddress().GetSocketAddress().GetAddress()); err == nil {
		r.Peer = ip.Unmap()
	}
	r.SourcePrincipal = attrs.GetSource().GetPrincipal()
	r.SourceCertificate = attrs.GetSource().GetCertificate()
	if ext := attrs.GetContextExtensions(); ext != nil {
		r.APIID, r.OperationID = ext["api"], ext["operation"]
	}
	return r
}

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
			Body:    string(den.Body()),
		}}
		return out
	}
	ok := &authv3.OkHttpResponse{
		HeadersToRemove:         d.RemoveHeaders,
		QueryParametersToRemove: d.RemoveQuery,
		Headers:                 upstreamHeaderOptions(d),
		ResponseHeadersToAdd:    appendRateLimitHeaders(nil, &d.RateLimit),
	}
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
	d.UpstreamHeaders(func(name, value string) {
		values[i].Key, values[i].Value = name, value
		opts[i].Header, opts[i].AppendAction = &values[i], overwriteOrAdd
		out[i] = &opts[i]
		i++
	})
	return out
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
