package authz

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/tollgate/tollgate/internal/ratelimit"
)

// RateLimitHeaders are the ratelimit-* response headers of the tightest
// limit that applied (IETF RateLimit header fields).
type RateLimitHeaders struct {
	Limit     int64 // requests per period of that limit
	Remaining int64
	Reset     int64 // seconds until it is back to its full burst
}

// Deny codes of the rate-limit scopes (README, "The decision").
var (
	throttledAPI = Denial{Status: 429, Code: "900800", Message: "Message throttled out",
		Description: "You have exceeded the rate limit of this API."}
	throttledOperation = Denial{Status: 429, Code: "900802", Message: "Message throttled out",
		Description: "You have exceeded the rate limit of this operation."}
	throttledApplication = Denial{Status: 429, Code: "900803", Message: "Message throttled out",
		Description: "Your application has exceeded its rate limit."}
	throttledSubscription = Denial{Status: 429, Code: "900804", Message: "Message throttled out",
		Description: "Your application has exceeded the rate limit of its subscription to this API."}
	throttledAnonymous = Denial{Status: 429, Code: "900800", Message: "Message throttled out",
		Description: "You have exceeded the rate limit for unauthenticated use of this API."}
	storeUnavailable = Denial{Status: 503, Code: "900810", Message: "Service unavailable",
		Description: "Rate limits cannot be checked right now; try again shortly."}
	// policyPending: the API's rate-limit policy has not reached this
	// replica yet, so its limits cannot be applied.
	policyPending = Denial{Status: 503, Code: "900810", Message: "Service unavailable",
		Description: "This API's rate limits have not been loaded yet; try again shortly."}
)

var throttled = [...]*Denial{
	ratelimit.ScopeAPI:          &throttledAPI,
	ratelimit.ScopeOperation:    &throttledOperation,
	ratelimit.ScopeSubscription: &throttledSubscription,
	ratelimit.ScopeApplication:  &throttledApplication,
	ratelimit.ScopeAnonymous:    &throttledAnonymous,
}

// maxSubjectKeyBytes bounds a subject written into a rate-limit key.
const maxSubjectKeyBytes = 64

// limitRef says where an item of a decision came from.
type limitRef struct {
	scope    ratelimit.Scope
	policy   *ratelimit.Policy
	requests int64
}

// rateLimits holds one decision's items, in arrays inside the check so
// that a usual decision allocates nothing for them.
type rateLimits struct {
	items   []ratelimit.Item
	refs    []limitRef
	results [16]ratelimit.Result
	itemBuf [16]ratelimit.Item
	refBuf  [16]limitRef
}

func (rl *rateLimits) add(b *ratelimit.Binding) {
	if b == nil {
		return
	}
	rl.items = append(rl.items, b.Items...)
	for _, l := range b.Policy.Limits {
		rl.refs = append(rl.refs, limitRef{scope: b.Scope, policy: b.Policy, requests: l.Requests})
	}
}

// rateLimit applies every policy that covers the request (step 4): the
// operation's and the API's (all callers together), the subscription's and
// the application's, or, for a caller with no application, the API's
// anonymous policy per client.
func (e *Engine) rateLimit(c *check, d *Decision) *Denial {
	if c.api.Held {
		return &policyPending
	}
	rl := &c.limits
	rl.items, rl.refs = rl.itemBuf[:0], rl.refBuf[:0]
	rl.add(c.op.RateLimit)
	rl.add(c.api.RateLimit)
	if app := d.Identity.Application; app != nil {
		if sub := c.snap.Subscription(app, c.api); sub != nil {
			rl.add(sub.RateLimit)
		}
		rl.add(app.RateLimit)
	} else if p := c.api.AnonymousRateLimit; p != nil {
		who := "ip:" + c.clientIP.String()
		if sub := d.Identity.Subject; sub != "" {
			// An anonymous application, keyed on its subject; a long one by
			// its hash, so a key's size never depends on what a token says.
			who = "sub:" + sub
			if len(sub) > maxSubjectKeyBytes {
				sum := sha256.Sum256([]byte(sub))
				who = "sub#" + hex.EncodeToString(sum[:16])
			}
		}
		b := ratelimit.Binding{Policy: p, Scope: ratelimit.ScopeAnonymous, Items: p.AppendItems(nil, ratelimit.ScopeAnonymous, c.api.ID+":"+who)}
		rl.add(&b)
	}
	if len(rl.items) == 0 {
		return nil
	}
	results := rl.results[:]
	if len(rl.items) > len(results) {
		results = make([]ratelimit.Result, len(rl.items))
	}
	outcome := e.limiter.Admit(c.ctx, rl.items, results)
	e.observeLimits(rl, results, outcome)

	switch outcome {
	case ratelimit.Unavailable:
		return &storeUnavailable
	case ratelimit.FailedOpen:
		return nil
	case ratelimit.Refused:
		// The limit that keeps the caller waiting longest answers.
		worst := -1
		for i := range rl.items {
			if !results[i].Allowed && (worst < 0 || results[i].RetryAfter > results[worst].RetryAfter) {
				worst = i
			}
		}
		den := *throttled[rl.refs[worst].scope]
		den.RetryAfter = ceilSeconds(results[worst].RetryAfter)
		d.RateLimit = RateLimitHeaders{Limit: rl.refs[worst].requests, Remaining: 0, Reset: ceilSeconds(results[worst].Reset)}
		return &den
	}
	tightest := 0
	for i := range rl.items {
		if results[i].Remaining < results[tightest].Remaining {
			tightest = i
		}
	}
	d.RateLimit = RateLimitHeaders{
		Limit:     rl.refs[tightest].requests,
		Remaining: results[tightest].Remaining,
		Reset:     ceilSeconds(results[tightest].Reset),
	}
	return nil
}

// observeLimits counts each applied policy's outcome once.
func (e *Engine) observeLimits(rl *rateLimits, results []ratelimit.Result, outcome ratelimit.Outcome) {
	for i, ref := range rl.refs {
		if i > 0 && rl.refs[i-1].policy == ref.policy && rl.refs[i-1].scope == ref.scope {
			continue // the policy's other limits
		}
		result := "allowed"
		switch outcome {
		case ratelimit.Unavailable, ratelimit.FailedOpen:
			result = "error"
		case ratelimit.Refused:
			result = ""
			for j := i; j < len(rl.refs) && rl.refs[j].policy == ref.policy && rl.refs[j].scope == ref.scope; j++ {
				if !results[j].Allowed {
					result = "limited"
				}
			}
			if result == "" {
				continue // refused by another policy: this one was not consumed
			}
		}
		e.metrics.ObserveRateLimit(ref.policy.Name, result)
	}
}

func ceilSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	return max(s, 0)
}
