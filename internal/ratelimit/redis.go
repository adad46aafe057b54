package ratelimit

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// gcraScript evaluates every item of a decision in one call. Time comes
// from the Redis server (TIME), so replicas with skewed clocks agree. All
// items admit and are stored, or none is. Times are microseconds.
// KEYS: one per item. ARGV: interval, tolerance per item.
// Returns {allowed, then remaining, retry, reset per item}.
var gcraScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {1}
local new = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  if tat - now > tolerance then
    out[1] = 0
    new[i] = false
    out[#out + 1] = 0
    out[#out + 1] = tat - now - tolerance
    out[#out + 1] = tat - now
  else
    local nt = tat + interval
    new[i] = nt
    local remaining = math.floor((tolerance - (nt - now)) / interval) + 1
    if remaining < 0 then remaining = 0 end
    out[#out + 1] = remaining
    out[#out + 1] = 0
    out[#out + 1] = nt - now
  end
end
if out[1] == 1 then
  for i = 1, #KEYS do
    redis.call('SET', KEYS[i], string.format('%d', new[i]), 'PX', math.ceil((new[i] - now) / 1000) + 1)
  end
end
return out
`)

// RedisOptions configure a RedisStore.
type RedisOptions struct {
	Addrs          []string // one: standalone (or Sentinel); several: Redis Cluster
	SentinelMaster string
	Username       string
	Password       string
	TLS            bool
	Timeout        time.Duration // per decision, including the round trip
}

// RedisStore keeps TATs in Redis, shared by every replica. A decision is
// one EVALSHA (standalone, Sentinel), batched with concurrent decisions,
// or, on a cluster, one EVALSHA per hash tag, pipelined.
type RedisStore struct {
	client  redis.UniversalClient
	batcher *scriptBatcher // standalone and Sentinel
	cluster bool
	timeout time.Duration
}

// NewRedisStore connects lazily; the first decision (or Ping) dials.
func NewRedisStore(o RedisOptions) (*RedisStore, error) {
	if len(o.Addrs) == 0 {
		return nil, errors.New("redis: no addresses")
	}
	if o.Timeout <= 0 {
		o.Timeout = 25 * time.Millisecond
	}
	uo := &redis.UniversalOptions{
		Addrs:        o.Addrs,
		MasterName:   o.SentinelMaster,
		Username:     o.Username,
		Password:     o.Password,
		DialTimeout:  max(o.Timeout, 250*time.Millisecond),
		ReadTimeout:  o.Timeout,
		WriteTimeout: o.Timeout,
		MaxRetries:   -1, // a retry would break the decision's time budget
		// One dial per attempt: the limiter's probe, not the decision,
		// waits for Redis to come back.
		DialerRetries: 1,
		// RESP2: the script's reply is a flat array either way, and RESP3
		// makes the client check for push notifications around every call.
		Protocol:        2,
		DisableIdentity: true,
		// A decision must not wait for a connection longer than its budget.
		PoolTimeout: o.Timeout,
	}
	if o.TLS {
		uo.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	cluster := len(o.Addrs) > 1 && o.SentinelMaster == ""
	if cluster {
		uo.IsClusterMode = true
	}
	s := &RedisStore{client: redis.NewUniversalClient(uo), cluster: cluster, timeout: o.Timeout}
	if !cluster {
		s.batcher = newScriptBatcher(s.client, gcraScript, o.Timeout)
	}
	return s, nil
}

// Close stops the batcher and closes the connections.
func (s *RedisStore) Close() error {
	if s.batcher != nil {
		s.batcher.close()
	}
	return s.client.Close()
}

// Ping checks that Redis answers.
func (s *RedisStore) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, max(s.timeout, 250*time.Millisecond))
	defer cancel()
	return s.client.Ping(ctx).Err()
}

// WarmUp dials Redis and loads the script before the first decision needs
// them, retrying until ctx ends: a replica that reports ready with a cold
// store would answer its first decisions by failureMode (503 under
// closed). Two connections are opened, one per batch in flight.
func (s *RedisStore) WarmUp(ctx context.Context) error {
	for {
		err := s.warmUpOnce(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis: not reachable before the start-up wait ended: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *RedisStore) warmUpOnce(ctx context.Context) error {
	load := func(ctx context.Context, c redis.Cmdable) error { return gcraScript.Load(ctx, c).Err() }
	if cluster, ok := s.client.(*redis.ClusterClient); ok {
		return cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return load(ctx, c) })
	}
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- s.Ping(ctx) }()
	}
	if err := errors.Join(<-errs, <-errs); err != nil {
		return err
	}
	return load(ctx, s.client)
}

// SetRedisLogger sends the Redis client's own messages (reconnects, pool
// events) to log as structured lines, instead of plain text on stderr
// among the JSON log.
func SetRedisLogger(log *slog.Logger) { redis.SetLogger(redisLog{log}) }

type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, "redis client", "message", fmt.Sprintf(format, v...))
}

// Admit implements Store.
func (s *RedisStore) Admit(ctx context.Context, items []Item, results []Result) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if !s.cluster {
		return s.admitGroup(ctx, items, results)
	}
	return s.admitCluster(ctx, items, results)
}

func args(items []Item) (keys []string, argv []any) {
	keys = make([]string, len(items))
	argv = make([]any, 0, 2*len(items))
	for i, it := range items {
		keys[i] = it.Key
		argv = append(argv, it.Interval.Microseconds(), max(it.Tolerance.Microseconds(), 0))
	}
	return keys, argv
}

// admitGroup runs the script over all items (standalone, Sentinel).
func (s *RedisStore) admitGroup(ctx context.Context, items []Item, results []Result) (bool, error) {
	keys, argv := args(items)
	reply, err := s.batcher.run(ctx, keys, argv)
	if err != nil {
		return false, fmt.Errorf("redis: %w", err)
	}
	return parseReply(reply, results)
}

// admitCluster runs the script once per hash tag, pipelined: a decision
// costs one round trip to each cluster node involved. Each group is
// atomic; a request refused by one group may still have been counted by
// another (a slight over-count, never an over-admission).
func (s *RedisStore) admitCluster(ctx context.Context, items []Item, results []Result) (bool, error) {
	type group struct{ idx []int }
	var order []string
	groups := map[string]*group{}
	for i, it := range items {
		tag := hashTag(it.Key)
		g := groups[tag]
		if g == nil {
			g = &group{}
			groups[tag] = g
			order = append(order, tag)
		}
		g.idx = append(g.idx, i)
	}
	run := func() ([]*redis.Cmd, error) {
		pipe := s.client.Pipeline()
		cmds := make([]*redis.Cmd, len(order))
		for n, tag := range order {
			sub := make([]Item, len(groups[tag].idx))
			for j, i := range groups[tag].idx {
				sub[j] = items[i]
			}
			keys, argv := args(sub)
			cmds[n] = gcraScript.EvalSha(ctx, pipe, keys, argv...)
		}
		_, err := pipe.Exec(ctx)
		return cmds, err
	}
	cmds, err := run()
	if isNoScript(err) {
		if err := gcraScript.Load(ctx, s.client).Err(); err != nil {
			return false, fmt.Errorf("redis: loading the script: %w", err)
		}
		cmds, err = run()
	}
	if err != nil {
		return false, fmt.Errorf("redis: %w", err)
	}
	allowed := true
	sub := make([]Result, len(items))
	for n, tag := range order {
		reply, err := cmds[n].Int64Slice()
		if err != nil {
			return false, fmt.Errorf("redis: %w", err)
		}
		ok, err := parseReply(reply, sub)
		if err != nil {
			return false, err
		}
		allowed = allowed && ok
		for j, i := range groups[tag].idx {
			results[i] = sub[j]
		}
	}
	return allowed, nil
}

func parseReply(reply []int64, results []Result) (bool, error) {
	if len(reply) < 1 || (len(reply)-1)%3 != 0 {
		return false, fmt.Errorf("redis: unexpected script reply of %d values", len(reply))
	}
	allowed := reply[0] == 1
	for i := 0; 1+3*i < len(reply); i++ {
		remaining, retry, reset := reply[1+3*i], reply[2+3*i], reply[3+3*i]
		results[i] = Result{
			Allowed:    retry == 0, // a refused item always has time to wait
			Remaining:  remaining,
			RetryAfter: time.Duration(retry) * time.Microsecond,
			Reset:      time.Duration(reset) * time.Microsecond,
		}
	}
	return allowed, nil
}

// hashTag returns the part of key between the first { and the next },
// the part Redis Cluster hashes to choose a slot.
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}
