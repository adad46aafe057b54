package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Tuning of the script batcher.
const (
	// batchWorkers is how many batches may be in flight to Redis at once.
	// One keeps batches deepest; a second lets the next batch go out while
	// the first waits for its reply, so a slow reply does not stall every
	// decision behind it.
	batchWorkers = 2
	// maxBatch bounds one pipeline, so one write never grows without bound.
	maxBatch = 128
)

// errStoreClosed answers decisions made after Close.
var errStoreClosed = errors.New("redis: store closed")

// scriptCall is one decision waiting for its script reply.
type scriptCall struct {
	keys     []string
	argv     []any
	deadline time.Time // the caller gives up then; a worker skips it after

	reply []int64
	err   error
	done  chan struct{} // closed once reply or err is set
}

// scriptBatcher sends the decisions of concurrent requests to Redis
// together: each decision is still exactly one EVALSHA, but many of them
// share one write and one read. On a busy enforcer this divides the
// syscalls and wake-ups a Redis round trip costs by the batch size, which
// is most of the CPU a Redis-backed decision spends beyond a local one.
//
// go-redis's own auto-pipelining does the same, but a caller waiting on it
// cannot give up at its deadline; here every caller waits at most until its
// context ends, so the decision's time budget holds even when Redis hangs.
type scriptBatcher struct {
	client  redis.UniversalClient
	script  *redis.Script
	timeout time.Duration // per batch

	calls chan *scriptCall
	stop  chan struct{}
	wg    sync.WaitGroup
}

func newScriptBatcher(client redis.UniversalClient, script *redis.Script, timeout time.Duration) *scriptBatcher {
	b := &scriptBatcher{
		client: client, script: script, timeout: timeout,
		calls: make(chan *scriptCall, maxBatch*batchWorkers),
		stop:  make(chan struct{}),
	}
	b.wg.Add(batchWorkers)
	for range batchWorkers {
		go b.work()
	}
	return b
}

// close stops the workers; decisions still queued fail with errStoreClosed.
func (b *scriptBatcher) close() {
	close(b.stop)
	b.wg.Wait()
	for {
		select {
		case c := <-b.calls:
			c.err = errStoreClosed
			close(c.done)
		default:
			return
		}
	}
}

// run evaluates the script for one decision, waiting at most until ctx
// ends.
func (b *scriptBatcher) run(ctx context.Context, keys []string, argv []any) ([]int64, error) {
	deadline, _ := ctx.Deadline()
	c := &scriptCall{keys: keys, argv: argv, deadline: deadline, done: make(chan struct{})}
	select {
	case <-b.stop:
		return nil, errStoreClosed
	default:
	}
	select {
	case b.calls <- c:
	case <-b.stop:
		return nil, errStoreClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case <-c.done:
		return c.reply, c.err
	case <-b.stop:
		return nil, errStoreClosed
	case <-ctx.Done():
		// The worker still finishes the call; its result is dropped.
		return nil, ctx.Err()
	}
}

func (b *scriptBatcher) work() {
	defer b.wg.Done()
	batch := make([]*scriptCall, 0, maxBatch)
	for {
		batch = batch[:0]
		select {
		case c := <-b.calls:
			batch = append(batch, c)
		case <-b.stop:
			return
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case c := <-b.calls:
				batch = append(batch, c)
			default:
				break fill
			}
		}
		b.exec(batch)
	}
}

// exec sends one batch as a pipeline and hands each caller its reply.
// Calls whose callers have already given up are not sent: a decision
// that was answered "unavailable" must not be counted afterwards.
func (b *scriptBatcher) exec(batch []*scriptCall) {
	now := time.Now()
	live := batch[:0]
	for _, c := range batch {
		if !c.deadline.IsZero() && !now.Before(c.deadline) {
			c.err = context.DeadlineExceeded
			close(c.done)
			continue
		}
		live = append(live, c)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	cmds := b.send(ctx, live)
	// After a Redis restart or SCRIPT FLUSH the script is gone: load it
	// and send again the calls that found it missing (all of them, in
	// practice; none of those ran).
	var missing []*scriptCall
	for i, c := range live {
		if isNoScript(cmds[i].Err()) {
			missing = append(missing, c)
			continue
		}
		c.reply, c.err = cmds[i].Int64Slice()
		close(c.done)
	}
	if len(missing) == 0 {
		return
	}
	if err := b.script.Load(ctx, b.client).Err(); err != nil {
		for _, c := range missing {
			c.err = fmt.Errorf("loading the script: %w", err)
			close(c.done)
		}
		return
	}
	cmds = b.send(ctx, missing)
	for i, c := range missing {
		c.reply, c.err = cmds[i].Int64Slice()
		close(c.done)
	}
}

func (b *scriptBatcher) send(ctx context.Context, calls []*scriptCall) []*redis.Cmd {
	pipe := b.client.Pipeline()
	cmds := make([]*redis.Cmd, len(calls))
	for i, c := range calls {
		cmds[i] = b.script.EvalSha(ctx, pipe, c.keys, c.argv...)
	}
	// Errors are per command as well; each caller reads its own.
	_, _ = pipe.Exec(ctx)
	return cmds
}

func isNoScript(err error) bool {
	return err != nil && redis.HasErrorPrefix(err, "NOSCRIPT")
}
