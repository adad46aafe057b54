package extproc

import (
	"slices"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/tollgate/tollgate/internal/authz"
)

const (
	modeSend     = extprocfilterv3.ProcessingMode_SEND
	modeSkip     = extprocfilterv3.ProcessingMode_SKIP
	modeNone     = extprocfilterv3.ProcessingMode_NONE
	modeBuffered = extprocfilterv3.ProcessingMode_BUFFERED
)

// The denials of the ext_proc front end (README, "Interceptors"), in the
// deny body Tollgate's other refusals have.
var (
	denyRequestFailed = authz.Denial{Status: 503, Code: "900930", Message: "Interceptor Failure",
		Description: "The request interceptor service failed or gave an invalid answer."}
	denyResponseFailed = authz.Denial{Status: 502, Code: "900931", Message: "Interceptor Failure",
		Description: "The response interceptor service failed or gave an invalid answer."}
	denyTooLarge = authz.Denial{Status: 413, Code: "900932", Message: "Payload Too Large",
		Description: "The request body is larger than the interceptor of this operation accepts."}
	denyPanic = authz.Denial{Status: 500, Code: "900500", Message: "Internal Server Error",
		Description: "The request could not be processed because of an internal error."}
)

// Answers shared by every stream: never changed once built, so they are
// safe to send from many streams at once.
var (
	// passRequest lets a request with nothing to do go on, and asks Envoy
	// for nothing more of it.
	passRequest = withMode(continueResponse(kindHeaders, true, nil), &extprocfilterv3.ProcessingMode{
		RequestBodyMode: modeNone, RequestTrailerMode: modeSkip,
		ResponseHeaderMode: modeSkip, ResponseBodyMode: modeNone, ResponseTrailerMode: modeSkip,
	})
	continueRequestHeaders = continueResponse(kindHeaders, true, nil)
	jsonContentType        = setHeader("content-type", "application/json")
)

func withMode(r *extprocv3.ProcessingResponse, m *extprocfilterv3.ProcessingMode) *extprocv3.ProcessingResponse {
	if r.GetImmediateResponse() == nil {
		r.ModeOverride = m
	}
	return r
}

// continueResponse answers a message of kind k of the request (or the
// response) with c, which may be nil.
func continueResponse(k kind, request bool, c *extprocv3.CommonResponse) *extprocv3.ProcessingResponse {
	r := &extprocv3.ProcessingResponse{}
	switch {
	case k == kindHeaders && request:
		r.Response = &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{Response: c}}
	case k == kindHeaders:
		r.Response = &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{Response: c}}
	case k == kindBody && request:
		r.Response = &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: c}}
	default:
		r.Response = &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{Response: c}}
	}
	if k == kindHeaders && c.GetBodyMutation() != nil {
		// A body from a headers answer replaces the message's whole body.
		c.Status = extprocv3.CommonResponse_CONTINUE_AND_REPLACE
	}
	return r
}

// immediate answers the client with a Tollgate denial.
func immediate(d authz.Denial) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{
		ImmediateResponse: &extprocv3.ImmediateResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(d.Status)},
			Headers: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{jsonContentType}},
			Body:    d.Body(),
			Details: "tollgate_" + d.Code,
		},
	}}
}

// directResponse is a request interceptor's own answer to the client: its
// responseCode (200, or 204 without a body), headersToAdd (and
// headersToReplace) and body.
func directResponse(a *answer) *extprocv3.ProcessingResponse {
	status := a.Status
	if status == 0 {
		status = 200
		if len(a.Body) == 0 {
			status = 204
		}
	}
	m := &extprocv3.HeaderMutation{}
	for _, f := range a.Headers.Replace {
		m.SetHeaders = append(m.SetHeaders, setHeader(f.Name, f.Value))
	}
	for _, f := range a.Headers.Add {
		m.SetHeaders = append(m.SetHeaders, setHeader(f.Name, f.Value))
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{
		ImmediateResponse: &extprocv3.ImmediateResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(status)},
			Headers: m,
			Body:    a.Body,
			Details: "tollgate_interceptor_direct_respond",
		},
	}}
}

// applied is c (the response policies' removals, or nil) with the answer's
// header, status and body changes.
func applied(c *extprocv3.CommonResponse, a *answer) *extprocv3.CommonResponse {
	if c == nil {
		c = &extprocv3.CommonResponse{}
	}
	c.HeaderMutation = headerMutation(c.HeaderMutation, &a.Headers)
	if a.Status != 0 {
		c.HeaderMutation = ensure(c.HeaderMutation)
		c.HeaderMutation.SetHeaders = append(c.HeaderMutation.SetHeaders, setHeader(":status", strconv.Itoa(a.Status)))
	}
	if a.HasBody {
		// Envoy keeps content-length in BUFFERED mode and leaves it to the
		// processor to make it match the new body.
		c.HeaderMutation = ensure(c.HeaderMutation)
		c.HeaderMutation.SetHeaders = append(c.HeaderMutation.SetHeaders, setHeader("content-length", strconv.Itoa(len(a.Body))))
		if len(a.Body) == 0 {
			c.BodyMutation = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_ClearBody{ClearBody: true}}
		} else {
			c.BodyMutation = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: a.Body}}
		}
	}
	return c
}

func ensure(m *extprocv3.HeaderMutation) *extprocv3.HeaderMutation {
	if m == nil {
		return &extprocv3.HeaderMutation{}
	}
	return m
}

// headerMutation adds ch to m (nil: a new one); nil if both are empty.
// Envoy removes before it sets, and sets in order: Choreo Connect's order
// of removals, replacements, additions.
func headerMutation(m *extprocv3.HeaderMutation, ch *changes) *extprocv3.HeaderMutation {
	if ch.empty() {
		return m
	}
	m = ensure(m)
	m.RemoveHeaders = append(m.RemoveHeaders, ch.Remove...)
	for _, f := range ch.Replace {
		m.SetHeaders = append(m.SetHeaders, setHeader(f.Name, f.Value))
	}
	for _, f := range ch.Add {
		m.SetHeaders = append(m.SetHeaders, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: f.Name, RawValue: []byte(f.Value)},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
		})
	}
	return m
}

// removalMutation is the response policies' removals, or nil.
func removalMutation(names []string) *extprocv3.CommonResponse {
	if len(names) == 0 {
		return nil
	}
	return &extprocv3.CommonResponse{HeaderMutation: &extprocv3.HeaderMutation{RemoveHeaders: slices.Clip(names)}}
}

func setHeader(name, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: name, RawValue: []byte(value)},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}
