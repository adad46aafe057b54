package authz

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/internal/model"
	"github.com/tollgate/tollgate/internal/policy"
)

// Headers the HTTP front end reads or writes besides the identity headers.
const (
	// nginx auth_request passes the original request in these.
	HeaderOriginalURI    = "X-Original-URI"
	HeaderOriginalMethod = "X-Original-Method"
	// Traefik's ForwardAuth and Caddy's forward_auth pass it in these.
	HeaderForwardedMethod = "X-Forwarded-Method"
	HeaderForwardedHost   = "X-Forwarded-Host"
	HeaderForwardedURI    = "X-Forwarded-Uri"
	HeaderForwardedProto  = "X-Forwarded-Proto"
	// Envoy's http_service removes the headers listed here from the
	// upstream request (a comma-separated list).
	HeaderHeadersToRemove = "X-Envoy-Auth-Headers-To-Remove"
	// nginx discards the body of an auth_request response, so the deny
	// body is repeated in this header for an error_page to return.
	HeaderErrorBody = "X-Tollgate-Error"
	// When request policies change the path, query or method, the
	// request as the upstream must receive it (for nginx's proxy_pass
	// and proxy_method).
	HeaderUpstreamURI    = "X-Tollgate-Upstream-Uri"
	HeaderUpstreamMethod = "X-Tollgate-Upstream-Method"
	// nginx's auth_request takes every 2xx for an allow: an answered
	// preflight is sent to it as a 403 marked with this header (value
	// 204), for the error_page to answer 204.
	HeaderPreflight = "X-Tollgate-Preflight"
)

// HTTPHandler is the HTTP front end: one pipeline, three request shapes,
// chosen by the config (httpFrontEnd.shape), never by the request. Envoy's
// http_service sends the original request itself (method, path, headers);
// nginx auth_request sends X-Original-URI and X-Original-Method; Traefik's
// ForwardAuth and Caddy's forward_auth send X-Forwarded-Method, -Host,
// -Uri and -Proto. 200 allows, with the identity headers as response
// headers; anything else is the deny, with the same status and JSON body as
// over gRPC.
type HTTPHandler struct {
	engine *Engine
}

// NewHTTPHandler returns the HTTP front end for e.
func NewHTTPHandler(e *Engine) *HTTPHandler { return &HTTPHandler{engine: e} }

func (h *HTTPHandler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	start := h.engine.Now()
	shape := h.engine.config.Load().HTTPShape
	r := requestFromHTTP(req, shape)
	d := h.engine.DecideSafely(req.Context(), &r)
	writeHTTP(w, &r, &d, shape)
	h.engine.Observe(&r, &d, start)
}

// requestFromHTTP reads the original request in the configured shape. A
// shape whose headers are missing or repeated gives an unreadable request
// (400): the proxy is not set up as the config says, or a client is trying
// to choose what is checked.
func requestFromHTTP(req *http.Request, shape model.HTTPShape) Request {
	r := Request{
		Frontend:  FrontendHTTP,
		Method:    req.Method,
		Host:      req.Host,
		Target:    req.RequestURI,
		Headers:   Headers{h: req.Header},
		RequestID: req.Header.Get("X-Request-Id"),
	}
	if host, _, err := net.SplitHostPort(req.RemoteAddr); err == nil {
		if ip, err := netip.ParseAddr(host); err == nil {
			r.Peer = ip.Unmap()
		}
	}
	one := func(name string) string {
		vs := req.Header.Values(name)
		switch {
		case r.Unreadable != "":
		case len(vs) == 0 || vs[0] == "":
			r.Unreadable = "The proxy did not send " + name + "."
		case len(vs) > 1:
			r.Unreadable = "The request carries " + name + " more than once."
		default:
			return vs[0]
		}
		return ""
	}
	switch shape {
	case model.ShapeNginx:
		r.Target = one(HeaderOriginalURI)
		r.Method = one(HeaderOriginalMethod)
	case model.ShapeForwardAuth:
		r.Method = one(HeaderForwardedMethod)
		r.Host = one(HeaderForwardedHost)
		r.Target = one(HeaderForwardedURI)
		if len(req.Header.Values(HeaderForwardedProto)) > 1 && r.Unreadable == "" {
			r.Unreadable = "The request carries " + HeaderForwardedProto + " more than once."
		}
	}
	return r
}

func writeHTTP(w http.ResponseWriter, r *Request, d *Decision, shape model.HTTPShape) {
	out := w.Header()
	if d.Allowed {
		d.UpstreamHeaders(func(name, value string) { out[http.CanonicalHeaderKey(name)] = []string{value} })
		for _, h := range d.Mutation.SetHeaders {
			out[http.CanonicalHeaderKey(h.Name)] = []string{h.Value}
		}
		if len(d.RemoveHeaders)+len(d.Mutation.RemoveHeaders) > 0 && shape == model.ShapeEnvoy {
			remove := strings.Join(d.RemoveHeaders, ",")
			if len(d.Mutation.RemoveHeaders) > 0 {
				remove = strings.Trim(remove+","+strings.Join(d.Mutation.RemoveHeaders, ","), ",")
			}
			out.Set(HeaderHeadersToRemove, remove)
		}
		if uri := upstreamURI(r, d); uri != "" {
			out.Set(HeaderUpstreamURI, uri)
		}
		if d.Mutation.Method != "" {
			out.Set(HeaderUpstreamMethod, d.Mutation.Method)
		}
		for _, h := range d.ResponseHeaders {
			if h.Append {
				out.Add(h.Name, h.Value)
			} else {
				out.Set(h.Name, h.Value)
			}
		}
		setRateLimitHeaders(out, &d.RateLimit)
		w.WriteHeader(http.StatusOK)
		return
	}
	den := &d.Denial
	if den.NoBody && shape == model.ShapeForwardAuth {
		// Traefik and Caddy take every 2xx for an allow and would send
		// the preflight upstream: their own CORS handling must answer it.
		refusal := denyCORS
		refusal.Description = "Preflights are answered by the proxy's CORS settings, before forward authentication."
		den = &refusal
	}
	for _, h := range den.Headers {
		out.Set(h.Name, h.Value)
	}
	if den.NoBody {
		if shape == model.ShapeNginx {
			out.Set(HeaderPreflight, strconv.Itoa(den.Status))
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.WriteHeader(den.Status)
		return
	}
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
	if shape == model.ShapeNginx {
		out.Set(HeaderErrorBody, string(body))
	}
	w.WriteHeader(den.Status)
	_, _ = w.Write(body)
}

// upstreamURI is the path and query the upstream must receive, when the
// policies change them or a query parameter is to be removed; "" when the
// request goes as sent.
func upstreamURI(r *Request, d *Decision) string {
	m := &d.Mutation
	switch {
	case m.Path != "":
		return m.Path
	case len(m.SetQuery) > 0 || len(d.RemoveQuery) > 0:
		return policy.RewriteQuery(r.Target, m.SetQuery, d.RemoveQuery)
	}
	return ""
}

func setRateLimitHeaders(h http.Header, rl *RateLimitHeaders) {
	if rl.Limit == 0 {
		return
	}
	h.Set("RateLimit-Limit", strconv.FormatInt(rl.Limit, 10))
	h.Set("RateLimit-Remaining", strconv.FormatInt(rl.Remaining, 10))
	h.Set("RateLimit-Reset", strconv.FormatInt(rl.Reset, 10))
}
