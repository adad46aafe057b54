package config

import (
	"fmt"
	"time"

	"github.com/tollgate/tollgate/internal/ratelimit"
)

const (
	defaultRedisTimeout = 25 * time.Millisecond
	// minInterval is the finest emission interval: Redis keeps
	// microseconds.
	minInterval = time.Microsecond
)

func (c *compiler) rateLimitPolicies(in []RateLimitPolicy) map[string]*ratelimit.Policy {
	out := make(map[string]*ratelimit.Policy, len(in))
	for i, p := range in {
		path := fmt.Sprintf("rateLimitPolicies[%d]", i)
		if !c.checkID(path+".name", p.Name) {
			continue
		}
		if out[p.Name] != nil {
			c.addf(path+".name", "duplicate policy name %q", p.Name)
			continue
		}
		if len(p.Limits) == 0 {
			c.addf(path+".limits", "a policy needs at least one limit, e.g. {requests: 100, per: 1s}")
		}
		policy := &ratelimit.Policy{Name: p.Name}
		for j, l := range p.Limits {
			lpath := fmt.Sprintf("%s.limits[%d]", path, j)
			// Without a burst, "N per period" means what it says: all N may
			// come at once, refilling smoothly.
			limit := ratelimit.Limit{Requests: l.Requests, Per: time.Duration(l.Per), Burst: l.Requests - 1}
			if l.Burst != nil {
				limit.Burst = *l.Burst
			}
			switch {
			case l.Requests < 1:
				c.addf(lpath+".requests", "at least 1")
			case limit.Per <= 0:
				c.addf(lpath+".per", "required, e.g. 1s, 1m or 24h")
			case limit.Interval() < minInterval:
				c.addf(lpath, "more than one request per microsecond cannot be limited")
			case limit.Burst < 0:
				c.addf(lpath+".burst", "cannot be negative")
			default:
				policy.Limits = append(policy.Limits, limit)
			}
		}
		out[p.Name] = policy
	}
	return out
}

// policy resolves a policy name ("" is none).
func (c *compiler) policy(path, name string) *ratelimit.Policy {
	if name == "" {
		return nil
	}
	p := c.policies[name]
	if p == nil && !c.decodeFailed("rateLimitPolicies") {
		c.addf(path, "unknown rate-limit policy %q", name)
	}
	return p
}

func (c *compiler) rateLimitStore(in RateLimitStore) RateLimitSettings {
	s := RateLimitSettings{Store: in.Store, FallbackShare: 1}
	switch in.Store {
	case "", "memory":
		s.Store = "memory"
	case "redis":
		if len(in.Redis.Addrs) == 0 {
			c.addf("rateLimit.redis.addrs", "required for the redis store: one address, or several for a Redis Cluster")
		}
	default:
		c.addf("rateLimit.store", "want memory or redis, got %q", in.Store)
	}
	s.Redis = ratelimit.RedisOptions{
		Addrs:          in.Redis.Addrs,
		SentinelMaster: in.Redis.SentinelMaster,
		Password:       in.Redis.Password,
		TLS:            in.Redis.TLS,
		Timeout:        defaultRedisTimeout,
	}
	if in.Redis.Timeout != 0 {
		s.Redis.Timeout = time.Duration(in.Redis.Timeout)
		if s.Redis.Timeout < time.Millisecond || s.Redis.Timeout > time.Second {
			c.addf("rateLimit.redis.timeout", "between 1ms and 1s")
		}
	}
	s.MemoryMaxKeys = in.Memory.MaxKeys
	if s.MemoryMaxKeys < 0 || s.MemoryMaxKeys > 100_000_000 {
		c.addf("rateLimit.memory.maxKeys", "between 1 and 100000000 (0 is the default, 100000)")
	}
	switch in.FailureMode {
	case "", "open":
		s.FailureMode = ratelimit.FailOpen
	case "closed":
		s.FailureMode = ratelimit.FailClosed
	default:
		c.addf("rateLimit.failureMode", "want open or closed, got %q", in.FailureMode)
	}
	if in.LocalFallbackShare != nil {
		s.FallbackShare = *in.LocalFallbackShare
		if s.FallbackShare <= 0 || s.FallbackShare > 1 {
			c.addf("rateLimit.localFallbackShare", "want a share in (0, 1], e.g. 1/replicas")
		}
	}
	return s
}
