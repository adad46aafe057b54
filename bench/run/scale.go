package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The scale scenario: a large key set served from the YAML file (the
// baseline) and pushed over xDS by the control plane, in the same run.

type scaleOptions struct {
	keys, apps int
	apis       int // APIs of the many-APIs part (apis.go)
}

// scaleResult is what the scale scenario measured.
type scaleResult struct {
	keys, apps int
	file       loadFigures // enforcer serve on the YAML
	fileReload loadFigures // one key added to that YAML
	sync       loadFigures // a fresh replica of the control plane
	cold       loadFigures // the replica restarted with the control plane away
	keyChange  loadFigures // one key added at the control plane
	idleRate   float64     // the replica's CPU per second while polled, before the change
	// propagation is BenchmarkPropagation's percentiles (p50-ms, p99-ms,
	// max-ms); nil when it could not run.
	propagation map[string]float64
	apis        *apisResult // nil when not run
}

// keyChangeCPU is the replica's CPU for the key change beyond what the
// polling costs over as long.
func (s *scaleResult) keyChangeCPU() time.Duration {
	return max(s.keyChange.cpu-time.Duration(s.idleRate*s.keyChange.took.Seconds()), 0)
}

// loadFigures are one load's: how long until it served, and memory.
type loadFigures struct {
	took          time.Duration
	cpu           time.Duration // the process's CPU time over the load
	rssReady      int64         // when it became ready (or applied the change)
	rssPeak       int64         // VmHWM over the load
	rssSettled    int64         // a few seconds later
	heapInuse     float64       // go_memstats_heap_inuse_bytes, settled
	heapAllocated float64       // go_memstats_heap_alloc_bytes, settled
	liveHeapPeak  int64         // the largest heap a collection found live over the load
}

// rssOverLive is the peak RSS over the peak live heap.
func (f loadFigures) rssOverLive() float64 {
	if f.liveHeapPeak == 0 {
		return 0
	}
	return float64(f.rssPeak) / float64(f.liveHeapPeak)
}

func scaleKey(i int) string { return fmt.Sprintf("tgk_scale_%d", i) }

// writeScaleResources writes an API, apps applications each subscribed to
// it, and keys API keys spread over them.
func writeScaleResources(path string, o scaleOptions) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintf(w, "apis:\n  - {id: api, basePath: /api, security: [apiKey], operations: [{path: /x, methods: [GET]}]}\napplications:\n")
	for i := range o.apps {
		fmt.Fprintf(w, "  - {id: app%d}\n", i)
	}
	fmt.Fprintf(w, "subscriptions:\n")
	for i := range o.apps {
		fmt.Fprintf(w, "  - {application: app%d, api: api, state: active}\n", i)
	}
	fmt.Fprintf(w, "apiKeys:\n")
	for i := range o.keys {
		writeScaleKey(w, i, o.apps)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func writeScaleKey(w interface{ WriteString(string) (int, error) }, i, apps int) {
	sum := sha256.Sum256([]byte(scaleKey(i)))
	_, _ = w.WriteString(fmt.Sprintf("  - {application: app%d, sha256: %s}\n", i%apps, hex.EncodeToString(sum[:])))
}

// appendScaleKey adds key i to a resources file, written whole and
// renamed into place as an editor or a GitOps sync would.
func appendScaleKey(path string, i, apps int) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var b strings.Builder
	writeScaleKey(&b, i, apps)
	tmp := path + ".new"
	if err := os.WriteFile(tmp, append(data, b.String()...), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// startProc runs a process of the scale scenario, its log in a file.
func startProc(dir, name, bin string, args ...string) (*server, error) {
	log, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	// On every CPU, whatever the bench itself is pinned to: a replica and
	// its control plane share the machine, as they would a node.
	cmd := exec.Command("taskset", append([]string{"-c", allCPUs(), bin}, args...)...)
	cmd.Stdout, cmd.Stderr = log, log
	// Each collection's live heap goes to the log (liveHeapPeak).
	cmd.Env = append(os.Environ(), "GODEBUG=gctrace=1")
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &server{name: name, cmd: cmd, addrs: map[string]string{}, done: make(chan struct{}), log: log.Name()}
	go func() { _ = cmd.Wait(); log.Close(); close(p.done) }()
	return p, nil
}

// logSize is how much a process has logged so far: where a measure's
// share of its log starts.
func (p *server) logSize() int64 {
	fi, err := os.Stat(p.log)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// liveHeapPeak is the largest heap a collection found live, from the
// gctrace lines the process logged after offset from ("gc 7 @1.2s 3%:
// ..., 120->130->64 MB, ..."; the third figure is the live heap).
func (p *server) liveHeapPeak(from int64) int64 {
	f, err := os.Open(p.log)
	if err != nil {
		return 0
	}
	defer f.Close()
	if _, err := f.Seek(from, 0); err != nil {
		return 0
	}
	var peak int64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "gc ") {
			continue
		}
		for field := range strings.SplitSeq(line, ",") {
			sizes, ok := strings.CutSuffix(strings.TrimSpace(field), " MB")
			parts := strings.Split(sizes, "->")
			if !ok || len(parts) != 3 {
				continue
			}
			if mb, err := strconv.ParseInt(parts[2], 10, 64); err == nil {
				peak = max(peak, mb<<20)
			}
		}
	}
	return peak
}

// until polls ok every 20ms until it holds, the process exits or the
// deadline passes.
func (p *server) until(what string, deadline time.Duration, ok func() bool) error {
	end := time.Now().Add(deadline)
	for !ok() {
		select {
		case <-p.done:
			return fmt.Errorf("exited while waiting for %s", what)
		default:
		}
		if time.Now().After(end) {
			return fmt.Errorf("no %s after %v", what, deadline)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func ready(admin string) func() bool {
	return func() bool {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
}

// allows says whether the enforcer at grpc lets key i in.
func allows(grpc string, i int) func() bool {
	c, err := dial(grpc)
	if err != nil {
		return func() bool { return false }
	}
	req := checkRequest("GET", "/api/x", map[string]string{"apikey": scaleKey(i)}, "")
	return func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		resp, err := c.auth.Check(ctx, req)
		return err == nil && resp.GetOkResponse() != nil
	}
}

// measureLoad runs start, then waits for done; it reads the process's
// memory along the way and again once it has settled.
func measureLoad(p *server, admin string, began time.Time, cpu0 time.Duration, logFrom int64, done func() error) (loadFigures, error) {
	var f loadFigures
	if err := done(); err != nil {
		return f, err
	}
	f.took = time.Since(began)
	f.rssReady, _ = procMemory(p.pid(), "VmRSS")
	f.rssPeak, _ = procMemory(p.pid(), "VmHWM")
	cpu, _ := cpuTime(p.pid())
	f.cpu = cpu - cpu0
	time.Sleep(5 * time.Second) // the measure of what stays, not a synchronisation
	f.rssSettled, _ = procMemory(p.pid(), "VmRSS")
	f.liveHeapPeak = p.liveHeapPeak(logFrom)
	if m, err := scrapeAll("http://"+admin+"/metrics", "go_memstats_heap_inuse_bytes", "go_memstats_heap_alloc_bytes"); err == nil {
		f.heapInuse, f.heapAllocated = m["go_memstats_heap_inuse_bytes"], m["go_memstats_heap_alloc_bytes"]
	}
	return f, nil
}

func runScale(o options) (*scaleResult, error) {
	dir, err := os.MkdirTemp("", "tollgate-scale-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	so := o.scale
	res := &scaleResult{keys: so.keys, apps: so.apps}
	fmt.Printf("scale: writing %d keys over %d applications\n", so.keys, so.apps)
	resources := filepath.Join(dir, "resources.yaml")
	if err := writeScaleResources(resources, so); err != nil {
		return nil, err
	}
	if err := scaleFromFile(o, dir, resources, res); err != nil {
		return nil, fmt.Errorf("from the file: %w", err)
	}
	if err := scaleOverXDS(o, dir, resources, res); err != nil {
		return nil, fmt.Errorf("over xDS: %w", err)
	}
	var err2 error
	if res.propagation, err2 = propagation(); err2 != nil {
		fmt.Fprintln(os.Stderr, "bench: propagation skipped:", err2)
	}
	if so.apis > 0 {
		if res.apis, err = runAPIs(o, dir); err != nil {
			return nil, fmt.Errorf("many APIs: %w", err)
		}
	}
	return res, nil
}

// propagation runs BenchmarkPropagation (internal/controlplane) once: the
// control plane's caches and three replica clients in one process, over
// loopback gRPC, with the test toolchain that built the bench.
func propagation() (map[string]float64, error) {
	fmt.Println("scale: propagation to three replicas, 1,000 changes at 100/s")
	out, err := exec.Command("go", "test", "-run", "^$", "-bench", "^BenchmarkPropagation$", "-benchtime", "1x", "./internal/controlplane").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, "BenchmarkPropagation") {
			continue
		}
		fields := strings.Fields(line)
		m := map[string]float64{}
		for i := 1; i+1 < len(fields); i++ {
			if v, err := strconv.ParseFloat(fields[i], 64); err == nil && strings.HasSuffix(fields[i+1], "-ms") {
				m[fields[i+1]] = v
			}
		}
		if len(m) == 3 {
			return m, nil
		}
	}
	return nil, fmt.Errorf("no figures in: %s", out)
}

// scaleFromFile is the baseline: enforcer serve on the whole YAML, then
// one key added to it.
func scaleFromFile(o options, dir, resources string, res *scaleResult) error {
	grpc, admin := freeAddr(), freeAddr()
	cfg := filepath.Join(dir, "serve-file.yaml")
	data, err := os.ReadFile(resources)
	if err != nil {
		return err
	}
	head := fmt.Sprintf("listen: {grpc: %q, http: %q, admin: %q}\nunmatched: deny\n", grpc, freeAddr(), admin)
	if err := os.WriteFile(cfg, append([]byte(head), data...), 0o600); err != nil {
		return err
	}
	began := time.Now()
	p, err := startProc(dir, "serve-file", o.enforcer, "serve", "--config", cfg)
	if err != nil {
		return err
	}
	defer p.stop()
	if res.file, err = measureLoad(p, admin, began, 0, 0, func() error {
		return p.until("ready", 5*time.Minute, ready(admin))
	}); err != nil {
		return err
	}
	fmt.Printf("scale: file load %v, RSS %d MiB\n", res.file.took.Round(time.Millisecond), res.file.rssSettled>>20)
	_ = resetPeakRSS(p.pid())
	cpu0, _ := cpuTime(p.pid())
	logFrom := p.logSize()
	began = time.Now()
	if err := appendScaleKey(cfg, res.keys, res.apps); err != nil {
		return err
	}
	res.fileReload, err = measureLoad(p, admin, began, cpu0, logFrom, func() error {
		return p.until("the added key", 5*time.Minute, allows(grpc, res.keys))
	})
	fmt.Printf("scale: file reload %v\n", res.fileReload.took.Round(time.Millisecond))
	return err
}

// scaleOverXDS serves the same YAML from the control plane: a fresh
// replica's sync, one key added, and a restart from the persisted state
// with the control plane away.
func scaleOverXDS(o options, dir, resources string, res *scaleResult) error {
	xds, api := freeAddr(), freeAddr()
	cpCfg := filepath.Join(dir, "cp.yaml")
	if err := os.WriteFile(cpCfg, fmt.Appendf(nil, "listen: {xds: %q, api: %q}\nsource: {file: %s}\n", xds, api, resources), 0o600); err != nil {
		return err
	}
	cp, err := startProc(dir, "controlplane", o.enforcer, "controlplane", "--config", cpCfg)
	if err != nil {
		return err
	}
	defer cp.stop()
	if err := cp.until("a ready control plane", 5*time.Minute, ready(api)); err != nil {
		return err
	}
	if err := cp.until("an idle control plane", 2*time.Minute, idle(cp.pid())); err != nil {
		return err
	}
	grpc, admin := freeAddr(), freeAddr()
	replica := func(name, address string) (string, error) {
		cfg := filepath.Join(dir, name+".yaml")
		return cfg, os.WriteFile(cfg, fmt.Appendf(nil, "listen: {grpc: %q, http: %q, admin: %q}\nunmatched: deny\n"+
			"controlPlane: {address: %q, node: bench, stateDir: %s}\n", grpc, freeAddr(), admin, address, filepath.Join(dir, "state")), 0o600)
	}
	cfg, err := replica("replica", xds)
	if err != nil {
		return err
	}
	began := time.Now()
	r, err := startProc(dir, "replica", o.enforcer, "serve", "--config", cfg)
	if err != nil {
		return err
	}
	defer func() { r.stop() }()
	if res.sync, err = measureLoad(r, admin, began, 0, 0, func() error {
		if err := r.until("ready", 5*time.Minute, ready(admin)); err != nil {
			return err
		}
		return r.until("the first key", time.Minute, allows(grpc, 0))
	}); err != nil {
		return err
	}
	fmt.Printf("scale: initial sync %v, RSS %d MiB\n", res.sync.took.Round(time.Millisecond), res.sync.rssSettled>>20)
	// One key added: the replica's CPU is read around the change only
	// (the control plane rereads its file first), and, to tell the change
	// from the Checks that poll for it, over the same polling for a key
	// that is not there.
	if res.idleRate, err = pollingRate(r.pid(), grpc, res.keys+1); err != nil {
		return err
	}
	_ = resetPeakRSS(r.pid())
	cpu0, _ := cpuTime(r.pid())
	logFrom := r.logSize()
	began = time.Now()
	if err := appendScaleKey(resources, res.keys, res.apps); err != nil {
		return err
	}
	if res.keyChange, err = measureLoad(r, admin, began, cpu0, logFrom, func() error {
		return r.until("the added key", 5*time.Minute, allows(grpc, res.keys))
	}); err != nil {
		return err
	}
	fmt.Printf("scale: one key change, replica CPU %v\n", res.keyChange.cpu)
	// Restarted with the control plane away: from the persisted state.
	if err := r.until("the state written", time.Minute, stateWritten(filepath.Join(dir, "state"))); err != nil {
		return err
	}
	r.stop()
	if cfg, err = replica("replica-cold", freeAddr()); err != nil {
		return err
	}
	began = time.Now()
	if r, err = startProc(dir, "replica-cold", o.enforcer, "serve", "--config", cfg); err != nil {
		return err
	}
	res.cold, err = measureLoad(r, admin, began, 0, 0, func() error {
		if err := r.until("ready", 5*time.Minute, ready(admin)); err != nil {
			return err
		}
		return r.until("the added key", time.Minute, allows(grpc, res.keys))
	})
	fmt.Printf("scale: cold start %v, RSS %d MiB\n", res.cold.took.Round(time.Millisecond), res.cold.rssSettled>>20)
	return err
}

// pollingRate is a process's CPU per second while a Check polls it
// every 20ms for key i, which it does not hold.
func pollingRate(pid int, grpc string, i int) (float64, error) {
	poll := allows(grpc, i)
	cpu0, _ := cpuTime(pid)
	began := time.Now()
	for time.Since(began) < 5*time.Second {
		if poll() {
			return 0, fmt.Errorf("key %d is allowed before it was added", i)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cpu, _ := cpuTime(pid)
	return float64(cpu-cpu0) / time.Since(began).Seconds(), nil
}

// allCPUs lists every CPU of the machine for taskset.
func allCPUs() string {
	n := 0
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "processor") {
				n++
			}
		}
	}
	return fmt.Sprintf("0-%d", max(n-1, 0))
}

// idle says whether a process used under 5% of a CPU over the last
// half second.
func idle(pid int) func() bool {
	return func() bool {
		a, _ := cpuTime(pid)
		time.Sleep(500 * time.Millisecond)
		b, _ := cpuTime(pid)
		return b-a < 25*time.Millisecond
	}
}

// stateWritten says whether the state directory holds a state and no
// write is under way (no temporary file).
func stateWritten(dir string) func() bool {
	return func() bool {
		entries, _ := os.ReadDir(dir)
		state := false
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				return false
			}
			state = state || strings.HasPrefix(e.Name(), "state-")
		}
		return state
	}
}
