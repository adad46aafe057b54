package main

// The memory-under-attack scenario: a fresh server, warmed with a few
// ordinary Checks, then a stream of large hostile Checks, no two alike,
// while its resident memory is watched from /proc.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// hostileOptions are the scenario's flags.
type hostileOptions struct {
	checks      int    // hostile Checks in all; 0 skips the scenario
	concurrency int    // hostile Checks in flight
	env         string // both servers' Go memory settings, "KEY=VALUE ..."
}

// deploymentMemoryEnv is what deploy/istio/base gives the enforcer:
// GOMEMLIMIT from the container's 256Mi memory limit, which Kubernetes
// hands over in bytes. It sets no GOGC. The scenario's default is none of
// it — Tollgate's own defaults, the harder case — and -hostile-env
// deploymentMemoryEnv measures the deployment's.
const deploymentMemoryEnv = "GOMEMLIMIT=268435456"

const (
	// The hostile Check's target: an operation that requires a JWT.
	hostileMethod, hostilePath = "GET", "/catalog/v1/products/42"
	// junkTokenBytes is at Tollgate's bound on a bearer token, so the
	// token is decoded rather than refused for its size.
	junkTokenBytes = 16 << 10
	// 20 headers of 2 KiB: with the token, about 57 KB of headers, under
	// Envoy's default limit of 60 KiB, so an edge Envoy would pass them on.
	junkHeaders, junkHeaderBytes = 20, 2 << 10

	hostileWarmChecks   = 200
	hostileCheckTimeout = 30 * time.Second
	// hostileMaxSend is the client's limit on a message it sends, far above
	// a hostile Check, so that nothing is refused on the client's side.
	hostileMaxSend = 16 << 20

	rssSampleEvery    = 50 * time.Millisecond
	settleBeforeIdle  = time.Second
	settleAfterAttack = 5 * time.Second
	// hostileTarget bounds Tollgate's peak RSS above idle during the attack.
	hostileTarget = 128 << 20
)

// hostileResult is the scenario's measurement of both servers.
type hostileResult struct {
	opts hostileOptions
	runs []hostileRun // the do-nothing server, then Tollgate
}

// hostileRun is one server's memory and answers over the attack.
type hostileRun struct {
	server     string
	idle       int64 // VmRSS after the warm-up, bytes
	peakSample int64 // the highest VmRSS sampled during the attack
	peakHWM    int64 // VmHWM after the attack
	hwmReset   bool  // VmHWM was reset after the idle reading (else: since start)
	after      int64 // VmRSS settleAfterAttack after the attack
	elapsed    time.Duration
	answers    map[string]int64  // answered Checks by outcome ("denied 401 900901")
	failures   map[string]int64  // failed Checks by gRPC status code
	firstError map[string]string // the first error message of each failure code
	exited     bool              // the server was gone after the attack
}

// peak is the higher of the sampled peak and VmHWM (which sees spikes
// between samples).
func (r *hostileRun) peak() int64 { return max(r.peakSample, r.peakHWM) }

func (r *hostileRun) growth() int64 { return r.peak() - r.idle }

func (r *hostileRun) answered() int64 { return sum(r.answers) }

func (r *hostileRun) failed() int64 { return sum(r.failures) }

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// runHostile attacks a fresh do-nothing server, then a fresh Tollgate on
// the config of sc (which must require a JWT on hostilePath); sc.request
// is the ordinary Check of the warm-up.
func runHostile(o options, sc scenario) (*hostileResult, error) {
	env, err := memoryEnv(o.hostile.env)
	if err != nil {
		return nil, fmt.Errorf("-hostile-env: %w", err)
	}
	starts := []struct {
		name  string
		start func() (*server, error)
	}{
		{"noop", func() (*server, error) { return startNoop(o.noop, env) }},
		{"Tollgate", func() (*server, error) { return startEnforcer(o.enforcer, sc.config, env) }},
	}
	res := &hostileResult{opts: o.hostile}
	j := newJunk()
	fmt.Printf("%s (%s)\n", hostileName(o.hostile), envNote(o.hostile.env))
	for _, s := range starts {
		srv, err := s.start()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		heapProfile := ""
		if o.profiles != "" && s.name == "Tollgate" {
			heapProfile = filepath.Join(o.profiles, "hostile-heap.pprof")
		}
		r, err := attack(srv, sc.request, j, o.hostile, heapProfile)
		srv.stop()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		r.server = s.name
		printHostile(r)
		res.runs = append(res.runs, r)
	}
	return res, nil
}

// attack warms srv up with ordinary Checks, reads its idle RSS, sends the
// hostile Checks while sampling its RSS, and reads it again once settled.
// With heapProfile set it saves the server's heap profile there as the
// last hostile Check is answered, when what the attack left is still held.
func attack(srv *server, ordinary *authv3.CheckRequest, j *junk, ho hostileOptions, heapProfile string) (hostileRun, error) {
	pid := srv.pid()
	c, err := dial(srv.addrs["grpc"], grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(hostileMaxSend)))
	if err != nil {
		return hostileRun{}, err
	}
	defer c.conn.Close()
	if err := c.warmUp(ordinary); err != nil {
		return hostileRun{}, err
	}
	time.Sleep(settleBeforeIdle)
	r := hostileRun{}
	if r.idle, err = procMemory(pid, "VmRSS"); err != nil {
		return r, err
	}
	r.hwmReset = resetPeakRSS(pid) == nil

	watch := watchRSS(pid)
	start := time.Now()
	c.sendHostile(j, ho, &r)
	r.elapsed = time.Since(start)
	r.peakSample = watch.stop()
	r.peakHWM, _ = procMemory(pid, "VmHWM")
	if heapProfile != "" {
		saveURL(fmt.Sprintf("http://%s/debug/pprof/heap", srv.addrs["admin"]), heapProfile)
	}

	time.Sleep(settleAfterAttack)
	r.after, _ = procMemory(pid, "VmRSS")
	select {
	case <-srv.done:
		r.exited = true
	default:
	}
	return r, nil
}

// warmUp sends ordinary Checks, which must be allowed: the connection,
// the server's caches and pools are then as they would be in service.
func (c *client) warmUp(req *authv3.CheckRequest) error {
	for range hostileWarmChecks {
		resp, err := c.auth.Check(context.Background(), req)
		if err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		if resp.GetOkResponse() == nil {
			return fmt.Errorf("warm-up Check denied: %s", resp.GetDeniedResponse().GetBody())
		}
	}
	return nil
}

// sendHostile sends ho.checks hostile Checks, ho.concurrency in flight,
// each made just before it is sent so that the client stays small, and
// tallies how each ended in r.
func (c *client) sendHostile(j *junk, ho hostileOptions, r *hostileRun) {
	var next atomic.Int64
	var mu sync.Mutex
	r.answers, r.failures, r.firstError = map[string]int64{}, map[string]int64{}, map[string]string{}
	var wg sync.WaitGroup
	for range ho.concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= ho.checks {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), hostileCheckTimeout)
				resp, err := c.auth.Check(ctx, j.request(i))
				cancel()
				mu.Lock()
				tally(r, resp, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// tally counts one Check: a failed call by its gRPC status code, an
// answered one by whether it was allowed and, if denied, the HTTP status
// and error code of the denial.
func tally(r *hostileRun, resp *authv3.CheckResponse, err error) {
	if err != nil {
		code := status.Code(err).String()
		r.failures[code]++
		if _, seen := r.firstError[code]; !seen {
			r.firstError[code] = status.Convert(err).Message()
		}
		return
	}
	denied := resp.GetDeniedResponse()
	if denied == nil {
		r.answers["allowed"]++
		return
	}
	var body struct{ Code string }
	_ = json.Unmarshal([]byte(denied.GetBody()), &body)
	r.answers[strings.TrimSpace(fmt.Sprintf("denied %d %s", denied.GetStatus().GetCode(), body.Code))]++
}

// rssWatch samples a process's VmRSS until stopped, keeping the highest.
type rssWatch struct {
	quit chan struct{}
	peak chan int64
}

func watchRSS(pid int) *rssWatch {
	w := &rssWatch{quit: make(chan struct{}), peak: make(chan int64, 1)}
	go func() {
		tick := time.NewTicker(rssSampleEvery)
		defer tick.Stop()
		var peak int64
		for {
			if rss, err := procMemory(pid, "VmRSS"); err == nil {
				peak = max(peak, rss)
			}
			select {
			case <-w.quit:
				w.peak <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *rssWatch) stop() int64 {
	close(w.quit)
	return <-w.peak
}

// junk makes the filler of hostile Checks. Every piece starts with the
// Check's number and the piece's, so no two are alike, and goes on with a
// window of a random pool: making one costs a copy rather than random
// generation, and the client keeps ahead of the server.
type junk struct{ pool string }

const base64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func newJunk() *junk {
	rng := rand.New(rand.NewPCG(1, 2)) // the same junk every run
	pool := make([]byte, 1<<20)
	for i := range pool {
		pool[i] = base64url[rng.IntN(len(base64url))]
	}
	return &junk{pool: string(pool)}
}

// request is hostile Check number i: the ordinary shape (what an edge
// gateway sends for an outside client: no mesh principal) with a junk
// bearer token and junk headers, names and values unique to it.
func (j *junk) request(i int) *authv3.CheckRequest {
	extra := make(map[string]string, junkHeaders+1)
	extra["authorization"] = j.bearer(i)
	for h := range junkHeaders {
		extra[fmt.Sprintf("x-junk-%02d-%08x", h, i)] = j.text(i, 3+h, junkHeaderBytes)
	}
	return checkRequest(hostileMethod, hostilePath, extra, "")
}

// bearer is "Bearer " and a junk token of junkTokenBytes shaped like a
// JWT: three base64url parts, as long as an ES256 token's header and
// signature, and a payload filling the rest.
func (j *junk) bearer(i int) string {
	const header, signature = 36, 86
	var b strings.Builder
	b.Grow(len("Bearer ") + junkTokenBytes)
	b.WriteString("Bearer ")
	j.write(&b, i, 0, header)
	b.WriteByte('.')
	j.write(&b, i, 1, junkTokenBytes-header-signature-2)
	b.WriteByte('.')
	j.write(&b, i, 2, signature)
	return b.String()
}

func (j *junk) text(check, piece, n int) string {
	var b strings.Builder
	b.Grow(n)
	j.write(&b, check, piece, n)
	return b.String()
}

// write appends n junk bytes unique to (check, piece).
func (j *junk) write(b *strings.Builder, check, piece, n int) {
	id := fmt.Sprintf("%08x%02x", check, piece)
	// A well-mixed offset, so neighbouring Checks do not share windows.
	mix := uint64(check)*0x9e3779b97f4a7c15 ^ uint64(piece)*0xc2b2ae3d27d4eb4f
	off := int(mix>>16) % (len(j.pool) - n)
	b.WriteString(id)
	b.WriteString(j.pool[off : off+n-len(id)])
}

func hostileName(ho hostileOptions) string {
	n := fmt.Sprint(ho.checks)
	if ho.checks >= 1000 && ho.checks%1000 == 0 {
		n = fmt.Sprintf("%dk", ho.checks/1000)
	}
	return fmt.Sprintf("hostile: %s distinct 16 KiB junk tokens + 40 KB headers, %d in flight", n, ho.concurrency)
}

func envNote(env string) string {
	if strings.TrimSpace(env) == "" {
		return "no GOGC or GOMEMLIMIT"
	}
	return strings.Join(strings.Fields(env), " ")
}

func mib(bytes int64) string { return fmt.Sprintf("%.0f MiB", float64(bytes)/(1<<20)) }

func printHostile(r hostileRun) {
	fmt.Printf("  %-8s RSS idle %s, peak %s (sampled %s, VmHWM %s), peak-idle %s, 5 s after %s; "+
		"%d answered (%s), %d failed (%s) in %v\n",
		r.server, mib(r.idle), mib(r.peak()), mib(r.peakSample), mib(r.peakHWM), mib(r.growth()), mib(r.after),
		r.answered(), counts(r.answers), r.failed(), counts(r.failures), r.elapsed.Round(time.Millisecond))
	for _, code := range slices.Sorted(maps.Keys(r.firstError)) {
		fmt.Printf("    first %s: %s\n", code, r.firstError[code])
	}
}

// counts lists a tally, largest first: "99998 denied 401 900901, 2 allowed".
func counts(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		if m[a] != m[b] {
			return int(m[b] - m[a])
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", m[k], k)
	}
	return strings.Join(parts, ", ")
}

// renderHostile writes the scenario's section of BENCHMARKS.md.
func renderHostile(b *strings.Builder, h *hostileResult) {
	ho := h.opts
	fmt.Fprintf(b, "## Memory under attack\n\n")
	fmt.Fprintf(b, "Method: each server is started fresh (%s; Tollgate then runs GC at Go's default GOGC=100), "+
		"warmed with %d ordinary Checks carrying a valid JWT, and its RSS read after %v (idle); then one gRPC "+
		"connection carries %d hostile Checks, %d in flight, each `%s %s` (an operation that requires a JWT) with "+
		"`authorization: Bearer` and a %d-byte junk token in three base64url parts, plus %d headers of %d bytes, "+
		"names and values unique to the Check; RSS is VmRSS from `/proc/<pid>/status` sampled every %v, and "+
		"VmHWM%s; peak is the higher of the two, and RSS is read again %v after the last answer.\n\n",
		envSentence(ho.env), hostileWarmChecks, settleBeforeIdle, ho.checks, ho.concurrency, hostileMethod, hostilePath,
		junkTokenBytes, junkHeaders, junkHeaderBytes, rssSampleEvery, hwmNote(h), settleAfterAttack)
	fmt.Fprintf(b, "| %s | RSS idle | peak RSS (sampled / VmHWM) | peak − idle | RSS %v after | answered | failed | time | target: peak − idle ≤ %s |\n",
		hostileName(ho), settleAfterAttack, mib(hostileTarget))
	fmt.Fprintf(b, "|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range h.runs {
		fmt.Fprintf(b, "| %s | %s | %s (%s / %s) | **%s** | %s | %d (%s) | %d (%s) | %v | %s |\n",
			r.server, mib(r.idle), mib(r.peak()), mib(r.peakSample), mib(r.peakHWM), mib(r.growth()), mib(r.after),
			r.answered(), counts(r.answers), r.failed(), counts(r.failures), r.elapsed.Round(100*time.Millisecond), verdict(r))
	}
	for _, r := range h.runs {
		for _, code := range slices.Sorted(maps.Keys(r.firstError)) {
			fmt.Fprintf(b, "\n%s, first %s failure: %q\n", r.server, code, r.firstError[code])
		}
		if r.exited {
			fmt.Fprintf(b, "\n%s had exited by the end of the attack.\n", r.server)
		}
	}
}

// verdict is the target column: Tollgate is held to the target, the
// do-nothing server is the baseline. Memory kept low by not answering
// would not count, so failures and answers other than 401 are named.
func verdict(r hostileRun) string {
	if r.server != "Tollgate" {
		return "baseline"
	}
	v := "**not met**"
	if r.growth() <= hostileTarget {
		v = "**met**"
	}
	var but []string
	if r.exited {
		but = append(but, "Tollgate exited")
	}
	if n := r.failed(); n > 0 {
		but = append(but, fmt.Sprintf("%d Checks failed", n))
	}
	if n := r.answered() - unauthorized(r.answers); n > 0 {
		but = append(but, fmt.Sprintf("%d answers not 401", n))
	}
	if len(but) > 0 {
		v += " (but " + strings.Join(but, ", ") + ")"
	}
	return v
}

func unauthorized(answers map[string]int64) int64 {
	var n int64
	for k, v := range answers {
		if strings.HasPrefix(k, "denied 401") {
			n += v
		}
	}
	return n
}

func envSentence(env string) string {
	if strings.TrimSpace(env) == "" {
		return "no GOGC or GOMEMLIMIT in its environment"
	}
	if env == deploymentMemoryEnv {
		return "`" + env + "`, as deploy/istio/base sets it from the container's 256Mi limit, and no GOGC"
	}
	return "`" + envNote(env) + "` and nothing else of GOGC or GOMEMLIMIT"
}

func hwmNote(h *hostileResult) string {
	for _, r := range h.runs {
		if !r.hwmReset {
			return " (the peak since start: it could not be reset)"
		}
	}
	return " (reset after the idle reading)"
}
