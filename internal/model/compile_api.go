package model

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/tollgate/tollgate/internal/catalog"
	"github.com/tollgate/tollgate/internal/policy"
	"github.com/tollgate/tollgate/internal/ratelimit"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}

func (c *compiler) apis(in []*tollgatev1.Api) []*catalog.API {
	var out []*catalog.API
	seen := map[string]bool{}
	// ops by canonical full template and host, to find operations no
	// request could tell apart
	byTemplate := map[templateHost][]opRef{}
	c.apiIDsUnsure = c.unsure("apis") || c.in.Partial
	for i, a := range in {
		a = orEmpty(a)
		path := fmt.Sprintf("apis[%d]", i)
		if c.unsure(path + ".id") {
			c.apiIDsUnsure = true
		}
		if c.ID(path+".id", a.GetId()) {
			if seen[a.GetId()] {
				c.Addf(path+".id", "duplicate API id %q", a.GetId())
			}
			seen[a.GetId()] = true
		}
		c.Text(path+".name", a.GetName())
		api := &catalog.API{
			ID:                 a.GetId(),
			Name:               cmp.Or(a.GetName(), a.GetId()),
			Version:            a.GetVersion(),
			BasePath:           cmp.Or(a.GetBasePath(), "/"),
			ForwardCredentials: a.GetForwardCredentials(),
			APIKeyHeader:       DefaultAPIKeyHeader,
			Blocked:            a.GetBlocked(),
		}
		base, err := catalog.ParseTemplate(api.BasePath)
		if err != nil {
			c.Addf(path+".basePath", "%v", err)
		}
		api.BasePath = base.String()
		api.Hosts = c.hosts(path+".hosts", a.GetHosts())
		if a.GetApiKey() != nil {
			api.APIKeyHeader = strings.ToLower(a.GetApiKey().GetHeader())
			api.APIKeyQuery = a.GetApiKey().GetQuery()
			if api.APIKeyHeader != "" && !ValidHeaderName(api.APIKeyHeader) {
				c.Addf(path+".apiKey.header", "not a valid header name: %q", a.GetApiKey().GetHeader())
			}
		}
		if len(a.GetSecurity()) == 0 {
			c.Addf(path+".security", "required: list the accepted schemes, e.g. [apiKey], or [none] for a public API")
		} else {
			api.Security = c.security(path+".security", a.GetSecurity())
		}
		if len(a.GetOperations()) == 0 {
			c.Addf(path+".operations", "an API needs at least one operation (path: /** matches everything under the base path)")
		}
		p, missing := c.policy(path+".rateLimit", a.GetRateLimit())
		if p != nil {
			api.RateLimit = ratelimit.Bind(p, ratelimit.ScopeAPI, a.GetId())
		}
		anonymous, anonymousMissing := c.policy(path+".anonymousRateLimit", a.GetAnonymousRateLimit())
		api.AnonymousRateLimit = anonymous
		api.Held = missing || anonymousMissing
		for j, aud := range a.GetAudiences() {
			if aud == "" {
				c.Addf(fmt.Sprintf("%s.audiences[%d]", path, j), "an audience cannot be empty")
			}
		}
		api.Audiences = a.GetAudiences()
		switch a.GetMethodOverride() {
		case "", "remove":
		case "deny":
			api.MethodOverride = catalog.OverrideDeny
		default:
			c.Addf(path+".methodOverride", "want remove or deny, got %q", a.GetMethodOverride())
		}
		apiPolicies := c.policySet(path+".policies", a.GetPolicies(), api)
		for j, o := range a.GetOperations() {
			o = orEmpty(o)
			opPath := fmt.Sprintf("%s.operations[%d]", path, j)
			op := c.operation(opPath, o, api, base)
			if op == nil {
				continue
			}
			p, missing := c.policy(opPath+".rateLimit", o.GetRateLimit())
			if p != nil {
				op.RateLimit = ratelimit.Bind(p, ratelimit.ScopeOperation, operationID(a.GetId(), op))
			}
			api.Held = api.Held || missing
			op.Policies = policy.Merge(apiPolicies, c.policySet(opPath+".policies", o.GetPolicies(), api))
			c.checkRewriteVars(opPath+".path", op.Policies, op)
			c.checkOverlap(byTemplate, opPath, o.GetPath(), op)
			api.Operations = append(api.Operations, op)
		}
		api.CORS = c.cors(path+".cors", a.GetCors(), api)
		if api.UsesScheme(catalog.SchemeAPIKey) && api.APIKeyHeader == "" && api.APIKeyQuery == "" {
			c.Addf(path+".apiKey", "apiKey security needs a header or a query parameter to read the key from")
		}
		if api.Held {
			c.held++
		}
		out = append(out, api)
	}
	return out
}

// operationID names an operation's rate-limit counters by what the
// operation matches (its template and methods), not by its place in the
// list, so that reordering operations moves no counter. The digest keeps
// template braces out of the Redis Cluster hash tag the id sits in.
func operationID(apiID string, op *catalog.Operation) string {
	methods := slices.Sorted(slices.Values(op.Methods))
	sum := sha256.Sum256([]byte(op.Template.Canonical() + " " + strings.Join(methods, ",")))
	return apiID + ":" + hex.EncodeToString(sum[:8])
}

type opRef struct {
	path string
	op   *catalog.Operation
}

// templateHost is where two operations could collide: the same canonical
// template on the same configured host.
type templateHost struct{ template, host string }

// checkOverlap reports op if an earlier operation has its template, one
// of its hosts and one of its methods, then records it. Operations are
// indexed by template and host, so APIs told apart by host alone (many
// tenants, the same paths) cost nothing to check against each other.
func (c *compiler) checkOverlap(byTemplate map[templateHost][]opRef, opPath, written string, op *catalog.Operation) {
	template := op.Template.Canonical()
	reported := false
	for _, h := range op.API.Hosts {
		key := templateHost{template, h}
		for _, other := range byTemplate[key] {
			if !reported && other.op != op && sharesMethod(other.op, op) { // a host listed twice meets op itself
				c.Addf(opPath+".path", "%s matches the same requests as %s (same path, method and host)", written, other.path)
				reported = true
			}
		}
		byTemplate[key] = append(byTemplate[key], opRef{opPath, op})
	}
}

// sharesMethod reports whether two operations accept a method in common
// (no methods: every method).
func sharesMethod(a, b *catalog.Operation) bool {
	if len(a.Methods) == 0 || len(b.Methods) == 0 {
		return true
	}
	for _, m := range a.Methods {
		if slices.Contains(b.Methods, m) {
			return true
		}
	}
	return false
}

func (c *compiler) operation(path string, o *tollgatev1.Operation, api *catalog.API, base catalog.Template) *catalog.Operation {
	op := &catalog.Operation{API: api, Path: o.GetPath(), Scopes: o.GetScopes(), Security: api.Security}
	t, err := catalog.ParseTemplate(o.GetPath())
	if err != nil {
		c.Addf(path+".path", "%v", err)
		return nil
	}
	op.Path = t.String()
	if op.Template, err = base.Join(t); err != nil {
		c.Addf(path+".path", "%v", err)
		return nil
	}
	for k, m := range o.GetMethods() {
		up := strings.ToUpper(m)
		if !slices.Contains(httpMethods, up) {
			c.Addf(fmt.Sprintf("%s.methods[%d]", path, k), "unknown HTTP method %q", m)
			continue
		}
		if slices.Contains(op.Methods, up) {
			c.Addf(fmt.Sprintf("%s.methods[%d]", path, k), "method %s listed twice", up)
			continue
		}
		op.Methods = append(op.Methods, up)
	}
	c.OperationScopes(path+".scopes", o.GetScopes())
	if len(o.GetSecurity()) > 0 {
		op.Security = c.security(path+".security", o.GetSecurity())
	}
	return op
}

func (c *compiler) security(path string, items []string) catalog.Security {
	sec, err := catalog.ParseSecurity(items)
	if err != nil {
		c.Addf(path, "%v", err)
		return nil
	}
	return sec
}

func (c *compiler) hosts(path string, in []string) []string {
	if len(in) == 0 {
		return []string{"*"}
	}
	out := make([]string, 0, len(in))
	for i, h := range in {
		h = strings.ToLower(h)
		p, ok := catalog.ParseHostPattern(h)
		name, _, _ := strings.Cut(h, ":")
		if !ok || !strings.HasPrefix(h, "[") && !validHostPattern(strings.TrimSuffix(name, ".")) {
			c.Addf(fmt.Sprintf("%s[%d]", path, i), "want a host name, *.domain or *, optionally with :port, got %q", in[i])
			continue
		}
		if p.HasPort() && c.in.Settings.StripPort {
			c.Addf(fmt.Sprintf("%s[%d]", path, i), "hostMatching.stripPort drops request ports, so a host with a port never matches")
			continue
		}
		out = append(out, h)
	}
	return out
}

func validHostPattern(h string) bool {
	if h == "*" {
		return true
	}
	h = strings.TrimPrefix(h, "*.")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			ch := label[i]
			if !('a' <= ch && ch <= 'z' || '0' <= ch && ch <= '9' || ch == '-' || ch == '_') {
				return false
			}
		}
	}
	return true
}
