package ratelimit

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/internal/testredis"
)

// pipelineCounter counts the pipelines a client sends.
type pipelineCounter struct{ n atomic.Int64 }

func (*pipelineCounter) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (*pipelineCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (p *pipelineCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		p.n.Add(1)
		return next(ctx, cmds)
	}
}

// concurrentDecisions makes n decisions at once, each on its own key, and
// returns how many failed.
func concurrentDecisions(s *RedisStore, n int, limit Limit) int64 {
	var failed atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := make([]Result, 1)
			ok, err := s.Admit(context.Background(), []Item{item(fmt.Sprintf("tg:{batch}:%d", i), limit)}, res)
			if err != nil || !ok || res[0].Remaining != limit.Burst {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	return failed.Load()
}

func TestRedisBatchesConcurrentDecisions(t *testing.T) {
	srv := testredis.Start(t)
	s := newRedisStore(t, srv.Addr)
	pipes := &pipelineCounter{}
	s.client.AddHook(pipes)
	limit := Limit{Requests: 10, Per: time.Second, Burst: 4}
	if _, err := s.Admit(context.Background(), []Item{item("tg:{batch}:warm", limit)}, make([]Result, 1)); err != nil {
		t.Fatal(err) // loads the script
	}
	evalsBefore, pipesBefore := srv.CommandCalls("evalsha"), pipes.n.Load()

	// Hold Redis still while the decisions queue up, so they must share
	// pipelines once it answers again.
	if _, err := srv.Do("CLIENT", "PAUSE", "300"); err != nil {
		t.Fatal(err)
	}
	const n = 60
	if failed := concurrentDecisions(s, n, limit); failed > 0 {
		t.Fatalf("%d of %d decisions failed or got a wrong reply", failed, n)
	}
	if evals := srv.CommandCalls("evalsha") - evalsBefore; evals != n {
		t.Errorf("%d EVALSHA for %d decisions, want exactly one each", evals, n)
	}
	if p := pipes.n.Load() - pipesBefore; p > n/4 {
		t.Errorf("%d pipelines for %d concurrent decisions: not batched", p, n)
	}
}

func TestRedisDeadlineWhileRedisHangs(t *testing.T) {
	srv := testredis.Start(t)
	s, err := NewRedisStore(RedisOptions{Addrs: []string{srv.Addr}, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	limit := Limit{Requests: 10, Per: time.Second, Burst: 4}
	items := []Item{item("tg:{hang}:k", limit)}
	res := make([]Result, 1)
	if _, err := s.Admit(context.Background(), items, res); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Do("CLIENT", "PAUSE", "1000"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var slow, succeeded atomic.Int64
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			_, err := s.Admit(context.Background(), items, make([]Result, 1))
			// The budget is 50 ms; allow for a loaded test machine, but
			// far less than the 1 s Redis stays paused.
			if time.Since(start) > 500*time.Millisecond {
				slow.Add(1)
			}
			if err == nil {
				succeeded.Add(1)
			}
		}()
	}
	wg.Wait()
	if slow.Load() > 0 || succeeded.Load() > 0 {
		t.Fatalf("while Redis hung: %d decisions overran their budget, %d succeeded", slow.Load(), succeeded.Load())
	}
	// Redis resumes by itself when the pause ends.
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
	if failed := concurrentDecisions(s, 8, limit); failed > 0 {
		t.Fatalf("%d decisions failed", failed)
	}
	if _, err := srv.Do("SCRIPT", "FLUSH"); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Do("FLUSHALL"); err != nil {
		t.Fatal(err)
	}
	if failed := concurrentDecisions(s, 8, limit); failed > 0 {
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
