package authz

import (
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/tollgate/tollgate/internal/model"
	"github.com/tollgate/tollgate/internal/policy"
)

// Deny codes of the policies (README, "Policies").
var (
	// denyCORS refuses a preflight whose origin, method or headers the
	// API's CORS settings do not allow.
	denyCORS = Denial{Status: 403, Code: "900920", Message: "CORS request refused",
		Description: "The API does not allow this cross-origin request."}
	// answerPreflight is an allowed preflight's answer: 204, no body, the
	// CORS headers.
	answerPreflight = Denial{Status: 204, Code: "preflight", Message: "No Content", NoBody: true}
)

// policyHeaders lets the policies read the request's headers: a header
// sent in several lines reads as its lines joined, as RFC 9110 says they
// mean.
type policyHeaders struct{ hs *Headers }

func (p policyHeaders) Get(name string) (string, bool) {
	v, lines := p.hs.Lookup(name)
	if lines > 1 {
		v = p.hs.Joined(name)
	}
	return v, lines > 0
}

// Map returns the headers by lower-case name, lines joined by commas.
func (hs Headers) Map() map[string]string {
	out := make(map[string]string, len(hs.fields)+len(hs.h))
	for _, f := range hs.fields {
		if prev, ok := out[f.name]; ok && !hs.lastWins {
			out[f.name] = prev + "," + f.value
			continue
		}
		out[f.name] = f.value
	}
	for name, vs := range hs.h {
		out[strings.ToLower(name)] = strings.Join(vs, ",")
	}
	return out
}

// preflight answers a CORS preflight for an API with CORS settings, found
// by the method the browser asks for. It reports false, leaving the check
// as it was, when the request is not one: it is then decided as any
// OPTIONS request.
func (e *Engine) preflight(c *check) (*Denial, bool) {
	if c.req.Method != "OPTIONS" {
		return nil, false
	}
	hdr := policyHeaders{&c.req.Headers}
	origin, method, ok := policy.IsPreflight(c.req.Method, hdr)
	if !ok {
		return nil, false
	}
	c.method = method
	denial := e.match(c)
	c.method = c.req.Method
	if denial != nil || c.op == nil || c.api.CORS == nil {
		c.api, c.op, c.path = nil, nil, ""
		return nil, false
	}
	cors := c.api.CORS
	allowOrigin, ok := cors.AllowOrigin(origin)
	requested, _ := hdr.Get("access-control-request-headers")
	d := denyCORS
	switch {
	case !ok:
		d.Description = "The API does not allow requests from this origin."
	case !cors.AllowsMethod(method):
		d.Description = "The API does not allow this method from other origins."
	case !cors.AllowsHeaders(requested):
		d.Description = "The API does not allow these headers from other origins."
	default:
		d = answerPreflight
		cors.PreflightHeaders(allowOrigin, func(name, value string) { d.Headers = append(d.Headers, Header{name, value}) })
	}
	return &d, true
}

// corsHeaders are the CORS headers of a real response, for a request
// from an origin the API allows (nil otherwise).
func corsHeaders(c *check) []Header {
	if c.api == nil || c.api.CORS == nil {
		return nil
	}
	origin, lines := c.req.Headers.Lookup("origin")
	if lines != 1 {
		return nil
	}
	allowOrigin, ok := c.api.CORS.AllowOrigin(origin)
	if !ok {
		return nil
	}
	var out []Header
	c.api.CORS.ResponseHeaders(allowOrigin, func(name, value string) { out = append(out, Header{name, value}) })
	return out
}

// ruleInputs are reused: CEL keeps the input it is given, so each would
// otherwise be allocated.
var ruleInputs = sync.Pool{New: func() any { return new(policy.RuleInput) }}

// rules checks the operation's CEL rules (after authorization): the first
// that does not hold refuses the request with its code.
func (e *Engine) rules(c *check, id *Identity) *Denial {
	set := c.op.Policies
	if set == nil || len(set.Rules) == 0 {
		return nil
	}
	in := ruleInputs.Get().(*policy.RuleInput)
	defer func() {
		*in = policy.RuleInput{} // nothing of the request stays in the pool
		ruleInputs.Put(in)
	}()
	*in = policy.RuleInput{
		Method: c.req.Method, Path: c.path, Host: c.req.Host, Target: c.req.Target,
		Headers:    &c.req.Headers,
		Subject:    id.Subject,
		Principal:  id.Principal,
		Credential: id.Credential,
		Scopes:     id.Scopes,
		Claims:     id.Claims,
		Now:        c.now,
	}
	if id.Application != nil {
		in.Application = id.Application.ID
	}
	for _, r := range set.Rules {
		if err := r.Eval(in); err != nil {
			d := Denial{Status: r.Status, Code: r.Code, Message: http.StatusText(r.Status),
				Description: r.Message}
			if d.Description == "" {
				d.Description = "The request does not meet a rule of this API."
			}
			return &d
		}
	}
	return nil
}

// denyUncarried refuses an allowed request whose policies the proxy in
// front of the HTTP front end cannot carry out: letting it through
// unchanged would be another request than the one the policies make.
var denyUncarried = Denial{Status: 500, Code: "900942", Message: "Internal Server Error",
	Description: "The operation's policies change the request in a way this proxy cannot carry out."}

// uncarried checks what the request policies change against what the
// HTTP front end's proxy can do: Envoy's http_service copies and removes
// headers, Traefik and Caddy only copy them, and none of them can change
// the path, the query or the method (the gRPC front end and nginx can).
func uncarried(c *check, d *Decision) *Denial {
	if c.req.Frontend != FrontendHTTP || !d.Mutation.Changed() {
		return nil
	}
	m := &d.Mutation
	shape := c.snap.HTTPShape
	switch {
	case shape == model.ShapeNginx:
		return nil
	case m.Path != "" || m.Method != "" || len(m.SetQuery) > 0 || len(m.RemoveQuery) > 0:
		den := denyUncarried
		den.Description = "The operation's policies change the path, query or method, which only Envoy's gRPC ext_authz and nginx carry out."
		return &den
	case shape == model.ShapeForwardAuth && len(m.RemoveHeaders) > 0:
		den := denyUncarried
		den.Description = "The operation's policies remove or rename headers, which forward authentication cannot carry out."
		return &den
	}
	return nil
}

// applyPolicies runs the request and response policies of an allowed
// request (step 5, after the identity headers).
func (e *Engine) applyPolicies(c *check, d *Decision) {
	set := c.op.Policies
	if set == nil {
		return
	}
	d.Policies = set.Names
	if len(set.Request) > 0 {
		d.Mutation = set.Plan.Apply(policy.Request{
			Headers:     policyHeaders{&c.req.Headers},
			Target:      c.req.Target,
			Vars:        &c.op.Template,
			Path:        c.path,
			RemoveQuery: d.RemoveQuery,
		})
		d.RemoveHeaders = withoutSet(d.RemoveHeaders, d.Mutation.SetHeaders)
		switch {
		case d.Mutation.Path != "":
			d.RemoveQuery = nil // the new path's query has them removed
		case len(d.Mutation.RemoveQuery) > 0:
			d.RemoveQuery = append(d.RemoveQuery[:len(d.RemoveQuery):len(d.RemoveQuery)], d.Mutation.RemoveQuery...)
		}
	}
	for _, r := range set.Response {
		if r.Kind != policy.RemoveResponseHeader { // removals are the ext_proc filter's
			d.ResponseHeaders = append(d.ResponseHeaders, policy.ResponseHeader{Name: r.Name, Value: r.Value, Append: r.Kind == policy.AddResponseHeader})
		}
	}
}

// withoutSet drops from remove the headers a policy sets (a credential
// header replaced by a backend's), so that the proxy is never told to
// both set and remove one. remove may be shared: it is copied if changed.
func withoutSet(remove []string, set []policy.Header) []string {
	isSet := func(name string) bool {
		for _, h := range set {
			if h.Name == name {
				return true
			}
		}
		return false
	}
	if len(set) == 0 || !slices.ContainsFunc(remove, isSet) {
		return remove
	}
	return slices.DeleteFunc(slices.Clone(remove), isSet)
}
