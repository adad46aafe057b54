package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// sample is one measured stretch of load against one server.
type sample struct {
	checks    int64
	errors    int64
	wall      time.Duration
	cpu       time.Duration // the server's CPU time over the stretch
	latencies []time.Duration
}

func (s *sample) add(o sample) {
	s.checks += o.checks
	s.errors += o.errors
	s.wall += o.wall
	s.cpu += o.cpu
	s.latencies = append(s.latencies, o.latencies...)
}

func (s *sample) rps() float64               { return float64(s.checks) / s.wall.Seconds() }
func (s *sample) cpuPerCheck() time.Duration { return s.cpu / time.Duration(max(s.checks, 1)) }

func (s *sample) percentile(p float64) time.Duration {
	if len(s.latencies) == 0 {
		return 0
	}
	slices.Sort(s.latencies)
	return s.latencies[int(p*float64(len(s.latencies)-1))]
}

// client is the load client: one gRPC connection (as Envoy keeps per
// worker) shared by a fixed number of workers, each sending the next
// Check as soon as the last is answered.
type client struct {
	conn *grpc.ClientConn
	auth authv3.AuthorizationClient
}

func dial(addr string, opts ...grpc.DialOption) (*client, error) {
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, err
	}
	return &client{conn: conn, auth: authv3.NewAuthorizationClient(conn)}, nil
}

// drive runs concurrency workers for d and measures the server's CPU.
func (c *client) drive(pid int, req *authv3.CheckRequest, concurrency int, d time.Duration) (sample, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	before, err := cpuTime(pid)
	if err != nil {
		return sample{}, err
	}
	start := time.Now()
	var wg sync.WaitGroup
	results := make([]sample, concurrency)
	for w := range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[w]
			r.latencies = make([]time.Duration, 0, 1<<16)
			for ctx.Err() == nil {
				t0 := time.Now()
				_, err := c.auth.Check(context.Background(), req)
				if err != nil {
					r.errors++
					continue
				}
				r.checks++
				r.latencies = append(r.latencies, time.Since(t0))
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	after, err := cpuTime(pid)
	if err != nil {
		return sample{}, err
	}
	total := sample{wall: wall, cpu: after - before}
	for _, r := range results {
		total.checks += r.checks
		total.errors += r.errors
		total.latencies = append(total.latencies, r.latencies...)
	}
	return total, nil
}

// pace sends Checks at a fixed rate for d (the soak), returning how many
// were sent and how many failed. Sends are counted against the time
// elapsed, not one per timer tick: a late wake-up sends what fell due
// meanwhile instead of losing it.
func (c *client) pace(req *authv3.CheckRequest, rate int, d time.Duration) (sent, failed int64) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	jobs := make(chan struct{}, 1024)
	var wg sync.WaitGroup
	var nSent, nFailed atomic.Int64
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				nSent.Add(1)
				if _, err := c.auth.Check(context.Background(), req); err != nil {
					nFailed.Add(1)
				}
			}
		}()
	}
	var due int64
	for {
		select {
		case <-ctx.Done():
			close(jobs)
			wg.Wait()
			return nSent.Load(), nFailed.Load()
		case now := <-tick.C:
			for target := int64(now.Sub(start).Seconds() * float64(rate)); due < target; due++ {
				select {
				case jobs <- struct{}{}:
				default: // the server is behind: the soak rate is not being met
				}
			}
		}
	}
}

func waitHTTP(url string) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready", url)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
