package config

import (
	"time"

	"github.com/tollgate/tollgate/internal/ratelimit"
)

const defaultRedisTimeout = 25 * time.Millisecond

func (c *compiler) rateLimitStore(in RateLimitStore) RateLimitSettings {
	s := RateLimitSettings{Store: in.Store, FallbackShare: 1}
	switch in.Store {
	case "", "memory":
		s.Store = "memory"
	case "redis":
		if len(in.Redis.Addrs) == 0 {
			c.Addf("rateLimit.redis.addrs", "required for the redis store: one address, or several for a Redis Cluster")
		}
	default:
		c.Addf("rateLimit.store", "want memory or redis, got %q", in.Store)
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
			c.Addf("rateLimit.redis.timeout", "between 1ms and 1s")
		}
	}
	s.MemoryMaxKeys = in.Memory.MaxKeys
	if s.MemoryMaxKeys < 0 || s.MemoryMaxKeys > 100_000_000 {
		c.Addf("rateLimit.memory.maxKeys", "between 1 and 100000000 (0 is the default, 100000)")
	}
	switch in.FailureMode {
	case "", "open":
		s.FailureMode = ratelimit.FailOpen
	case "closed":
		s.FailureMode = ratelimit.FailClosed
	default:
		c.Addf("rateLimit.failureMode", "want open or closed, got %q", in.FailureMode)
	}
	if in.LocalFallbackShare != nil {
		s.FallbackShare = *in.LocalFallbackShare
		if s.FallbackShare <= 0 || s.FallbackShare > 1 {
			c.Addf("rateLimit.localFallbackShare", "want a share in (0, 1], e.g. 1/replicas")
		}
	}
	return s
}
