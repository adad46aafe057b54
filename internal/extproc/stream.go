package extproc

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/tollgate/tollgate/internal/authz"
	"github.com/tollgate/tollgate/internal/catalog"
	"github.com/tollgate/tollgate/internal/model"
	"github.com/tollgate/tollgate/internal/policy"
)

// authzNamespace is where ext_authz puts Tollgate's dynamic metadata, which
// Envoy forwards to ext_proc when metadata_options.forwarding_namespaces
// names it.
const authzNamespace = "envoy.filters.http.ext_authz"

// stream is the state of one Process stream: one HTTP request and its
// response.
type stream struct {
	s   *Server
	ctx context.Context

	started bool // the request headers came
	snap    *model.Snapshot
	op      *catalog.Operation // nil: nothing to do for this request
	ic      *policy.Interceptors
	// removals are the operation's removeHeader response policies, which
	// ext_authz cannot apply.
	removals []string

	reqHeaders map[string]string
	inv        *invocationContext
	reqPending bool    // the request interceptor waits for the body
	direct     bool    // the request interceptor answered the client itself
	reqTrail   changes // for the request's trailers, if it has any
	icx        map[string]string

	status      int
	respHeaders map[string]string
	respPending bool // the response interceptor waits for the body
	respTrail   changes
}

// kinds of message an answer goes to
type kind uint8

const (
	kindHeaders kind = iota
	kindBody
	kindTrailers
)

// handle answers one message; nil for a message of no known kind.
func (st *stream) handle(req *extprocv3.ProcessingRequest) (resp *extprocv3.ProcessingResponse) {
	defer func() {
		if p := recover(); p != nil {
			st.s.log.Error("ext_proc message handling panicked", "panic", p, "api", st.apiID())
			if st.s.panicked != nil {
				st.s.panicked()
			}
			resp = immediate(denyPanic)
		}
	}()
	switch m := req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return st.requestHeaders(req, m.RequestHeaders)
	case *extprocv3.ProcessingRequest_RequestBody:
		return st.requestBody(m.RequestBody)
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return st.requestTrailers()
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return st.responseHeaders(m.ResponseHeaders)
	case *extprocv3.ProcessingRequest_ResponseBody:
		return st.responseBody(m.ResponseBody)
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return st.responseTrailers()
	}
	return nil
}

func (st *stream) apiID() string {
	if st.op == nil {
		return ""
	}
	return st.op.API.ID
}

func (st *stream) requestHeaders(req *extprocv3.ProcessingRequest, h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	if st.started {
		return continueRequestHeaders // a repeated message changes nothing
	}
	st.started = true
	headers := h.GetHeaders().GetHeaders()
	st.match(req.GetMetadataContext(), headers)
	if st.op != nil && st.op.Policies != nil {
		st.ic = st.op.Policies.Interceptors
		for _, r := range st.op.Policies.Response {
			if r.Kind == policy.RemoveResponseHeader {
				st.removals = append(st.removals, r.Name)
			}
		}
	}
	if st.ic == nil && len(st.removals) == 0 {
		st.op = nil
		st.s.metrics.pass.Inc()
		return passRequest
	}
	st.s.metrics.intercepted.Inc()
	eos := h.GetEndOfStream()
	mode := st.mode(eos)
	in := requestService(st.ic)
	if in == nil {
		if st.ic != nil && st.ic.Response != nil && st.ic.Response.InvocationContext {
			st.inv = st.invocation(req, headers)
		}
		return withMode(continueResponse(kindHeaders, true, nil), mode)
	}
	st.reqHeaders = headerMap(headers)
	if in.InvocationContext || st.ic.Response != nil && st.ic.Response.InvocationContext {
		st.inv = st.invocation(req, headers)
	}
	if in.Body && !eos {
		if n, ok := contentLength(st.reqHeaders); ok && n > int64(st.ic.MaxBodyBytes) {
			return st.tooLarge()
		}
		st.reqPending = true
		return withMode(continueResponse(kindHeaders, true, nil), mode)
	}
	return withMode(st.callRequest(kindHeaders, nil), mode)
}

func requestService(ic *policy.Interceptors) *policy.Interceptor {
	if ic == nil {
		return nil
	}
	return ic.Request
}

func responseService(ic *policy.Interceptors) *policy.Interceptor {
	if ic == nil {
		return nil
	}
	return ic.Response
}

// mode is what Envoy should send next (mode_override, which Envoy obeys
// when allow_mode_override is set): only what this request's interceptors
// and response policies need.
func (st *stream) mode(eos bool) *extprocfilterv3.ProcessingMode {
	m := &extprocfilterv3.ProcessingMode{
		RequestBodyMode:     modeNone,
		RequestTrailerMode:  modeSkip,
		ResponseHeaderMode:  modeSkip,
		ResponseBodyMode:    modeNone,
		ResponseTrailerMode: modeSkip,
	}
	if in := requestService(st.ic); in != nil && !eos {
		if in.Body {
			m.RequestBodyMode = modeBuffered
		}
		if in.Trailers {
			m.RequestTrailerMode = modeSend
		}
	}
	out := responseService(st.ic)
	if out != nil || len(st.removals) > 0 {
		m.ResponseHeaderMode = modeSend
	}
	if out != nil {
		if out.Body {
			m.ResponseBodyMode = modeBuffered
		}
		if out.Trailers {
			m.ResponseTrailerMode = modeSend
		}
	}
	return m
}

func (st *stream) requestBody(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	if !st.reqPending {
		return continueResponse(kindBody, true, nil)
	}
	st.reqPending = false
	if len(b.GetBody()) > st.ic.MaxBodyBytes {
		return st.tooLarge()
	}
	body := b.GetBody()
	if body == nil {
		body = []byte{}
	}
	return st.callRequest(kindBody, body)
}

func (st *stream) requestTrailers() *extprocv3.ProcessingResponse {
	if st.reqPending {
		// Envoy sent no body, so the interceptor could not be called while
		// the headers could still change.
		if resp, ok := st.skipped("request", denyRequestFailed); !ok {
			return resp
		}
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{
		RequestTrailers: &extprocv3.TrailersResponse{HeaderMutation: headerMutation(nil, &st.reqTrail)},
	}}
}

// skipped handles an interceptor that Envoy's processing mode kept from
// its body, found at the next message: closed, that message is refused
// with d; open, it goes on (ok). Either way it is logged: the Envoy config
// is wrong.
func (st *stream) skipped(flow string, d authz.Denial) (resp *extprocv3.ProcessingResponse, ok bool) {
	st.reqPending, st.respPending = false, false
	st.s.metrics.observeCall(st.apiID(), flow, resultSkipped, 0)
	st.s.log.Error("the interceptor needs the body, which Envoy did not send: set allow_mode_override, or the body mode BUFFERED, on the ext_proc filter",
		"api", st.apiID(), "operation", st.op.Path, "flow", flow)
	if st.ic.FailOpen {
		return nil, true
	}
	return immediate(d), false
}

// callRequest calls the request interceptor and answers the message of
// kind k with what it says.
func (st *stream) callRequest(k kind, body []byte) *extprocv3.ProcessingResponse {
	in := st.ic.Request
	call := requestCall{}
	if in.Headers {
		call.RequestHeaders = st.reqHeaders
	}
	if in.Trailers {
		call.RequestTrailers = map[string]string{} // Envoy sends trailers after the body
	}
	if in.Body {
		if body == nil {
			body = []byte{}
		}
		call.RequestBody = body
	}
	if in.InvocationContext {
		call.InvocationContext = st.inv
	}
	a, err := st.timed("request", func() (*answer, *callError) {
		return st.s.call(st.ctx, st.ic, in, handleRequestPath, &call, true)
	})
	switch {
	case err != nil && st.ic.FailOpen:
		return continueResponse(k, true, nil)
	case err != nil:
		return immediate(denyRequestFailed)
	case a == nil:
		return continueResponse(k, true, nil)
	case a.DirectRespond:
		st.direct = true
		return directResponse(a)
	}
	st.icx = a.Context
	st.reqTrail = a.Trailers
	return continueResponse(k, true, applied(nil, a))
}

func (st *stream) responseHeaders(h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	if st.op == nil || st.direct {
		return continueResponse(kindHeaders, false, nil)
	}
	if st.reqPending {
		// The request went upstream without its interceptor: the client
		// gets the refusal instead of the upstream's response.
		if resp, ok := st.skipped("request", denyResponseFailed); !ok {
			return resp
		}
	}
	headers := h.GetHeaders().GetHeaders()
	st.status = 0
	for _, hv := range headers {
		if hv.GetKey() == ":status" {
			st.status, _ = strconv.Atoi(headerValue(hv))
		}
	}
	removals := removalMutation(st.removals)
	out := responseService(st.ic)
	if out == nil {
		return continueResponse(kindHeaders, false, removals)
	}
	if out.Headers {
		st.respHeaders = headerMap(headers)
	}
	if out.Body && !h.GetEndOfStream() {
		if n, ok := contentLength(headerMap(headers)); ok && n > int64(st.ic.MaxBodyBytes) {
			return st.responseTooLarge(kindHeaders, removals)
		}
		st.respPending = true
		return continueResponse(kindHeaders, false, removals)
	}
	return st.callResponse(kindHeaders, nil, removals)
}

func (st *stream) responseBody(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	if !st.respPending {
		return continueResponse(kindBody, false, nil)
	}
	st.respPending = false
	if len(b.GetBody()) > st.ic.MaxBodyBytes {
		return st.responseTooLarge(kindBody, nil)
	}
	body := b.GetBody()
	if body == nil {
		body = []byte{}
	}
	return st.callResponse(kindBody, body, nil)
}

func (st *stream) responseTrailers() *extprocv3.ProcessingResponse {
	if st.respPending {
		if resp, ok := st.skipped("response", denyResponseFailed); !ok {
			return resp
		}
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{
		ResponseTrailers: &extprocv3.TrailersResponse{HeaderMutation: headerMutation(nil, &st.respTrail)},
	}}
}

// callResponse calls the response interceptor and answers the message of
// kind k with what it says, after the removals of the response policies.
func (st *stream) callResponse(k kind, body []byte, removals *extprocv3.CommonResponse) *extprocv3.ProcessingResponse {
	out := st.ic.Response
	call := responseCall{ResponseCode: st.status, InterceptorContext: st.icx}
	if out.Headers {
		call.ResponseHeaders = st.respHeaders
	}
	if out.Trailers {
		call.ResponseTrailers = map[string]string{}
	}
	if out.Body {
		if body == nil {
			body = []byte{}
		}
		call.ResponseBody = body
	}
	if out.InvocationContext {
		call.InvocationContext = st.inv
	}
	a, err := st.timed("response", func() (*answer, *callError) {
		return st.s.call(st.ctx, st.ic, out, handleResponsePath, &call, false)
	})
	switch {
	case err != nil && st.ic.FailOpen, err == nil && a == nil:
		return continueResponse(k, false, removals)
	case err != nil:
		return immediate(denyResponseFailed)
	}
	st.respTrail = a.Trailers
	return continueResponse(k, false, applied(removals, a))
}

// tooLarge refuses a request whose body is over maxBodyBytes.
func (st *stream) tooLarge() *extprocv3.ProcessingResponse {
	st.reqPending = false
	st.s.metrics.observeCall(st.apiID(), "request", resultTooLarge, 0)
	return immediate(denyTooLarge)
}

// responseTooLarge is a response whose body is over maxBodyBytes: a failed
// call.
func (st *stream) responseTooLarge(k kind, removals *extprocv3.CommonResponse) *extprocv3.ProcessingResponse {
	st.respPending = false
	st.s.metrics.observeCall(st.apiID(), "response", resultTooLarge, 0)
	if st.ic.FailOpen {
		return continueResponse(k, false, removals)
	}
	return immediate(denyResponseFailed)
}

func (st *stream) logCall(flow, result string, took time.Duration, a *answer, err *callError) {
	log := st.s.log
	if err != nil {
		log.Warn("interceptor call failed", "api", st.apiID(), "operation", st.op.Path, "flow", flow,
			"result", result, "error", err.Error(), "fail_open", st.ic.FailOpen, "request_id", st.requestID())
		return
	}
	if !log.Enabled(st.ctx, slog.LevelDebug) {
		return
	}
	attrs := []any{"api", st.apiID(), "operation", st.op.Path, "flow", flow, "result", result,
		"duration_ms", float64(took.Microseconds()) / 1000, "request_id", st.requestID()}
	if a != nil {
		attrs = append(attrs, "direct_respond", a.DirectRespond, "status", a.Status, "body_replaced", a.HasBody,
			"headers_changed", len(a.Headers.Remove)+len(a.Headers.Replace)+len(a.Headers.Add))
	}
	log.Debug("interceptor call", attrs...)
}

func (st *stream) requestID() string {
	if st.inv != nil {
		return st.inv.RequestID
	}
	return st.reqHeaders["x-request-id"]
}

// match finds the request's operation: the one ext_authz named in its
// metadata, else by host, method and path as the engine matches them.
func (st *stream) match(md *corev3.Metadata, headers []*corev3.HeaderValue) {
	st.snap = st.s.store.Load()
	if st.snap == nil {
		return
	}
	var host, method, target string
	for _, h := range headers {
		switch h.GetKey() {
		case ":authority":
			host = headerValue(h)
		case ":method":
			method = headerValue(h)
		case ":path":
			target = headerValue(h)
		}
	}
	fields := md.GetFilterMetadata()[authzNamespace].GetFields()
	apiID := fields["api"].GetStringValue()
	var api *catalog.API
	if apiID != "" {
		if api = st.snap.Catalog.API(apiID); api == nil {
			return
		}
		if opPath := fields["operation"].GetStringValue(); opPath != "" {
			if op, _ := api.Operation(opPath, method); op != nil {
				st.op = op
				return
			}
		}
	}
	p, err := catalog.CleanPath(target, st.snap.EscapedSlashes)
	if err != nil {
		return
	}
	if api != nil {
		st.op, _ = st.snap.Catalog.MatchInAPI(api, method, p.Clean)
		return
	}
	st.op, _ = st.snap.Catalog.Match(host, method, p.Clean)
}

// invocation builds the invocation context from the request headers, the
// attributes Envoy sends (request_attributes) and ext_authz's metadata.
func (st *stream) invocation(req *extprocv3.ProcessingRequest, headers []*corev3.HeaderValue) *invocationContext {
	op, api := st.op, st.op.API
	inv := &invocationContext{
		APIName: api.Name, APIVersion: api.Version, BasePath: api.BasePath, PathTemplate: op.Path,
		SupportedMethods: strings.Join(op.Methods, " "),
	}
	if len(op.Methods) == 0 {
		inv.SupportedMethods = allMethods
	}
	var forwardedFor string
	for _, h := range headers {
		switch h.GetKey() {
		case ":authority":
			inv.Vhost = hostOnly(headerValue(h))
		case ":method":
			inv.Method = headerValue(h)
		case ":path":
			inv.Path = headerValue(h)
		case ":scheme":
			inv.Scheme = headerValue(h)
		case "x-request-id":
			inv.RequestID = headerValue(h)
		case "x-forwarded-for":
			forwardedFor = headerValue(h)
		}
	}
	inv.Protocol = attribute(req, "request.protocol")
	inv.Source = forwardedFor
	if inv.Source == "" {
		inv.Source = attribute(req, "source.address")
	}
	inv.Destination = attribute(req, "destination.address")
	fields := req.GetMetadataContext().GetFilterMetadata()[authzNamespace].GetFields()
	if ct := fields["credential_type"].GetStringValue(); ct != "" && ct != "none" {
		inv.AuthenticationContext = &authenticationContext{TokenType: tokenType(ct), KeyType: "PRODUCTION"}
	}
	return inv
}

const allMethods = "GET POST PUT PATCH DELETE HEAD OPTIONS"

// tokenType names a credential type as Choreo Connect does.
func tokenType(ct string) string {
	switch ct {
	case "jwt":
		return "JWT"
	case "apiKey":
		return "API Key"
	}
	return ct
}

func attribute(req *extprocv3.ProcessingRequest, name string) string {
	for _, s := range req.GetAttributes() {
		if v, ok := s.GetFields()[name]; ok {
			return v.GetStringValue()
		}
	}
	return ""
}

func hostOnly(authority string) string {
	if i := strings.LastIndexByte(authority, ':'); i >= 0 && !strings.Contains(authority[i:], "]") {
		return authority[:i]
	}
	return authority
}

func headerValue(h *corev3.HeaderValue) string {
	if raw := h.GetRawValue(); len(raw) > 0 {
		return string(raw)
	}
	return h.GetValue()
}

// headerMap is the contract's form of a header list: one entry per name,
// repeated values joined with commas (cookies with semicolons).
func headerMap(headers []*corev3.HeaderValue) map[string]string {
	m := make(map[string]string, len(headers))
	for _, h := range headers {
		k, v := h.GetKey(), headerValue(h)
		if prev, ok := m[k]; ok {
			sep := ","
			if k == "cookie" {
				sep = "; "
			}
			v = prev + sep + v
		}
		m[k] = v
	}
	return m
}

func contentLength(headers map[string]string) (int64, bool) {
	v, ok := headers["content-length"]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}
