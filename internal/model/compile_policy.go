package model

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/catalog"
	"github.com/tollgate/tollgate/internal/policy"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// Defaults of the policies (README, "Policies").
const (
	DefaultRuleCode       = "900910"
	DefaultRuleStatus     = 403
	maxCORSMaxAge         = 24 * time.Hour
	maxInterceptorTimeout = time.Minute
)

// notForPolicies are headers no policy may set, remove or rename: they
// frame or route the request, or they are Tollgate's own (the identity
// headers; claim headers and the backend JWT are checked against the
// snapshot's reserved headers).
var notForPolicies = []string{"host", "content-length", "transfer-encoding", "connection", "te", "upgrade",
	"keep-alive", "proxy-connection", "trailer"}

// controlPrefixes are headers that speak to the proxy: Tollgate's answers
// to nginx and forward-auth proxies (x-tollgate-upstream-uri and the
// like) and Envoy's own (x-envoy-auth-headers-to-remove and the like). A
// policy that could write one would steer the proxy.
var controlPrefixes = []string{"x-tollgate-", "x-envoy-"}

func isControlHeader(name string) bool {
	for _, p := range controlPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// policySet compiles one Policies message. api is the API it belongs to
// (for its credential headers).
func (c *compiler) policySet(path string, in *tollgatev1.Policies, api *catalog.API) *policy.Set {
	if in == nil {
		return nil
	}
	s := &policy.Set{}
	for i, p := range in.GetRequest() {
		if op, ok := c.requestPolicy(fmt.Sprintf("%s.request[%d]", path, i), orEmpty(p), api); ok {
			s.Request = append(s.Request, op)
		}
	}
	for i, p := range in.GetResponse() {
		if op, ok := c.responsePolicy(fmt.Sprintf("%s.response[%d]", path, i), orEmpty(p)); ok {
			s.Response = append(s.Response, op)
		}
	}
	for i, r := range in.GetRules() {
		if rule := c.rule(fmt.Sprintf("%s.rules[%d]", path, i), orEmpty(r)); rule != nil {
			s.Rules = append(s.Rules, rule)
		}
	}
	if in.GetInterceptors() != nil {
		s.Interceptors = c.interceptors(path+".interceptors", in.GetInterceptors())
	}
	if s.Empty() {
		return nil
	}
	s.Name()
	return s
}

// exactlyOne reports a policy item that sets no field or more than one.
func (c *compiler) exactlyOne(path string, set int, kinds string) bool {
	if set != 1 {
		c.Addf(path, "set exactly one of %s", kinds)
		return false
	}
	return true
}

func count(conds ...bool) int {
	n := 0
	for _, b := range conds {
		if b {
			n++
		}
	}
	return n
}

func (c *compiler) requestPolicy(path string, p *tollgatev1.RequestPolicy, api *catalog.API) (policy.RequestOp, bool) {
	n := count(p.SetHeader != nil, p.RemoveHeader != nil, p.RenameHeader != nil, p.AddQuery != nil,
		p.RemoveQuery != nil, p.RewritePath != "", p.RewriteMethod != "")
	if !c.exactlyOne(path, n, "setHeader, removeHeader, renameHeader, addQuery, removeQuery, rewritePath, rewriteMethod") {
		return policy.RequestOp{}, false
	}
	switch {
	case p.SetHeader != nil:
		name, ok := c.policyHeader(path+".setHeader.name", p.SetHeader.GetName())
		ok = c.headerValue(path+".setHeader.value", p.SetHeader.GetValue()) && ok
		return policy.RequestOp{Kind: policy.SetHeader, Name: name, Value: p.SetHeader.GetValue()}, ok
	case p.RemoveHeader != nil:
		name, ok := c.policyHeader(path+".removeHeader.name", p.RemoveHeader.GetName())
		return policy.RequestOp{Kind: policy.RemoveHeader, Name: name}, ok
	case p.RenameHeader != nil:
		from, ok := c.policyHeader(path+".renameHeader.from", p.RenameHeader.GetFrom())
		to, ok2 := c.policyHeader(path+".renameHeader.to", p.RenameHeader.GetTo())
		if ok2 && (to == "authorization" || to == api.APIKeyHeader) {
			c.Addf(path+".renameHeader.to", "%s carries credentials: a rename would pass a client's value as one (use setHeader for a backend's credential)", to)
			ok2 = false
		}
		if ok && !api.ForwardCredentials && (from == "authorization" || from == api.APIKeyHeader) {
			c.Addf(path+".renameHeader.from", "%s carries the caller's credential, which the API does not forward (forwardCredentials)", from)
			ok = false
		}
		if ok && ok2 && from == to {
			c.Addf(path+".renameHeader.to", "the same header as from")
			ok = false
		}
		return policy.RequestOp{Kind: policy.RenameHeader, Name: from, Value: to}, ok && ok2
	case p.AddQuery != nil:
		ok := c.queryName(path+".addQuery.name", p.AddQuery.GetName())
		if n := p.AddQuery.GetName(); ok && (n == catalog.MethodOverrideQuery || n == api.APIKeyQuery) {
			c.Addf(path+".addQuery.name", "%s is a method override or the API's key parameter, which Tollgate removes", n)
			ok = false
		}
		if v := p.AddQuery.GetValue(); strings.IndexFunc(v, func(r rune) bool { return !isQueryValueChar(r) }) >= 0 {
			c.Addf(path+".addQuery.value", "want letters, digits and -._~!$'()*+,;:@/ only, got %q", v)
			ok = false
		}
		return policy.RequestOp{Kind: policy.AddQuery, Name: p.AddQuery.GetName(), Value: p.AddQuery.GetValue()}, ok
	case p.RemoveQuery != nil:
		ok := c.queryName(path+".removeQuery.name", p.RemoveQuery.GetName())
		return policy.RequestOp{Kind: policy.RemoveQuery, Name: p.RemoveQuery.GetName()}, ok
	case p.RewritePath != "":
		t, err := parseRewrite(p.RewritePath)
		if err != nil {
			c.Addf(path+".rewritePath", "%v", err)
			return policy.RequestOp{}, false
		}
		return policy.RequestOp{Kind: policy.RewritePath, Path: t}, true
	default:
		m := strings.ToUpper(p.RewriteMethod)
		if !slices.Contains(httpMethods, m) {
			c.Addf(path+".rewriteMethod", "unknown HTTP method %q", p.RewriteMethod)
			return policy.RequestOp{}, false
		}
		return policy.RequestOp{Kind: policy.RewriteMethod, Value: m}, true
	}
}

func (c *compiler) responsePolicy(path string, p *tollgatev1.ResponsePolicy) (policy.ResponseOp, bool) {
	n := count(p.SetHeader != nil, p.AddHeader != nil, p.RemoveHeader != nil)
	if !c.exactlyOne(path, n, "setHeader, addHeader, removeHeader") {
		return policy.ResponseOp{}, false
	}
	var kind policy.ResponseKind
	var field string
	var nv *tollgatev1.NameValue
	switch {
	case p.SetHeader != nil:
		kind, field, nv = policy.SetResponseHeader, "setHeader", p.SetHeader
	case p.AddHeader != nil:
		kind, field, nv = policy.AddResponseHeader, "addHeader", p.AddHeader
	default:
		kind, field, nv = policy.RemoveResponseHeader, "removeHeader", &tollgatev1.NameValue{Name: p.RemoveHeader.GetName()}
	}
	name := strings.ToLower(nv.GetName())
	ok := true
	switch {
	case !ValidHeaderName(name):
		c.Addf(path+"."+field+".name", "not a valid header name: %q", nv.GetName())
		ok = false
	case slices.Contains(notForPolicies, name):
		c.Addf(path+"."+field+".name", "%s frames the response; no policy may change it", name)
		ok = false
	case isControlHeader(name), slices.Contains(IdentityHeaderNames, name), c.reserved[name]:
		// The HTTP front end's answer holds the response's headers and the
		// upstream's in one set: these would be taken for Tollgate's own.
		c.Addf(path+"."+field+".name", "%s is Tollgate's or the proxy's own header; no policy may set it", name)
		ok = false
	}
	if kind != policy.RemoveResponseHeader {
		ok = c.headerValue(path+"."+field+".value", nv.GetValue()) && ok
	}
	return policy.ResponseOp{Kind: kind, Name: name, Value: nv.GetValue()}, ok
}

// policyHeader checks a header a request policy names.
func (c *compiler) policyHeader(path, h string) (string, bool) {
	name := strings.ToLower(h)
	switch {
	case !ValidHeaderName(name):
		c.Addf(path, "not a valid header name: %q", h)
	case slices.Contains(notForPolicies, name):
		c.Addf(path, "%s frames or routes the request; no policy may change it", name)
	case slices.Contains(IdentityHeaderNames, name), c.reserved[name]:
		c.Addf(path, "%s is set by Tollgate alone (an identity, claim or backend JWT header)", name)
	case isControlHeader(name):
		c.Addf(path, "%s speaks to the proxy; no policy may set, remove or rename it", name)
	case slices.Contains(catalog.MethodOverrideHeaders, name):
		c.Addf(path, "%s overrides the method Tollgate authorized; no policy may change it (use rewriteMethod)", name)
	default:
		return name, true
	}
	return name, false
}

// headerValue checks a header value: visible characters, spaces and tabs
// inside, nothing that would end the header.
func (c *compiler) headerValue(path, v string) bool {
	if v != strings.TrimSpace(v) {
		c.Addf(path, "must not start or end with white space")
		return false
	}
	for i := 0; i < len(v); i++ {
		if ch := v[i]; ch < 0x20 && ch != '\t' || ch == 0x7f {
			c.Addf(path, "must not hold control characters")
			return false
		}
	}
	return true
}

func (c *compiler) queryName(path, name string) bool {
	if name == "" || strings.IndexFunc(name, func(r rune) bool { return !isUnreserved(r) }) >= 0 {
		c.Addf(path, "want letters, digits and -._~ only, got %q", name)
		return false
	}
	return true
}

func isUnreserved(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("-._~", r)
}

func isQueryValueChar(r rune) bool { return isUnreserved(r) || strings.ContainsRune("!$'()*+,;:@/", r) }

// parseRewrite reads a rewritePath: literal path characters and
// {variables}, starting with /.
func parseRewrite(s string) (policy.PathTemplate, error) {
	var t policy.PathTemplate
	if !strings.HasPrefix(s, "/") {
		return t, fmt.Errorf("must start with /, got %q", s)
	}
	for rest := s; rest != ""; {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			open = len(rest)
		}
		if lit := rest[:open]; lit != "" {
			for i := 0; i < len(lit); i++ {
				if ch := lit[i]; ch != '/' && !isRewriteChar(ch) {
					return t, fmt.Errorf("%q: character %q is not allowed in a path", s, ch)
				}
				if lit[i] == '%' {
					if i+2 >= len(lit) || !isHex(lit[i+1]) || !isHex(lit[i+2]) {
						return t, fmt.Errorf("%q: %% must start an escape of two hex digits", s)
					}
					if e := strings.ToLower(lit[i+1 : i+3]); e == "2e" || e == "2f" || e == "5c" {
						return t, fmt.Errorf("%q: no encoded dot, slash or backslash", s)
					}
				}
			}
			if strings.Contains(lit, "//") || slices.Contains(strings.Split(lit, "/"), "..") || slices.Contains(strings.Split(lit, "/"), ".") {
				return t, fmt.Errorf("%q: no empty or dot segments", s)
			}
			t.Parts = append(t.Parts, policy.PathPart{Text: lit})
		}
		if open == len(rest) {
			break
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return t, fmt.Errorf("%q: unbalanced {", s)
		}
		name := rest[open+1 : open+end]
		if !validVarName(name) {
			return t, fmt.Errorf("%q: {%s} is not a variable name", s, name)
		}
		t.Parts = append(t.Parts, policy.PathPart{Var: name})
		rest = rest[open+end+1:]
	}
	return t, nil
}

func isHex(ch byte) bool {
	return '0' <= ch && ch <= '9' || 'a' <= ch && ch <= 'f' || 'A' <= ch && ch <= 'F'
}

func isRewriteChar(ch byte) bool {
	return 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || strings.IndexByte("-._~%!$&'()*+,=:@", ch) >= 0
}

func validVarName(n string) bool {
	if n == "" || '0' <= n[0] && n[0] <= '9' {
		return false
	}
	for i := 0; i < len(n); i++ {
		if ch := n[i]; !(ch == '_' || 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9') {
			return false
		}
	}
	return true
}

// checkRewriteVars reports a rewritePath naming a variable the operation's
// template does not have.
func (c *compiler) checkRewriteVars(path string, s *policy.Set, op *catalog.Operation) {
	if s == nil {
		return
	}
	for _, r := range s.Response {
		for _, q := range s.Request {
			if (q.Kind == policy.SetHeader && q.Name == r.Name) || (q.Kind == policy.RenameHeader && q.Value == r.Name) {
				c.Addf(path, "%s is set by both a request and a response policy: the HTTP front end's answer holds both in one set of headers", r.Name)
			}
		}
	}
	params := op.Template.Params()
	for _, r := range s.Request {
		for _, p := range r.Path.Parts {
			if p.Var != "" && !slices.Contains(params, p.Var) {
				c.Addf(path, "rewritePath names {%s}, which %s does not have", p.Var, op.Template.String())
			}
		}
	}
}

func (c *compiler) rule(path string, r *tollgatev1.Rule) *policy.Rule {
	if r.GetExpr() == "" {
		c.Addf(path+".expr", "required: a CEL condition")
		return nil
	}
	rule, err := policy.CompileRule(r.GetExpr())
	if err != nil {
		c.Addf(path+".expr", "%v", err)
		return nil
	}
	rule.Code = DefaultRuleCode
	if code := r.GetDenyCode(); code != "" {
		if len(code) > 32 || strings.IndexFunc(code, func(r rune) bool { return !isUnreserved(r) }) >= 0 {
			c.Addf(path+".denyCode", "want up to 32 letters, digits and -._~, got %q", code)
			return nil
		}
		rule.Code = code
	}
	rule.Status = DefaultRuleStatus
	if st := r.GetStatus(); st != 0 {
		if st < 400 || st > 499 {
			c.Addf(path+".status", "want 400 to 499, got %d", st)
			return nil
		}
		rule.Status = int(st)
	}
	c.Text(path+".message", r.GetMessage())
	rule.Message = r.GetMessage()
	return rule
}

// includes an interceptor may ask for, per flow
var (
	requestIncludes  = []string{"requestHeaders", "requestBody", "requestTrailers", "invocationContext"}
	responseIncludes = []string{"responseHeaders", "responseBody", "responseTrailers", "invocationContext"}
)

func (c *compiler) interceptors(path string, in *tollgatev1.Interceptors) *policy.Interceptors {
	out := &policy.Interceptors{Timeout: policy.DefaultInterceptorTimeout, MaxBodyBytes: policy.DefaultMaxBodyBytes}
	if in.GetRequest() == nil && in.GetResponse() == nil {
		c.Addf(path, "name a request or a response interceptor, or leave interceptors out")
	}
	if in.GetRequest() != nil {
		out.Request = c.interceptor(path+".request", in.GetRequest(), requestIncludes)
	}
	if in.GetResponse() != nil {
		out.Response = c.interceptor(path+".response", in.GetResponse(), responseIncludes)
	}
	if d := in.GetTimeout(); d != nil {
		out.Timeout = d.AsDuration()
		if out.Timeout <= 0 || out.Timeout > maxInterceptorTimeout {
			c.Addf(path+".timeout", "want more than 0 and at most %s", maxInterceptorTimeout)
		}
	}
	switch in.GetFailureMode() {
	case "", "closed":
	case "open":
		out.FailOpen = true
	default:
		c.Addf(path+".failureMode", "want closed or open, got %q", in.GetFailureMode())
	}
	if n := in.GetMaxBodyBytes(); n != 0 {
		if n < 0 || n > policy.MaxMaxBodyBytes {
			c.Addf(path+".maxBodyBytes", "want 1 to %d", policy.MaxMaxBodyBytes)
		}
		out.MaxBodyBytes = int(n)
	}
	return out
}

func (c *compiler) interceptor(path string, in *tollgatev1.InterceptorService, known []string) *policy.Interceptor {
	out := &policy.Interceptor{}
	u, err := url.Parse(in.GetUrl())
	switch {
	case in.GetUrl() == "":
		c.Addf(path+".url", "required: the service's http:// or https:// address")
	case err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.User != nil ||
		u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "":
		c.Addf(path+".url", "want http:// or https:// with a host and no path, got %q", in.GetUrl())
	default:
		out.URL = u.Scheme + "://" + u.Host
	}
	includes := in.GetIncludes()
	if len(includes) == 0 {
		includes = []string{known[0], "invocationContext"}
	}
	for i, inc := range includes {
		switch {
		case !slices.Contains(known, inc):
			c.Addf(fmt.Sprintf("%s.includes[%d]", path, i), "want one of %s, got %q", strings.Join(known, ", "), inc)
		case strings.HasSuffix(inc, "Headers"):
			out.Headers = true
		case strings.HasSuffix(inc, "Body"):
			out.Body = true
		case strings.HasSuffix(inc, "Trailers"):
			out.Trailers = true
		default:
			out.InvocationContext = true
		}
	}
	return out
}

func (c *compiler) cors(path string, in *tollgatev1.Cors, api *catalog.API) *policy.CORS {
	if in == nil {
		return nil
	}
	out := &policy.CORS{Credentials: in.GetAllowCredentials()}
	if len(in.GetAllowOrigins()) == 0 {
		c.Addf(path+".allowOrigins", "required: the origins that may call, or [\"*\"]")
	}
	for i, o := range in.GetAllowOrigins() {
		ipath := fmt.Sprintf("%s.allowOrigins[%d]", path, i)
		switch {
		case o == "*" && out.Credentials:
			c.Addf(ipath, "\"*\" cannot go with allowCredentials (browsers refuse it): list the origins")
		case o == "*":
			out.AnyOrigin = true
		case strings.Contains(o, "*"):
			p, ok := policy.OriginPatternOf(o)
			if !ok {
				c.Addf(ipath, "a pattern is scheme://*.domain[:port], got %q", o)
				continue
			}
			out.Patterns = append(out.Patterns, p)
		default:
			u, err := url.Parse(o)
			if err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil || u.Fragment != "" {
				c.Addf(ipath, "an origin is scheme://host[:port] with no path, got %q", o)
				continue
			}
			if port := u.Port(); strings.HasSuffix(u.Host, ":") || u.Scheme == "https" && port == "443" || u.Scheme == "http" && port == "80" {
				c.Addf(ipath, "browsers send an origin without its default port, or an empty one: write %s://%s", u.Scheme, u.Hostname())
				continue
			}
			out.Origins = append(out.Origins, strings.ToLower(o))
		}
	}
	for i, m := range in.GetAllowMethods() {
		up := strings.ToUpper(m)
		if !slices.Contains(httpMethods, up) {
			c.Addf(fmt.Sprintf("%s.allowMethods[%d]", path, i), "unknown HTTP method %q", m)
			continue
		}
		out.Methods = append(out.Methods, up)
	}
	if len(in.GetAllowMethods()) == 0 {
		out.Methods = operationMethods(api)
	}
	out.Headers = c.corsHeaders(path+".allowHeaders", in.GetAllowHeaders(), out.Credentials)
	out.Expose = c.corsHeaders(path+".exposeHeaders", in.GetExposeHeaders(), out.Credentials)
	if d := in.GetMaxAge(); d != nil {
		out.MaxAge = d.AsDuration()
		if out.MaxAge < 0 || out.MaxAge > maxCORSMaxAge {
			c.Addf(path+".maxAge", "want 0 to %s", maxCORSMaxAge)
		}
	}
	out.Finish()
	return out
}

func (c *compiler) corsHeaders(path string, in []string, credentials bool) []string {
	var out []string
	for i, h := range in {
		name := strings.ToLower(h)
		switch {
		case name == "*" && credentials:
			c.Addf(fmt.Sprintf("%s[%d]", path, i), "\"*\" cannot go with allowCredentials (browsers read it as a header named *): list the headers")
		case name != "*" && !ValidHeaderName(name):
			c.Addf(fmt.Sprintf("%s[%d]", path, i), "not a valid header name: %q", h)
		default:
			out = append(out, name)
		}
	}
	return out
}

// operationMethods are the methods of an API's operations, for CORS's
// allowMethods when it is not given: every method but CONNECT and TRACE
// when an operation accepts any.
func operationMethods(api *catalog.API) []string {
	var out []string
	for _, op := range api.Operations {
		if len(op.Methods) == 0 {
			return []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}
		}
		for _, m := range op.Methods {
			if !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	return out
}
