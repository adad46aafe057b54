package authz

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/catalog"
	"github.com/tollgate/tollgate/internal/model"
	"github.com/tollgate/tollgate/internal/policy"
	"github.com/tollgate/tollgate/internal/ratelimit"
)

// SnapshotSource yields the config snapshot to decide with.
type SnapshotSource interface {
	Load() *model.Snapshot
}

// Clock tells the time; tests inject a fixed one.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Recorder receives one observation per decision. Implementations must
// not block.
type Recorder interface {
	ObserveDecision(r *Request, d *Decision, elapsed time.Duration)
	// ObserveRateLimit counts one policy's result: allowed, limited or error.
	ObserveRateLimit(policy, result string)
	// ObservePanic counts a decision that panicked and was answered 500.
	ObservePanic(frontend string)
}

type nopRecorder struct{}

func (nopRecorder) ObserveDecision(*Request, *Decision, time.Duration) {}
func (nopRecorder) ObserveRateLimit(string, string)                    {}
func (nopRecorder) ObservePanic(string)                                {}

// Options configure an Engine. Only Config is required.
type Options struct {
	Config  SnapshotSource
	Clock   Clock    // default: the system clock
	Metrics Recorder // default: none
	Logger  *slog.Logger
	// RateLimiter applies rate-limit policies; default: an in-memory
	// limiter (one replica).
	RateLimiter *ratelimit.Limiter
	// Tracer, if set, traces each check; nil costs nothing.
	Tracer Tracer
	// TokenCacheEntries bounds the cache of verified JWTs; default
	// DefaultTokenCacheEntries.
	TokenCacheEntries int
}

// Tracer starts a span for a check, as a child of the trace context the
// request carries; the returned function ends it with the decision.
type Tracer interface {
	StartCheck(ctx context.Context, r *Request) (context.Context, func(*Decision))
}

// Engine runs the decision pipeline (README, "The decision"): match,
// authenticate, authorize, rate-limit, respond. It holds no per-request state and takes no locks:
// each check reads the current snapshot once and uses it throughout.
type Engine struct {
	config  SnapshotSource
	clock   Clock
	metrics Recorder
	log     *slog.Logger
	schemes [4]authenticator // indexed by catalog.Scheme

	backendTokens *slotCache[*backendToken] // signed backend JWTs, per caller
	limiter       *ratelimit.Limiter
	tracer        Tracer
}

// NewEngine returns an engine.
func NewEngine(o Options) *Engine {
	e := &Engine{config: o.Config, clock: o.Clock, metrics: o.Metrics, log: o.Logger, limiter: o.RateLimiter, tracer: o.Tracer}
	if e.clock == nil {
		e.clock = systemClock{}
	}
	if e.metrics == nil {
		e.metrics = nopRecorder{}
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.limiter == nil {
		e.limiter = ratelimit.NewLimiter(context.Background(), ratelimit.LimiterOptions{
			Store: ratelimit.NewMemoryStore(ratelimit.MemoryOptions{Clock: e.clock}), StoreName: "memory"})
	}
	e.schemes[catalog.SchemeAPIKey] = apiKeyAuthenticator{}
	e.schemes[catalog.SchemeJWT] = newJWTAuthenticator(cmp.Or(o.TokenCacheEntries, DefaultTokenCacheEntries))
	e.schemes[catalog.SchemeMTLS] = newMTLSAuthenticator()
	e.backendTokens = newSlotCache[*backendToken](backendTokenSlots)
	return e
}

// authenticator verifies one credential scheme.
type authenticator interface {
	// present reports whether the request carries this kind of credential.
	present(c *check) bool
	// verify checks the credential; a non-nil Denial refuses the request.
	verify(c *check) (Identity, *Denial)
}

// check is the state of one decision, passed between the stages.
type check struct {
	ctx      context.Context // bounds waiting (for an early JWKS refresh)
	req      *Request
	snap     *model.Snapshot
	now      time.Time
	clientIP netip.Addr
	api      *catalog.API
	op       *catalog.Operation
	path     string // the request path as matched (catalog.CleanPath)
	method   string // the method matched: the request's, or a preflight's requested one

	// credentials as presented, each read once (see the authenticators)
	apiKey        string
	apiKeyFound   bool
	apiKeyUnclear bool // sent twice, or where it cannot be removed
	apiKeyRead    bool
	bearer        string
	bearerUnclear bool // more than one Authorization line
	bearerRead    bool

	methodQuery     queryValue // the _method query parameter, read once
	methodQueryRead bool

	limits rateLimits
}

// methodOverrideQuery reads the request's _method query parameter once
// per check: both the refusal and the removal ask.
func (c *check) methodOverrideQuery() queryValue {
	if !c.methodQueryRead {
		c.methodQueryRead = true
		c.methodQuery = queryParam(c.req.Target, catalog.MethodOverrideQuery)
	}
	return c.methodQuery
}

// Decide runs the pipeline for r. ctx bounds any wait (the caller's
// deadline: Envoy's ext_authz timeout reaches gRPC handlers as one).
func (e *Engine) Decide(ctx context.Context, r *Request) Decision {
	if e.tracer == nil {
		return e.decide(ctx, r)
	}
	ctx, end := e.tracer.StartCheck(ctx, r)
	d := e.decide(ctx, r)
	end(&d)
	return d
}

// DecideSafely is Decide for the front ends: a panic in the decision is
// logged, counted and answered with a 500 denial instead of ending the
// process (or, over gRPC, becoming an error that Envoy's
// failure_mode_allow would turn into an allow).
func (e *Engine) DecideSafely(ctx context.Context, r *Request) (d Decision) {
	defer func() {
		if p := recover(); p != nil {
			e.metrics.ObservePanic(r.Frontend.String())
			e.log.Error("decision panicked; answered 500", "frontend", r.Frontend.String(),
				"request_id", r.RequestID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			d = Decision{Denial: denyInternal}
		}
	}()
	return e.Decide(ctx, r)
}

func (e *Engine) decide(ctx context.Context, r *Request) Decision {
	c := check{ctx: ctx, req: r, snap: e.config.Load(), now: e.clock.Now(), clientIP: r.Peer, method: r.Method}
	d := Decision{}
	denial := e.readable(&c)
	d.ClientIP = c.clientIP
	if denial == nil {
		if answer, ok := e.preflight(&c); ok {
			d.API, d.Operation, d.Path = c.api, c.op, c.path
			d.Denial = *answer
			d.Policies = corsPreflight
			return d
		}
		denial = e.match(&c)
	}
	d.API, d.Operation, d.Path = c.api, c.op, c.path
	if denial != nil {
		d.Denial = *denial
		return d
	}
	if c.op == nil { // unmatched, and unmatched: allow
		d.Identity = Identity{Credential: "none"}
		e.allow(&c, &d)
		return d
	}
	if c.api.Blocked { // decided on the match alone: no credential work
		d.Denial = denyAPIBlocked
		d.Denial.Headers = corsHeaders(&c)
		return d
	}

	denial = e.methodOverride(&c)
	var id Identity
	if denial == nil {
		id, denial = e.authenticate(&c)
	}
	if denial == nil {
		denial = e.authorize(&c, &id)
	}
	if denial == nil {
		if denial = e.rules(&c, &id); denial != nil {
			d.Policies = ruleRefused
		}
	}
	d.Identity = id
	if denial == nil {
		denial = e.rateLimit(&c, &d)
	}
	if denial != nil {
		d.Denial = *denial
		if d.Denial.Status == 401 && d.Denial.Challenge == "" {
			// RFC 9110: a 401 names the schemes that would be accepted.
			d.Denial.Challenge = e.challenge(&c)
		}
		d.Denial.Headers = corsHeaders(&c)
		return d
	}
	e.allow(&c, &d)
	if denial := uncarried(&c, &d); denial != nil {
		d.Allowed, d.Denial = false, *denial
	}
	return d
}

// What an answered preflight and a rule's refusal ran, for analytics.
var (
	corsPreflight = []string{"cors.preflight"}
	ruleRefused   = []string{"rule"}
)

// readable refuses what the front end could not read one way only, and
// resolves the client address.
func (e *Engine) readable(c *check) *Denial {
	r := c.req
	if r.Unreadable != "" {
		return unreadable(r.Unreadable)
	}
	p := c.snap.ClientIP
	if p.Header == "" {
		return nil
	}
	var v string
	if p.Header == "x-forwarded-for" {
		v = r.Headers.Joined(p.Header) // a second line must not hide the first from the rightmost-untrusted rule
	} else {
		var lines int
		if v, lines = r.Headers.Lookup(p.Header); lines > 1 && p.Trusts(r.Peer) {
			return unreadable("The request carries " + p.Header + " more than once.")
		}
	}
	c.clientIP = p.Resolve(r.Peer, v)
	return nil
}

// Observe records a finished decision: metrics and, at debug level, a log
// line. Front ends call it once the response is built.
func (e *Engine) Observe(r *Request, d *Decision, start time.Time) {
	e.metrics.ObserveDecision(r, d, e.clock.Now().Sub(start))
	if e.log.Enabled(context.Background(), slog.LevelDebug) {
		e.log.Debug("decision",
			slog.String("frontend", r.Frontend.String()),
			slog.String("request_id", r.RequestID),
			slog.String("method", r.Method),
			slog.String("path", d.LogPath(r)),
			slog.String("api", d.APIID()),
			slog.String("operation", d.OperationPath()),
			slog.Bool("allowed", d.Allowed),
			slog.String("code", d.Code()),
			slog.String("credential", d.Identity.Credential),
			slog.String("key_name", d.Identity.KeyName),
			slog.String("key_id", d.Identity.KeyID.String()))
	}
}

// Now returns the engine's clock reading, for front ends timing a check.
func (e *Engine) Now() time.Time { return e.clock.Now() }

// match finds the API and operation (step 1). It returns nil with c.op nil
// when nothing matched and the config allows unmatched requests.
func (e *Engine) match(c *check) *Denial {
	r := c.req
	p, err := catalog.CleanPath(r.Target, c.snap.EscapedSlashes)
	if err != nil {
		return unreadable(err.Error())
	}
	c.path = p.Clean
	if r.APIID != "" {
		if c.api = c.snap.Catalog.API(r.APIID); c.api == nil {
			d := denyNotFound
			d.Description = "The route names an API that is not configured."
			return &d
		}
	}
	op, miss := e.lookup(c, p.Clean)
	if op != nil && p.WithoutParams != "" {
		// Servlet containers drop ;parameters before routing: the request
		// must be the same operation in that reading too.
		if other, _ := e.lookup(c, p.WithoutParams); other != op {
			return unreadable("The request path reads as another resource once its ;parameters are removed.")
		}
	}
	if op != nil {
		c.api, c.op = op.API, op
		return nil
	}
	if miss == catalog.MissHost {
		return unreadable("The request's host is not a host name or address.")
	}
	if c.snap.UnmatchedAllow && r.APIID == "" {
		return nil
	}
	d := denyNotFound
	if miss == catalog.MissMethod {
		d.Description = "The requested resource does not support this method."
	}
	return &d
}

// lookup matches path: within the API the route named, or by host.
func (e *Engine) lookup(c *check, path string) (*catalog.Operation, catalog.Miss) {
	r := c.req
	switch {
	case c.api != nil && r.OperationID != "":
		return c.api.Operation(r.OperationID, c.method)
	case c.api != nil:
		return c.snap.Catalog.MatchInAPI(c.api, c.method, path)
	}
	return c.snap.Catalog.Match(r.Host, c.method, path)
}

// methodOverride refuses a request that asks the upstream to run it as
// another method, when the API says so, and any override Tollgate could
// not remove: the upstream would run a method Tollgate did not authorize.
func (e *Engine) methodOverride(c *check) *Denial {
	q := c.methodOverrideQuery()
	if c.api.MethodOverride == catalog.OverrideDeny {
		for _, h := range catalog.MethodOverrideHeaders {
			if _, lines := c.req.Headers.Lookup(h); lines > 0 {
				return unreadable("The API does not accept method overrides (" + h + ").")
			}
		}
		if q.found || q.unclear {
			return unreadable("The API does not accept method overrides (" + catalog.MethodOverrideQuery + ").")
		}
		return nil
	}
	// Removed otherwise; but only Envoy's gRPC ext_authz can remove a query
	// parameter, and only by its exact spelling.
	if q.unclear || q.found && c.req.Frontend != FrontendGRPC {
		return unreadable("The request carries a method override (" + catalog.MethodOverrideQuery + ") that cannot be removed.")
	}
	return nil
}

// authenticate tries the operation's alternatives in order (step 2): an
// alternative applies when all of its credentials are present, and the
// first that applies decides.
func (e *Engine) authenticate(c *check) (Identity, *Denial) {
	for _, req := range c.op.Security {
		if len(req.Schemes) == 1 && req.Schemes[0] == catalog.SchemeNone {
			return Identity{Credential: "none"}, nil
		}
		if !e.applies(c, req) {
			continue
		}
		var id Identity
		for i, s := range req.Schemes {
			got, denial := e.schemes[s].verify(c)
			if denial != nil {
				return got, denial
			}
			if i == 0 {
				id = got
				continue
			}
			if denial := merge(&id, &got); denial != nil {
				return id, denial
			}
		}
		id.Credential = req.Name
		return id, nil
	}
	d := denyMissingCredentials
	d.Challenge = e.challenge(c)
	return Identity{}, &d
}

func (e *Engine) applies(c *check, req catalog.Requirement) bool {
	for _, s := range req.Schemes {
		a := e.schemes[s]
		if a == nil || !a.present(c) {
			return false
		}
	}
	return true
}

// merge folds the identity from a further credential of an AND set into
// id. Credentials that name different applications contradict each other.
func merge(id, more *Identity) *Denial {
	switch {
	case id.Application == nil:
		id.Application = more.Application
	case more.Application != nil && more.Application != id.Application:
		d := denyForbidden
		d.Description = "The credentials presented belong to different applications."
		return &d
	}
	if id.Subject == "" {
		id.Subject = more.Subject
	}
	if len(more.Scopes) > 0 {
		id.Scopes = append(id.Scopes[:len(id.Scopes):len(id.Scopes)], more.Scopes...)
		id.ScopeText = strings.Join(id.Scopes, " ")
	}
	if id.KeyName == "" {
		id.KeyName, id.KeyID = more.KeyName, more.KeyID
	}
	if id.Principal == "" {
		id.Principal = more.Principal
	}
	return nil
}

// challenge is WWW-Authenticate for a 401 of the operation.
func (e *Engine) challenge(c *check) string {
	if c.op == nil {
		return ""
	}
	return c.op.Challenge
}

// authorize checks subscription and scopes (step 3). API-key CIDRs were
// checked with the key.
func (e *Engine) authorize(c *check, id *Identity) *Denial {
	if id.Credential == "none" {
		return nil
	}
	if app := id.Application; app != nil {
		sub := c.snap.Subscription(app, c.api)
		switch {
		case sub == nil:
			d := denyForbidden
			d.Description = "The application is not subscribed to this API."
			return &d
		case sub.State == catalog.StateBlocked:
			return &denySubscriptionBlocked
		case sub.State == catalog.StateOnHold:
			return &denySubscriptionOnHold
		}
	}
	if !c.op.ScopeSets.Allow(id.Scopes) {
		d := denyScopeMissing
		d.Description = c.op.ScopeSets.Description()
		return &d
	}
	return nil
}

// allow fills in the upstream changes (step 5): identity headers, and the
// removal of credentials, method overrides and every header only Tollgate
// may set. Removal lists the headers whether or not the request carried
// them: Envoy's http_service shows Tollgate only some headers, and a copy
// Tollgate never saw must not reach the upstream either.
func (e *Engine) allow(c *check, d *Decision) {
	d.Allowed = true
	d.Upstream = headersFor(&d.Identity)
	d.Extra = d.Identity.ClaimHeaders
	if b := c.snap.BackendJWT; b != nil && d.Identity.Credential != "none" && d.API != nil {
		if token := e.backendToken(c, d, b); token != "" {
			d.Extra = append(d.Extra[:len(d.Extra):len(d.Extra)], Header{Name: b.Header, Value: token})
		}
	}
	api := c.api
	base := catalog.MethodOverrideHeaders[:len(catalog.MethodOverrideHeaders):len(catalog.MethodOverrideHeaders)]
	if api != nil {
		base = api.RemoveHeaders
		if !api.ForwardCredentials {
			for _, q := range api.CredentialQuery {
				if queryParam(c.req.Target, q).found {
					d.RemoveQuery = api.CredentialQuery
					break
				}
			}
		}
	}
	if (api == nil || api.MethodOverride == catalog.OverrideRemove) && c.methodOverrideQuery().found {
		d.RemoveQuery = append(d.RemoveQuery[:len(d.RemoveQuery):len(d.RemoveQuery)], catalog.MethodOverrideQuery)
	}
	// The headers only Tollgate may set that this decision does not set.
	// Usually none (an identified caller gets all five identity headers),
	// and then the API's shared list serves without a copy.
	var buf [16]string
	add := buf[:0]
	for _, h := range c.snap.ReservedHeaderList {
		if !d.sets(h) {
			add = append(add, h)
		}
	}
	add = c.req.Headers.appendReserved(add, d, c.snap.ReservedHeaders)
	if len(add) == 0 {
		d.RemoveHeaders = base
	} else {
		d.RemoveHeaders = append(append(make([]string, 0, len(base)+len(add)), base...), add...)
	}
	if c.op != nil {
		e.applyPolicies(c, d)
	}
	if cors := corsHeaders(c); cors != nil {
		for _, h := range cors {
			d.ResponseHeaders = append(d.ResponseHeaders, policy.ResponseHeader{Name: h.Name, Value: h.Value})
		}
	}
}
