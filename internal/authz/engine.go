package authz

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/catalog"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/ratelimit"
)

// SnapshotSource yields the config snapshot to decide with.
type SnapshotSource interface {
	Load() *config.Snapshot
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
}

type nopRecorder struct{}

func (nopRecorder) ObserveDecision(*Request, *Decision, time.Duration) {}
func (nopRecorder) ObserveRateLimit(string, string)                    {}

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
}

// Tracer starts a span for a check, as a child of the trace context the
// request carries; the returned function ends it with the decision.
type Tracer interface {
	StartCheck(ctx context.Context, r *Request) (context.Context, func(*Decision))
}

// Engine runs the decision pipeline of DESIGN §4: match, authenticate,
// authorize, respond. It holds no per-request state and takes no locks:
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
	e.schemes[catalog.SchemeJWT] = newJWTAuthenticator()
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
	snap     *config.Snapshot
	now      time.Time
	clientIP netip.Addr
	api      *catalog.API
	op       *catalog.Operation

	// credentials as presented, each read once (see the authenticators)
	apiKey      string
	apiKeyFound bool
	apiKeyRead  bool
	bearer      string
	bearerRead  bool

	limits rateLimits
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

func (e *Engine) decide(ctx context.Context, r *Request) Decision {
	c := check{ctx: ctx, req: r, snap: e.config.Load(), now: e.clock.Now()}
	c.clientIP = r.Peer
	if h := c.snap.ClientIP.Header; h != "" {
		c.clientIP = c.snap.ClientIP.Resolve(r.Peer, r.Headers.Get(h))
	}

	d := Decision{ClientIP: c.clientIP}
	if denial := e.match(&c); denial != nil {
		d.Denial = *denial
		return d
	}
	d.API, d.Operation = c.api, c.op
	if c.op == nil { // unmatched, and unmatched: allow
		d.Identity = Identity{Credential: "none"}
		e.allow(&c, &d)
		return d
	}

	id, denial := e.authenticate(&c)
	if denial == nil {
		denial = e.authorize(&c, &id)
	}
	d.Identity = id
	if denial == nil {
		denial = e.rateLimit(&c, &d)
	}
	if denial != nil {
		d.Denial = *denial
		return d
	}
	e.allow(&c, &d)
	return d
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
			slog.String("path", catalog.NormalizePath(r.Target)),
			slog.String("api", d.APIID()),
			slog.String("operation", d.OperationPath()),
			slog.Bool("allowed", d.Allowed),
			slog.String("code", d.Code()),
			slog.String("credential", d.Identity.Credential),
			slog.String("key_name", d.Identity.KeyName))
	}
}

// Now returns the engine's clock reading, for front ends timing a check.
func (e *Engine) Now() time.Time { return e.clock.Now() }

// match finds the API and operation (step 1). It returns nil with c.op nil
// when nothing matched and the config allows unmatched requests.
func (e *Engine) match(c *check) *Denial {
	r := c.req
	path := catalog.NormalizePath(r.Target)
	var (
		op   *catalog.Operation
		miss catalog.Miss
	)
	switch {
	case r.APIID != "":
		c.api = c.snap.Catalog.API(r.APIID)
		if c.api == nil {
			d := denyNotFound
			d.Description = "The route names an API that is not configured."
			return &d
		}
		if r.OperationID != "" {
			op, miss = c.api.Operation(r.OperationID, r.Method)
		} else {
			op, miss = c.snap.Catalog.MatchInAPI(c.api, r.Method, path)
		}
	default:
		op, miss = c.snap.Catalog.Match(r.Host, r.Method, path)
	}
	if op != nil {
		c.api, c.op = op.API, op
		return nil
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
		id.KeyName = more.KeyName
	}
	if id.Principal == "" {
		id.Principal = more.Principal
	}
	return nil
}

// challenge builds WWW-Authenticate for a request with no credential: one
// challenge per scheme the operation accepts.
func (e *Engine) challenge(c *check) string {
	var parts []string
	if c.op.Security.Uses(catalog.SchemeJWT) {
		parts = append(parts, `Bearer realm="`+c.api.ID+`"`)
	}
	if c.op.Security.Uses(catalog.SchemeAPIKey) {
		switch {
		case c.api.APIKeyHeader != "":
			parts = append(parts, `APIKey realm="`+c.api.ID+`", header="`+c.api.APIKeyHeader+`"`)
		default:
			parts = append(parts, `APIKey realm="`+c.api.ID+`", query="`+c.api.APIKeyQuery+`"`)
		}
	}
	return strings.Join(parts, ", ")
}

// authorize checks subscription and scopes (step 3). API-key CIDRs were
// checked with the key.
func (e *Engine) authorize(c *check, id *Identity) *Denial {
	if id.Credential == "none" {
		return nil
	}
	if app := id.Application; app != nil {
		sub := app.Subscription(c.api)
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
	if len(c.op.Scopes) > 0 && !anyScope(id.Scopes, c.op.Scopes) {
		d := denyScopeMissing
		d.Description = "The operation requires one of the scopes: " + strings.Join(c.op.Scopes, " ")
		return &d
	}
	return nil
}

func anyScope(have, want []string) bool {
	for _, w := range want {
		for _, h := range have {
			if h == w {
				return true
			}
		}
	}
	return false
}

// allow fills in the upstream changes (step 5): identity headers, and the
// removal of credentials and of client-sent identity headers.
func (e *Engine) allow(c *check, d *Decision) {
	d.Allowed = true
	d.Upstream = headersFor(&d.Identity)
	d.Extra = d.Identity.ClaimHeaders
	if b := c.snap.BackendJWT; b != nil && d.Identity.Credential != "none" && d.API != nil {
		if token := e.backendToken(c, d, b); token != "" {
			d.Extra = append(d.Extra[:len(d.Extra):len(d.Extra)], Header{Name: b.Header, Value: token})
		}
	}
	if api := c.api; api != nil && !api.ForwardCredentials {
		for _, h := range api.CredentialHeaders {
			if c.req.Headers.Get(h) != "" {
				d.RemoveHeaders = api.CredentialHeaders
				break
			}
		}
		for _, q := range api.CredentialQuery {
			if _, ok := queryParam(c.req.Target, q); ok {
				d.RemoveQuery = api.CredentialQuery
				break
			}
		}
	}
	// Appending to the API's shared slice must copy it first.
	d.RemoveHeaders = c.req.Headers.appendReserved(d.RemoveHeaders[:len(d.RemoveHeaders):len(d.RemoveHeaders)], d, c.snap.ReservedHeaders)
}
