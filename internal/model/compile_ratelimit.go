package model

import (
	"fmt"
	"time"

	"github.com/tollgate/tollgate/internal/ratelimit"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// minInterval is the finest emission interval: Redis keeps microseconds.
const minInterval = time.Microsecond

func (c *compiler) rateLimitPolicies(in []*tollgatev1.RateLimitPolicy) map[string]*ratelimit.Policy {
	out := make(map[string]*ratelimit.Policy, len(in))
	for i, p := range in {
		p = orEmpty(p)
		path := fmt.Sprintf("rateLimitPolicies[%d]", i)
		if !c.ID(path+".name", p.GetName()) {
			continue
		}
		if out[p.GetName()] != nil {
			c.Addf(path+".name", "duplicate policy name %q", p.GetName())
			continue
		}
		if len(p.GetLimits()) == 0 {
			c.Addf(path+".limits", "a policy needs at least one limit, e.g. {requests: 100, per: 1s}")
		}
		policy := &ratelimit.Policy{Name: p.GetName()}
		for j, l := range p.GetLimits() {
			l = orEmpty(l)
			lpath := fmt.Sprintf("%s.limits[%d]", path, j)
			// Without a burst, "N per period" means what it says: all N may
			// come at once, refilling smoothly.
			limit := ratelimit.Limit{Requests: l.GetRequests(), Per: l.GetPer().AsDuration(), Burst: l.GetRequests() - 1}
			if l.Burst != nil {
				limit.Burst = l.GetBurst()
			}
			switch {
			case l.GetRequests() < 1:
				c.Addf(lpath+".requests", "at least 1")
			case limit.Per <= 0:
				c.Addf(lpath+".per", "required, e.g. 1s, 1m or 24h")
			case limit.Interval() < minInterval:
				c.Addf(lpath, "more than one request per microsecond cannot be limited")
			case limit.Burst < 0:
				c.Addf(lpath+".burst", "cannot be negative")
			default:
				policy.Limits = append(policy.Limits, limit)
			}
		}
		out[p.GetName()] = policy
	}
	return out
}

// policy resolves a policy name ("" is none). missing reports a policy
// that is not there yet in a partial input; the referrer must not go
// unlimited, so it is held back.
func (c *compiler) policy(path, name string) (p *ratelimit.Policy, missing bool) {
	if name == "" {
		return nil, false
	}
	p = c.policies[name]
	if p == nil && !c.unsure("rateLimitPolicies") && !c.in.Partial {
		c.Addf(path, "unknown rate-limit policy %q", name)
	}
	return p, p == nil && c.in.Partial
}
