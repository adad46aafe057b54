package config

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tollgate/tollgate/internal/catalog"
	"github.com/tollgate/tollgate/internal/keys"
	"github.com/tollgate/tollgate/internal/ratelimit"
)

// Default listener addresses (README, "Config reference").
const (
	DefaultGRPCAddr  = "127.0.0.1:8081"
	DefaultHTTPAddr  = "127.0.0.1:8082"
	DefaultAdminAddr = "127.0.0.1:8083"
)

// DefaultAPIKeyHeader is where callers send API keys unless an API says
// otherwise. Keys in query strings end up in access logs, so the query
// parameter is opt-in.
const DefaultAPIKeyHeader = "apikey"

var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}

// compiler validates a File and builds the Snapshot, collecting every
// problem with its YAML path.
type compiler struct {
	lines    map[string]int
	problems Problems
	// decodeFailed reports whether a path (or a container of it) failed to
	// decode. An id that failed to decode makes references to ids of its
	// kind unverifiable, so "unknown" is not reported for them.
	decodeFailed func(path string) bool
	appIDsUnsure bool
	apiIDsUnsure bool

	policies  map[string]*ratelimit.Policy
	stripPort bool // hostMatching.stripPort

	baseDir string    // relative file paths are taken from here
	now     time.Time // for dropping expired revocations
}

func (c *compiler) addf(path, format string, args ...any) {
	c.problems = append(c.problems, Problem{Path: path, Line: c.lineOf(path), Msg: fmt.Sprintf(format, args...)})
}

// lineOf is the line of path, or of the nearest enclosing mapping or list
// when path itself is not in the file (a required key left out).
func (c *compiler) lineOf(path string) int {
	for {
		if line, ok := c.lines[path]; ok {
			return line
		}
		i := strings.LastIndexAny(path, ".[")
		if i <= 0 {
			return 0
		}
		path = path[:i]
	}
}

func (c *compiler) compile(f *File) *Snapshot {
	snap := &Snapshot{
		Listen:          c.listen(f.Listen),
		ClientIP:        c.clientIP(f.ClientIP),
		Applications:    map[string]*catalog.Application{},
		ClientIDs:       map[string]*catalog.Application{},
		ReservedHeaders: map[string]bool{},
		Principals:      keys.NewPrincipalIndex(),
		Certificates:    map[keys.Digest]*catalog.Application{},
	}
	snap.MTLS = c.mtls(f.MTLS)
	c.policies = c.rateLimitPolicies(f.RateLimitPolicies)
	snap.RateLimitPolicies = c.policies
	snap.RateLimit = c.rateLimitStore(f.RateLimit)
	snap.Analytics = c.analytics(f.Analytics)
	snap.PProf = f.Admin.PProf
	snap.Tracing = c.tracing(f.Tracing)
	c.issuers(f.Issuers, snap)
	snap.Revoked = c.revoked(f.RevokedTokens)
	snap.BackendJWT = c.backendJWT(f.BackendJWT, snap)

	snap.HTTPShape = c.httpShape(f.HTTPFrontEnd)
	var err error
	if snap.EscapedSlashes, err = catalog.ParseEscapedSlashes(f.Paths.EscapedSlashes); err != nil {
		c.addf("paths.escapedSlashes", "%v, got %q", err, f.Paths.EscapedSlashes)
	}
	snap.Limits = c.limits(f.Limits)
	c.stripPort = f.HostMatching.StripPort
	apis := c.apis(f.APIs)
	snap.Catalog = catalog.New(apis, catalog.Options{StripPort: f.HostMatching.StripPort})
	snap.AccessLogPeers = c.prefixes("analytics.accessLogPeers", f.Analytics.AccessLogPeers)

	c.appIDsUnsure = c.decodeFailed("applications")
	for i, a := range f.Applications {
		path := fmt.Sprintf("applications[%d]", i)
		if c.decodeFailed(path + ".id") {
			c.appIDsUnsure = true
			continue
		}
		if !c.checkID(path+".id", a.ID) {
			continue
		}
		if _, dup := snap.Applications[a.ID]; dup {
			c.addf(path+".id", "duplicate application id %q", a.ID)
			continue
		}
		c.checkText(path+".name", a.Name)
		c.checkText(path+".owner", a.Owner)
		app := &catalog.Application{ID: a.ID, Name: cmp.Or(a.Name, a.ID), Owner: a.Owner}
		if p := c.policy(path+".rateLimit", a.RateLimit); p != nil {
			app.RateLimit = ratelimit.Bind(p, ratelimit.ScopeApplication, a.ID)
		}
		snap.Applications[a.ID] = app
		for j, p := range a.Principals {
			if err := snap.Principals.Add(p, app); err != nil {
				c.addf(fmt.Sprintf("%s.principals[%d]", path, j), "%v", err)
			}
		}
		for j, fp := range a.Certificates {
			fpPath := fmt.Sprintf("%s.certificates[%d]", path, j)
			d, err := keys.ParseFingerprint(fp)
			switch other := snap.Certificates[d]; {
			case err != nil:
				c.addf(fpPath, "want the certificate's SHA-256 fingerprint: %v", err)
			case other != nil:
				c.addf(fpPath, "certificate already belongs to application %q", other.ID)
			default:
				snap.Certificates[d] = app
			}
		}
		for j, id := range a.ClientIDs {
			idPath := fmt.Sprintf("%s.clientIds[%d]", path, j)
			switch other := snap.ClientIDs[id]; {
			case id == "":
				c.addf(idPath, "a client id cannot be empty")
			case other != nil:
				c.addf(idPath, "client id %q already belongs to application %q", id, other.ID)
			default:
				c.checkText(idPath, id)
				snap.ClientIDs[id] = app
			}
		}
	}

	c.subscriptions(f.Subscriptions, snap)
	snap.APIKeys = c.apiKeys(f.APIKeys, snap.Applications)

	switch f.Unmatched {
	case "", "deny":
	case "allow":
		snap.UnmatchedAllow = true
	default:
		c.addf("unmatched", "want deny or allow, got %q", f.Unmatched)
	}
	snap.ReservedHeaderList = reservedHeaderList(snap.ReservedHeaders)
	return snap
}

// identityHeaderNames are the headers the decision sets upstream; a
// client's copy never reaches the upstream.
var identityHeaderNames = []string{"x-consumer-id", "x-consumer-name", "x-authenticated-userid", "x-authenticated-scope", "x-credential-type"}

func reservedHeaderList(extra map[string]bool) []string {
	out := slices.Clone(identityHeaderNames)
	for h := range extra {
		out = append(out, h)
	}
	slices.Sort(out[len(identityHeaderNames):])
	return out
}

func (c *compiler) httpShape(in HTTPFrontEnd) HTTPShape {
	for i, name := range shapeNames {
		if in.Shape == name {
			return HTTPShape(i)
		}
	}
	if in.Shape == "" {
		return ShapeEnvoy
	}
	c.addf("httpFrontEnd.shape", "want envoy, nginx or forwardAuth, got %q", in.Shape)
	return ShapeEnvoy
}

// Defaults of the limits section.
const (
	DefaultMaxRequestBytes      = 1 << 20
	DefaultMaxConcurrentStreams = 256
)

func (c *compiler) limits(in Limits) LimitSettings {
	l := LimitSettings{
		MaxRequestBytes:      int(cmp.Or(in.MaxRequestBytes, DefaultMaxRequestBytes)),
		MaxConcurrentStreams: DefaultMaxConcurrentStreams,
		MemoryLimit:          cmp.Or(in.MemoryLimit, "auto"),
	}
	if l.MaxRequestBytes < 16<<10 || l.MaxRequestBytes > 64<<20 {
		c.addf("limits.maxRequestBytes", "between 16KiB and 64MiB")
	}
	if in.MaxConcurrentStreams != 0 {
		if in.MaxConcurrentStreams < 1 || in.MaxConcurrentStreams > 100000 {
			c.addf("limits.maxConcurrentStreams", "between 1 and 100000")
		}
		l.MaxConcurrentStreams = uint32(max(in.MaxConcurrentStreams, 1))
	}
	switch l.MemoryLimit {
	case "auto", "off":
	default:
		n, err := parseByteSize(l.MemoryLimit)
		if err != nil || n < 32<<20 {
			c.addf("limits.memoryLimit", "want auto, off or a size of at least 32MiB such as 512MiB, got %q", l.MemoryLimit)
		}
		l.MemoryLimitBytes = n
	}
	return l
}

func (c *compiler) listen(l Listen) Listen {
	out := Listen{
		GRPC:      cmp.Or(l.GRPC, DefaultGRPCAddr),
		HTTP:      cmp.Or(l.HTTP, DefaultHTTPAddr),
		Admin:     cmp.Or(l.Admin, DefaultAdminAddr),
		AccessLog: l.AccessLog,
	}
	addrs := []struct{ key, addr string }{{"listen.grpc", out.GRPC}, {"listen.http", out.HTTP}, {"listen.admin", out.Admin}}
	if out.AccessLog != "" {
		addrs = append(addrs, struct{ key, addr string }{"listen.accessLog", out.AccessLog})
	}
	for _, l := range addrs {
		_, port, err := net.SplitHostPort(l.addr)
		if err == nil {
			_, err = strconv.ParseUint(port, 10, 16)
		}
		if err != nil {
			c.addf(l.key, "want host:port (port 0 picks a free one), got %q", l.addr)
		}
	}
	return out
}

func (c *compiler) clientIP(in ClientIP) ClientIPPolicy {
	p := ClientIPPolicy{Header: strings.ToLower(in.Header)}
	switch p.Header {
	case "", "x-forwarded-for", "x-real-ip":
	default:
		c.addf("clientIp.header", "want x-forwarded-for or x-real-ip, got %q", in.Header)
	}
	p.TrustedProxies = c.prefixes("clientIp.trustedProxies", in.TrustedProxies)
	if p.Header != "" && len(in.TrustedProxies) == 0 {
		c.addf("clientIp.trustedProxies", "required when clientIp.header is set: list the proxies whose %s is believed", p.Header)
	}
	return p
}

func (c *compiler) apis(in []API) []*catalog.API {
	var out []*catalog.API
	seen := map[string]bool{}
	// ops by canonical full template, to find operations no request could tell apart
	byTemplate := map[string][]opRef{}
	c.apiIDsUnsure = c.decodeFailed("apis")
	for i, a := range in {
		path := fmt.Sprintf("apis[%d]", i)
		if c.decodeFailed(path + ".id") {
			c.apiIDsUnsure = true
		}
		if c.checkID(path+".id", a.ID) {
			if seen[a.ID] {
				c.addf(path+".id", "duplicate API id %q", a.ID)
			}
			seen[a.ID] = true
		}
		c.checkText(path+".name", a.Name)
		api := &catalog.API{
			ID:                 a.ID,
			Name:               cmp.Or(a.Name, a.ID),
			Version:            a.Version,
			BasePath:           cmp.Or(a.BasePath, "/"),
			ForwardCredentials: a.ForwardCredentials,
			APIKeyHeader:       DefaultAPIKeyHeader,
		}
		base, err := catalog.ParseTemplate(api.BasePath)
		if err != nil {
			c.addf(path+".basePath", "%v", err)
		}
		api.BasePath = base.String()
		api.Hosts = c.hosts(path+".hosts", a.Hosts)
		if a.APIKey != nil {
			api.APIKeyHeader = strings.ToLower(a.APIKey.Header)
			api.APIKeyQuery = a.APIKey.Query
			if api.APIKeyHeader != "" && !validHeaderName(api.APIKeyHeader) {
				c.addf(path+".apiKey.header", "not a valid header name: %q", a.APIKey.Header)
			}
		}
		if len(a.Security) == 0 {
			c.addf(path+".security", "required: list the accepted schemes, e.g. [apiKey], or [none] for a public API")
		} else {
			api.Security = c.security(path+".security", a.Security)
		}
		if len(a.Operations) == 0 {
			c.addf(path+".operations", "an API needs at least one operation (path: /** matches everything under the base path)")
		}
		if p := c.policy(path+".rateLimit", a.RateLimit); p != nil {
			api.RateLimit = ratelimit.Bind(p, ratelimit.ScopeAPI, a.ID)
		}
		api.AnonymousRateLimit = c.policy(path+".anonymousRateLimit", a.AnonymousRateLimit)
		for j, aud := range a.Audiences {
			if aud == "" {
				c.addf(fmt.Sprintf("%s.audiences[%d]", path, j), "an audience cannot be empty")
			}
		}
		api.Audiences = a.Audiences
		switch a.MethodOverride {
		case "", "remove":
		case "deny":
			api.MethodOverride = catalog.OverrideDeny
		default:
			c.addf(path+".methodOverride", "want remove or deny, got %q", a.MethodOverride)
		}
		for j, o := range a.Operations {
			opPath := fmt.Sprintf("%s.operations[%d]", path, j)
			op := c.operation(opPath, o, api, base)
			if op == nil {
				continue
			}
			if p := c.policy(opPath+".rateLimit", o.RateLimit); p != nil {
				op.RateLimit = ratelimit.Bind(p, ratelimit.ScopeOperation, a.ID+":"+strconv.Itoa(j))
			}
			key := op.Template.Canonical()
			for _, other := range byTemplate[key] {
				if overlaps(other.op, op) {
					c.addf(opPath+".path", "%s matches the same requests as %s (same path, method and host)", o.Path, other.path)
					break
				}
			}
			byTemplate[key] = append(byTemplate[key], opRef{opPath, op})
			api.Operations = append(api.Operations, op)
		}
		if api.UsesScheme(catalog.SchemeAPIKey) && api.APIKeyHeader == "" && api.APIKeyQuery == "" {
			c.addf(path+".apiKey", "apiKey security needs a header or a query parameter to read the key from")
		}
		out = append(out, api)
	}
	return out
}

type opRef struct {
	path string
	op   *catalog.Operation
}

// overlaps reports whether two operations with the same template could
// both match one request.
func overlaps(a, b *catalog.Operation) bool {
	methods := len(a.Methods) == 0 || len(b.Methods) == 0
	for _, m := range a.Methods {
		methods = methods || slices.Contains(b.Methods, m)
	}
	if !methods {
		return false
	}
	for _, h := range a.API.Hosts {
		if slices.Contains(b.API.Hosts, h) {
			return true
		}
	}
	return false
}

func (c *compiler) operation(path string, o Operation, api *catalog.API, base catalog.Template) *catalog.Operation {
	op := &catalog.Operation{API: api, Path: o.Path, Scopes: o.Scopes, Security: api.Security}
	t, err := catalog.ParseTemplate(o.Path)
	if err != nil {
		c.addf(path+".path", "%v", err)
		return nil
	}
	op.Path = t.String()
	if op.Template, err = base.Join(t); err != nil {
		c.addf(path+".path", "%v", err)
		return nil
	}
	for k, m := range o.Methods {
		up := strings.ToUpper(m)
		if !slices.Contains(httpMethods, up) {
			c.addf(fmt.Sprintf("%s.methods[%d]", path, k), "unknown HTTP method %q", m)
			continue
		}
		if slices.Contains(op.Methods, up) {
			c.addf(fmt.Sprintf("%s.methods[%d]", path, k), "method %s listed twice", up)
			continue
		}
		op.Methods = append(op.Methods, up)
	}
	c.checkScopes(path+".scopes", o.Scopes)
	if o.Security != nil {
		op.Security = c.security(path+".security", o.Security)
	}
	return op
}

func (c *compiler) security(path string, items []string) catalog.Security {
	sec, err := catalog.ParseSecurity(items)
	if err != nil {
		c.addf(path, "%v", err)
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
			c.addf(fmt.Sprintf("%s[%d]", path, i), "want a host name, *.domain or *, optionally with :port, got %q", in[i])
			continue
		}
		if p.HasPort() && c.stripPort {
			c.addf(fmt.Sprintf("%s[%d]", path, i), "hostMatching.stripPort drops request ports, so a host with a port never matches")
			continue
		}
		out = append(out, h)
	}
	return out
}

func (c *compiler) subscriptions(in []Subscription, snap *Snapshot) {
	type pair struct{ app, api string }
	seen := map[pair]bool{}
	for i, s := range in {
		path := fmt.Sprintf("subscriptions[%d]", i)
		app := snap.Applications[s.Application]
		if app == nil && !c.appIDsUnsure {
			c.addf(path+".application", "unknown application %q", s.Application)
		}
		api := snap.Catalog.API(s.API)
		if api == nil && !c.apiIDsUnsure {
			c.addf(path+".api", "unknown API %q", s.API)
		}
		state, err := catalog.ParseSubscriptionState(s.State)
		if err != nil {
			c.addf(path+".state", "%v", err)
		}
		if app == nil || api == nil || err != nil {
			continue
		}
		if seen[pair{s.Application, s.API}] {
			c.addf(path, "application %q is already subscribed to API %q", s.Application, s.API)
			continue
		}
		seen[pair{s.Application, s.API}] = true
		sub := &catalog.Subscription{Application: app, API: api, State: state}
		if p := c.policy(path+".rateLimit", s.RateLimit); p != nil {
			sub.RateLimit = ratelimit.Bind(p, ratelimit.ScopeSubscription, app.ID+":"+api.ID)
		}
		catalog.Subscribe(sub)
	}
}

func (c *compiler) apiKeys(in []APIKey, apps map[string]*catalog.Application) *keys.APIKeyIndex {
	index := make(map[keys.Digest]*keys.APIKey, len(in))
	firstPath := map[keys.Digest]string{}
	for i, k := range in {
		path := fmt.Sprintf("apiKeys[%d]", i)
		app := apps[k.Application]
		if app == nil && !c.appIDsUnsure {
			c.addf(path+".application", "unknown application %q", k.Application)
		}
		digest, err := keys.ParseDigest(strings.ToLower(k.SHA256))
		if err != nil {
			c.addf(path+".sha256", "%v (run `enforcer keys new` for a key and its hash)", err)
		}
		c.checkText(path+".name", k.Name)
		entry := &keys.APIKey{Name: cmp.Or(k.Name, fmt.Sprintf("key-%d", i)), Application: app, ExpiresAt: k.ExpiresAt}
		entry.AllowedCIDRs = c.prefixes(path+".allowedCidrs", k.AllowedCIDRs)
		c.checkScopes(path+".scopes", k.Scopes)
		entry.Scopes, entry.ScopeText = k.Scopes, strings.Join(k.Scopes, " ")
		if app == nil || err != nil {
			continue
		}
		if first, dup := firstPath[digest]; dup {
			c.addf(path+".sha256", "the same key is already listed at %s", first)
			continue
		}
		firstPath[digest] = path
		index[digest] = entry
	}
	return keys.NewAPIKeyIndex(index)
}

// checkID requires an identifier that is safe in metrics labels, headers and
// log lines.
func (c *compiler) checkID(path, id string) bool {
	if id == "" {
		c.addf(path, "required")
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		ok := 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' ||
			i > 0 && (ch == '-' || ch == '_' || ch == '.')
		if !ok || i >= 128 {
			c.addf(path, "ids are up to 128 letters, digits, '-', '_' or '.', starting with a letter or digit; got %q", id)
			return false
		}
	}
	return true
}

// prefixes parses a list of addresses or CIDR prefixes.
func (c *compiler) prefixes(path string, in []string) []netip.Prefix {
	var out []netip.Prefix
	for i, s := range in {
		p, err := keys.ParseCIDR(s)
		if err != nil {
			c.addf(fmt.Sprintf("%s[%d]", path, i), "not an address or CIDR: %q", s)
			continue
		}
		out = append(out, p)
	}
	return out
}

// checkScopes requires each scope to be an RFC 6749 scope-token: printable
// ASCII without space, " or \.
func (c *compiler) checkScopes(path string, scopes []string) {
	for i, s := range scopes {
		if !keys.ValidScope(s) {
			c.addf(fmt.Sprintf("%s[%d]", path, i), "a scope is printable ASCII without spaces, quotes or backslashes (RFC 6749), got %q", s)
		}
	}
}

// checkText requires printable text: names and owners are sent upstream
// in headers and written to logs.
func (c *compiler) checkText(path, s string) {
	if len(s) > 256 {
		c.addf(path, "longer than 256 bytes")
		return
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			c.addf(path, "must be printable UTF-8 text without control characters")
			return
		}
	}
}

func validHeaderName(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		ch := h[i]
		if !('a' <= ch && ch <= 'z' || '0' <= ch && ch <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", ch) >= 0) {
			return false
		}
	}
	return true
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
