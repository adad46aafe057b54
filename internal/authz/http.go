package authz

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// Headers the HTTP front end reads or writes besides the identity headers.
const (
	// nginx auth_request passes the original request in these.
	HeaderOriginalURI    = "X-Original-URI"
	HeaderOriginalMethod = "X-Original-Method"
	// Envoy's http_service removes the headers listed here from the
	// upstream request (a comma-separated list).
	HeaderHeadersToRemove = "X-Envoy-Auth-Headers-To-Remove"
	// nginx discards the body of an auth_request response, so the deny
	// body is repeated in this header for an error_page to return.
	HeaderErrorBody = "X-Tollgate-Error"
)

// HTTPHandler is the HTTP front end: one pipeline, two request shapes.
// Envoy's http_service sends the original request itself (method, path,
// headers); nginx auth_request sends X-Original-URI and X-Original-Method.
// 200 allows, with the identity headers as response headers; anything
// else is the deny, with the same status and JSON body as over gRPC.
type HTTPHandler struct {
	engine *Engine
}

// NewHTTPHandler returns the HTTP front end for e.
func NewHTTPHandler(e *Engine) *HTTPHandler { return &HTTPHandler{engine: e} }

func (h *HTTPHandler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	start := h.engine.Now()
	r, nginx := requestFromHTTP(req)
	d := h.engine.Decide(req.Context(), &r)
	writeHTTP(w, &d, nginx)
	h.engine.Observe(&r, &d, start)
}

func requestFromHTTP(req *http.Request) (r Request, nginx bool) {
	r = Request{
		Frontend:  FrontendHTTP,
		Method:    req.Method,
		Host:      req.Host,
		Target:    req.RequestURI,
		Headers:   Headers{h: req.Header},
		RequestID: req.Header.Get("X-Request-Id"),
	}
	if uri := req.Header.Get(HeaderOriginalURI); uri != "" {
		nginx = true
		r.Target = uri
		r.Method = strings.ToUpper(req.Header.Get(HeaderOriginalMethod))
		if r.Method == "" {
			r.Method = http.MethodGet
		}
	}
	if host, _, err := net.SplitHostPort(req.RemoteAddr); err == nil {
		if ip, err := netip.ParseAddr(host); err == nil {
			r.Peer = ip.Unmap()
		}
	}
	return r, nginx
}

func writeHTTP(w http.ResponseWriter, d *Decision, nginx bool) {
	out := w.Header()
	if d.Allowed {
		d.UpstreamHeaders(func(name, value string) { out[http.CanonicalHeaderKey(name)] = []string{value} })
		if len(d.RemoveHeaders) > 0 {
			out.Set(HeaderHeadersToRemove, strings.Join(d.RemoveHeaders, ","))
		}
		setRateLimitHeaders(out, &d.RateLimit)
		w.WriteHeader(http.StatusOK)
		return
	}
	den := &d.Denial
	body := den.Body()
	out.Set("Content-Type", "application/json")
	out.Set("Content-Length", strconv.Itoa(len(body)))
	if den.Challenge != "" {
		out.Set("WWW-Authenticate", den.Challenge)
	}
	if den.RetryAfter > 0 {
		out.Set("Retry-After", strconv.FormatInt(den.RetryAfter, 10))
	}
	setRateLimitHeaders(out, &d.RateLimit)
	if nginx {
		out.Set(HeaderErrorBody, string(body))
	}
	w.WriteHeader(den.Status)
	_, _ = w.Write(body)
}

func setRateLimitHeaders(h http.Header, rl *RateLimitHeaders) {
	if rl.Limit == 0 {
		return
	}
	h.Set("RateLimit-Limit", strconv.FormatInt(rl.Limit, 10))
	h.Set("RateLimit-Remaining", strconv.FormatInt(rl.Remaining, 10))
	h.Set("RateLimit-Reset", strconv.FormatInt(rl.Reset, 10))
}
