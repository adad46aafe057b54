// Command run is `make bench`: it measures Tollgate's Check against a
// do-nothing ext_authz server in the same run, in interleaved rounds
// (noop, tollgate, noop, tollgate, ...) with one load client, and writes
// the results, as ratios to the do-nothing floor, to BENCHMARKS.md. It
// then attacks a fresh instance of each with large, distinct, hostile
// Checks and reports their memory (hostile.go); `-only hostile` runs just
// that.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

type options struct {
	enforcer, noop string
	rounds         int
	round          time.Duration
	concurrency    int
	soak           time.Duration
	soakRate       int
	out            string
	profiles       string // directory for CPU profiles of Tollgate's rounds; "" for none
	only           string // "" for everything, "hostile" for the memory-under-attack scenario alone
	hostile        hostileOptions
	scale          scaleOptions
}

func main() {
	var o options
	flag.StringVar(&o.enforcer, "enforcer", "bin/enforcer", "the enforcer binary")
	flag.StringVar(&o.noop, "noop", "bin/noop", "the do-nothing ext_authz server")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds per server and scenario")
	flag.DurationVar(&o.round, "round", 5*time.Second, "length of a round")
	flag.IntVar(&o.concurrency, "concurrency", 16, "Checks in flight")
	flag.DurationVar(&o.soak, "soak", 5*time.Minute, "soak length (0 skips it)")
	flag.IntVar(&o.soakRate, "soak-rate", 2000, "Checks per second during the soak")
	flag.StringVar(&o.out, "out", "BENCHMARKS.md", "report file")
	flag.StringVar(&o.profiles, "profiles", "", "write a CPU profile of Tollgate's first round of each scenario, and a heap profile at the end of the hostile attack, here")
	flag.StringVar(&o.only, "only", "", `run only this scenario: "hostile" (memory under attack), "scale" (a large key set from the file and over xDS) "admin" (the admin API's writes and propagation), "usage" (usage reporting's cost per decision) or "policies" (a Check with request policies and a CEL rule against one without)`)
	flag.IntVar(&o.scale.keys, "scale-keys", 1_000_000, "API keys in the scale scenario (0 skips it)")
	flag.IntVar(&o.scale.apps, "scale-apps", 100_000, "applications the scale scenario's keys belong to")
	flag.IntVar(&o.scale.apis, "scale-apis", 10_000, "APIs of ten operations in the scale scenario's many-APIs part (0 skips it)")
	flag.IntVar(&o.hostile.checks, "hostile-checks", 100_000, "hostile Checks in the memory-under-attack scenario (0 skips it)")
	flag.IntVar(&o.hostile.concurrency, "hostile-concurrency", 64, "hostile Checks in flight")
	flag.StringVar(&o.hostile.env, "hostile-env", "",
		"Go memory settings (KEY=VALUE ...) of both servers in the hostile scenario, replacing the bench's own GOGC and GOMEMLIMIT; e.g. "+deploymentMemoryEnv+" as deploy/istio sets it")
	flag.StringVar(&serverCPUs, "server-cpus", "", "run the servers on these CPUs (taskset -c), apart from the load client")
	load := flag.String("load", "", "only drive the API-key Check at this address for -round (for profiling a server by hand)")
	flag.Parse()
	if *load != "" {
		c, err := dial(*load)
		if err == nil {
			var s sample
			req := checkRequest("GET", "/partner/v1/orders/42", map[string]string{"apikey": benchKey}, "")
			s, err = c.drive(os.Getpid(), req, o.concurrency, o.round)
			fmt.Printf("%.0f Checks/s, %d errors\n", s.rps(), s.errors)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// result is one scenario's measurement of both servers.
type result struct {
	name           string
	noop, tollgate sample
	roundTrips     float64 // Redis commands per decision, when measured
}

// report is everything one run measured; a part not run is empty.
type report struct {
	results []result
	web     *webResult
	soak    *soakResult
	hostile *hostileResult
	scale   *scaleResult
	admin   *adminResult
	usage   *usageResult
	// policies is "API key allow" without and with policies, over gRPC
	// and in process.
	policies *policiesResult
}

func run(o options) error {
	switch {
	case o.only != "" && o.only != "hostile" && o.only != "scale" && o.only != "admin" && o.only != "usage" && o.only != "policies":
		return fmt.Errorf(`-only %q: the scenarios that run alone are "hostile", "scale", "admin", "usage" and "policies"`, o.only)
	case o.only == "hostile" && o.hostile.checks <= 0:
		return fmt.Errorf("-only hostile with -hostile-checks %d: nothing to run", o.hostile.checks)
	case o.only == "scale" && (o.scale.keys <= 0 || o.scale.apps <= 0):
		return fmt.Errorf("-only scale with -scale-keys %d -scale-apps %d: nothing to run", o.scale.keys, o.scale.apps)
	}
	dir, err := os.MkdirTemp("", "tollgate-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// Redis's address is chosen now so that the configs can name it; Redis
	// itself starts only if the scenarios that use it run.
	redisAddr := freeAddr()
	scens, err := scenarios(dir, redisAddr, o.profiles != "")
	if err != nil {
		return err
	}
	var rep report
	if o.only == "" {
		if err := measureThroughput(o, dir, scens, redisAddr, &rep); err != nil {
			return err
		}
	}
	if o.hostile.checks > 0 && (o.only == "" || o.only == "hostile") {
		// The cached-JWT scenario's config and request: an operation that
		// requires a JWT, and an ordinary Check for the warm-up.
		if rep.hostile, err = runHostile(o, scens[1]); err != nil {
			return fmt.Errorf("hostile: %w", err)
		}
	}
	if o.scale.keys > 0 && o.scale.apps > 0 && (o.only == "" || o.only == "scale") {
		if rep.scale, err = runScale(o); err != nil {
			return fmt.Errorf("scale: %w", err)
		}
	}
	if o.only == "" || o.only == "admin" {
		if rep.admin, err = runAdmin(); err != nil {
			return fmt.Errorf("admin: %w", err)
		}
	}
	if o.only == "" || o.only == "usage" {
		if rep.usage, err = runUsage(); err != nil {
			return fmt.Errorf("usage: %w", err)
		}
	}
	if o.only == "" || o.only == "policies" {
		if rep.policies, err = runPolicies(o, scens[0]); err != nil {
			return fmt.Errorf("policies: %w", err)
		}
	}
	text := render(o, rep)
	fmt.Println()
	fmt.Print(text)
	return os.WriteFile(o.out, []byte(text), 0o644)
}

// measureThroughput runs the CPU and throughput scenarios against the
// do-nothing server and Tollgate, nginx in front of each, and the soak.
func measureThroughput(o options, dir string, scens []scenario, redisAddr string, rep *report) error {
	redis, err := startRedis(dir, redisAddr)
	if err != nil {
		return err
	}
	defer redis.stop()
	noop, err := startNoop(o.noop, nil)
	if err != nil {
		return err
	}
	defer noop.stop()
	noopClient, err := dial(noop.addrs["grpc"])
	if err != nil {
		return err
	}
	defer noopClient.conn.Close()

	for _, sc := range scens {
		r, err := measure(o, sc, noop, noopClient, redis)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
		rep.results = append(rep.results, r)
		printRow(r)
	}

	if rep.web, err = measureNginx(o, dir, scens[0].config); err != nil {
		fmt.Fprintln(os.Stderr, "bench: nginx scenario skipped:", err)
	}

	if o.soak > 0 {
		if rep.soak, err = runSoak(o, scens[1]); err != nil {
			return fmt.Errorf("soak: %w", err)
		}
	}
	return nil
}

// measure runs one scenario: the enforcer on its config, then alternating
// rounds against the do-nothing server and the enforcer.
func measure(o options, sc scenario, noop *server, noopClient *client, redis *server) (result, error) {
	tg, err := startEnforcer(o.enforcer, sc.config, nil)
	if err != nil {
		return result{}, err
	}
	defer tg.stop()
	c, err := dial(tg.addrs["grpc"])
	if err != nil {
		return result{}, err
	}
	defer c.conn.Close()
	resp, err := c.auth.Check(context.Background(), sc.request)
	if err != nil {
		return result{}, err
	}
	if allowed := resp.GetOkResponse() != nil; allowed != sc.allowed {
		return result{}, fmt.Errorf("the scenario's Check was allowed=%v: %v", allowed, resp.GetDeniedResponse().GetBody())
	}
	// Warm both up: connections, caches, the JIT-free but lazy runtime.
	if _, err := noopClient.drive(noop.pid(), sc.request, o.concurrency, time.Second); err != nil {
		return result{}, err
	}
	if _, err := c.drive(tg.pid(), sc.request, o.concurrency, time.Second); err != nil {
		return result{}, err
	}
	r := result{name: sc.name}
	var redisBefore int
	if sc.redis {
		redisBefore = redisCalls(redis.addrs["redis"])
	}
	for i := range o.rounds {
		s, err := noopClient.drive(noop.pid(), sc.request, o.concurrency, o.round)
		if err != nil {
			return r, err
		}
		r.noop.add(s)
		if i == 0 && o.profiles != "" {
			go profile(tg, o.round-time.Second/2, filepath.Join(o.profiles, slug(sc.name)+".pprof"))
		}
		s, err = c.drive(tg.pid(), sc.request, o.concurrency, o.round)
		if err != nil {
			return r, err
		}
		r.tollgate.add(s)
	}
	if sc.redis {
		r.roundTrips = float64(redisCalls(redis.addrs["redis"])-redisBefore) / float64(r.tollgate.checks)
	}
	if r.tollgate.errors > 0 || r.noop.errors > 0 {
		return r, fmt.Errorf("%d / %d failed Checks", r.tollgate.errors, r.noop.errors)
	}
	return r, nil
}

// profile saves a CPU profile of the enforcer (its config enables pprof
// when -profiles is set).
func profile(tg *server, d time.Duration, path string) {
	saveURL(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", tg.addrs["admin"], max(int(d.Seconds()), 1)), path)
}

// saveURL writes what url answers to path (a profile; failures are only
// reported, the measurement goes on).
func saveURL(url, path string) {
	resp, err := http.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		return
	}
	defer f.Close()
	_, _ = io.Copy(f, resp.Body)
}

func slug(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else if b.Len() > 0 && !strings.HasSuffix(b.String(), "-") {
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), "-")
}

func printRow(r result) {
	fmt.Printf("%-58s cpu/check %6.1fµs vs %6.1fµs (%.2fx)  rps %8.0f vs %8.0f (%.2fx)\n", r.name,
		us(r.tollgate.cpuPerCheck()), us(r.noop.cpuPerCheck()), ratio(r.tollgate.cpuPerCheck(), r.noop.cpuPerCheck()),
		r.tollgate.rps(), r.noop.rps(), r.tollgate.rps()/r.noop.rps())
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

// startRedis runs a redis-server at addr for the Redis scenario.
func startRedis(dir, addr string) (*server, error) {
	_, port, _ := strings.Cut(addr, ":")
	cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("redis-server (scripts/bench-deps.sh installs it): %w", err)
	}
	s := &server{name: "redis", cmd: cmd, addrs: map[string]string{"redis": addr}, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	return s, waitTCP(addr)
}

// redisCalls counts the script calls Redis has run without an error
// (INFO commandstats: calls minus failed_calls, so a NOSCRIPT is not one).
func redisCalls(addr string) int {
	host, port, _ := strings.Cut(addr, ":")
	out, err := exec.Command("redis-cli", "-h", host, "-p", port, "INFO", "commandstats").Output()
	if err != nil {
		return 0
	}
	total := 0
	for _, line := range strings.Split(string(out), "\n") {
		for _, cmd := range []string{"cmdstat_evalsha:", "cmdstat_eval:"} {
			rest, ok := strings.CutPrefix(strings.TrimSpace(line), cmd)
			if !ok {
				continue
			}
			for _, field := range strings.Split(rest, ",") {
				k, v, _ := strings.Cut(field, "=")
				n, _ := strconv.Atoi(v)
				switch k {
				case "calls":
					total += n
				case "failed_calls":
					total -= n
				}
			}
		}
	}
	return total
}

// soakResult is the enforcer's state before and after the soak.
type soakResult struct {
	rate, sent, failed int64
	length             time.Duration
	start, end         map[string]float64
}

var soakMetrics = []string{"process_resident_memory_bytes", "go_goroutines", "go_memstats_heap_inuse_bytes", "go_memstats_heap_objects"}

// runSoak drives the cached-JWT scenario at a fixed rate and compares the
// process's memory and goroutines at the start and the end.
func runSoak(o options, sc scenario) (*soakResult, error) {
	tg, err := startEnforcer(o.enforcer, sc.config, nil)
	if err != nil {
		return nil, err
	}
	defer tg.stop()
	c, err := dial(tg.addrs["grpc"])
	if err != nil {
		return nil, err
	}
	defer c.conn.Close()
	warm := min(30*time.Second, o.soak/5)
	fmt.Printf("soak: %d Checks/s for %v (after %v of warm-up)\n", o.soakRate, o.soak, warm)
	c.pace(sc.request, o.soakRate, warm)
	start, err := scrape("http://" + tg.addrs["admin"] + "/metrics")
	if err != nil {
		return nil, err
	}
	sent, failed := c.pace(sc.request, o.soakRate, o.soak)
	end, err := scrape("http://" + tg.addrs["admin"] + "/metrics")
	if err != nil {
		return nil, err
	}
	return &soakResult{rate: int64(o.soakRate), sent: sent, failed: failed, length: o.soak, start: start, end: end}, nil
}

func scrape(url string) (map[string]float64, error) { return scrapeAll(url, soakMetrics...) }

// scrapeAll reads the named metrics (the first series of each).
func scrapeAll(url string, names ...string) (map[string]float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, name := range names {
		if f := families[name]; f != nil && len(f.GetMetric()) > 0 {
			m := f.GetMetric()[0]
			out[name] = m.GetGauge().GetValue() + m.GetCounter().GetValue() + m.GetUntyped().GetValue()
		}
	}
	return out, nil
}

// machine describes where the numbers come from. It counts the CPUs in
// /proc/cpuinfo: runtime.NumCPU would see only the load client's.
func machine() string {
	model, cpus := "unknown CPU", 0
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if name, ok := strings.CutPrefix(line, "model name"); ok && model == "unknown CPU" {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
			}
			if strings.HasPrefix(line, "processor") {
				cpus++
			}
		}
	}
	return fmt.Sprintf("%d CPUs (`nproc`), %s, %s/%s, %s", cpus, model, runtime.GOOS, runtime.GOARCH, runtime.Version())
}
