package ratelimit

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/internal/testredis"
)

// freeze stops srv's process (SIGSTOP) until resume is called, or the
// test ends. Meanwhile the kernel still accepts connections and data, but
// Redis answers nothing: Redis hangs for exactly as long as the test
// needs. (CLIENT PAUSE cannot be ended early: CLIENT UNPAUSE waits too.)
func freeze(t *testing.T, srv *testredis.Server) (resume func()) {
	t.Helper()
	info, err := srv.Do("INFO", "server")
	if err != nil {
		t.Fatal(err)
	}
	pid := 0
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			pid, _ = strconv.Atoi(v)
		}
	}
	if pid <= 0 {
		t.Fatalf("no process_id in INFO server")
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	resume = func() {
		once.Do(func() {
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(resume)
	return resume
}

// pipelinedCommands counts the pipelines a client sends and the commands
// in them.
type pipelinedCommands struct{ pipelines, commands atomic.Int64 }

func (*pipelinedCommands) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (*pipelinedCommands) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (p *pipelinedCommands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		p.pipelines.Add(1)
		p.commands.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// concurrentDecisions starts n decisions at once, each on its own key, and
// returns a func that waits for them and says how many failed.
func concurrentDecisions(s *RedisStore, n int, limit Limit) (wait func() int64) {
	var failed atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			res := make([]Result, 1)
			ok, err := s.Admit(context.Background(), []Item{item(fmt.Sprintf("tg:{batch}:%d", i), limit)}, res)
			if err != nil || !ok || res[0].Remaining != limit.Burst {
				failed.Add(1)
			}
		})
	}
	return func() int64 { wg.Wait(); return failed.Load() }
}

// TestRedisBatchesConcurrentDecisions holds Redis still while decisions
// queue up, and lets it go only once every decision is either in a
// pipeline already sent or waiting in the batcher's queue: whatever the
// scheduling, they must then share pipelines.
func TestRedisBatchesConcurrentDecisions(t *testing.T) {
	srv := testredis.Start(t)
	s := newRedisStore(t, srv.Addr)
	pipes := &pipelinedCommands{}
	s.client.AddHook(pipes)
	limit := Limit{Requests: 10, Per: time.Second, Burst: 4}
	if _, err := s.Admit(context.Background(), []Item{item("tg:{batch}:warm", limit)}, make([]Result, 1)); err != nil {
		t.Fatal(err) // loads the script
	}
	evalsBefore, pipesBefore, cmdsBefore := srv.CommandCalls("evalsha"), pipes.pipelines.Load(), pipes.commands.Load()

	resume := freeze(t, srv)
	const n = 60
	wait := concurrentDecisions(s, n, limit)
	deadline := time.Now().Add(10 * time.Second)
	for pipes.commands.Load()-cmdsBefore+int64(len(s.batcher.calls)) < n {
		if time.Now().After(deadline) {
			t.Fatal("the decisions did not reach the batcher")
		}
		time.Sleep(time.Millisecond)
	}
	resume()
	if failed := wait(); failed > 0 {
		t.Fatalf("%d of %d decisions failed or got a wrong reply", failed, n)
	}
	if evals := srv.CommandCalls("evalsha") - evalsBefore; evals != n {
		t.Errorf("%d EVALSHA for %d decisions, want exactly one each", evals, n)
	}
	// While Redis was frozen each worker sent at most one pipeline and
	// then waited for its reply; the rest queued, and went out in full
	// batches once Redis answered.
	if p, most := pipes.pipelines.Load()-pipesBefore, int64(batchWorkers+(n+maxBatch-1)/maxBatch); p > most {
		t.Errorf("%d pipelines for %d concurrent decisions, want at most %d: not batched", p, n, most)
	}
}

// TestRedisDeadlineWhileRedisHangs freezes Redis until every decision has
// answered, so none can succeed, and a decision that waited for Redis
// rather than for its own deadline would never answer at all.
func TestRedisDeadlineWhileRedisHangs(t *testing.T) {
	const budget = 50 * time.Millisecond
	srv := testredis.Start(t)
	s, err := NewRedisStore(RedisOptions{Addrs: []string{srv.Addr}, Timeout: budget})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	limit := Limit{Requests: 10, Per: time.Second, Burst: 4}
	items := []Item{item("tg:{hang}:k", limit)}
	res := make([]Result, 1)
	// Connect and load the script first; on a loaded machine that may
	// take more than one budget.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := s.Admit(context.Background(), items, res); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	resume := freeze(t, srv)
	var wg sync.WaitGroup
	var slow, succeeded atomic.Int64
	for range 20 {
		wg.Go(func() {
			start := time.Now()
			_, err := s.Admit(context.Background(), items, make([]Result, 1))
			// Far more than the budget, for a loaded machine; a decision
			// that waits for Redis never returns while it is frozen.
			if time.Since(start) > 20*budget {
				slow.Add(1)
			}
			if err == nil {
				succeeded.Add(1)
			}
		})
	}
	answered := make(chan struct{})
	go func() { wg.Wait(); close(answered) }()
	select {
	case <-answered:
	case <-time.After(10 * time.Second):
		resume()
		<-answered
		t.Fatal("decisions waited for Redis rather than for their deadline")
	}
	if slow.Load() > 0 || succeeded.Load() > 0 {
		t.Fatalf("while Redis hung: %d decisions overran their budget, %d succeeded", slow.Load(), succeeded.Load())
	}
	resume()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := s.Admit(context.Background(), []Item{item("tg:{hang}:other", limit)}, res); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no decision succeeded after Redis resumed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRedisRefusedConnectionFailsFast(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: connections are refused
	s, err := NewRedisStore(RedisOptions{Addrs: []string{addr}, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	if _, err := s.Admit(context.Background(), []Item{item("k", Limit{Requests: 1, Per: time.Second})}, make([]Result, 1)); err == nil {
		t.Fatal("admitted without Redis")
	}
	// No dial retries with back-off inside a decision.
	if took := time.Since(start); took > time.Second {
		t.Fatalf("a refused connection took %v to report", took)
	}
}

func TestRedisReloadsFlushedScript(t *testing.T) {
	srv := testredis.Start(t)
	s := newRedisStore(t, srv.Addr)
	limit := Limit{Requests: 10, Per: time.Second, Burst: 4}
	if failed := concurrentDecisions(s, 8, limit)(); failed > 0 {
		t.Fatalf("%d decisions failed", failed)
	}
	if _, err := srv.Do("SCRIPT", "FLUSH"); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Do("FLUSHALL"); err != nil {
		t.Fatal(err)
	}
	if failed := concurrentDecisions(s, 8, limit)(); failed > 0 {
		t.Fatalf("%d decisions failed after SCRIPT FLUSH", failed)
	}
}

func TestRedisStoreClosed(t *testing.T) {
	srv := testredis.Start(t)
	s, err := NewRedisStore(RedisOptions{Addrs: []string{srv.Addr}, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.Admit(context.Background(), []Item{item("k", Limit{Requests: 1, Per: time.Second})}, make([]Result, 1)); err == nil {
		t.Fatal("a closed store admitted")
	}
}
