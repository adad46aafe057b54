package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The many-APIs part of the scale scenario: n APIs of ten operations,
// told apart by base path and, separately, by host only, loaded from the
// file and synced over xDS; and matching among them in process.

// apiShape is one way of telling many APIs apart.
type apiShape struct {
	name string
	// api is API i's base path and hosts, as YAML flow values.
	api func(i int) (basePath, hosts string)
	// request is a request for API i: its host and path.
	request func(i int) (host, path string)
}

var apiShapes = []apiShape{
	{name: "basePath",
		api:     func(i int) (string, string) { return "/t" + strconv.Itoa(i), "[]" },
		request: func(i int) (string, string) { return "api.example.com", "/t" + strconv.Itoa(i) + "/items9/42" }},
	{name: "host",
		api: func(i int) (string, string) { return "/shop", "[t" + strconv.Itoa(i) + ".example.com]" },
		request: func(i int) (string, string) {
			return "t" + strconv.Itoa(i) + ".example.com", "/shop/items9/42"
		}},
}

// apisResult is what the many-APIs part measured.
type apisResult struct {
	apis   int
	shapes []apisShapeResult
	// match is BenchmarkMatchManyAPIs's ns/op by sub-benchmark
	// ("basePath/10000"); nil when it could not run.
	match map[string]float64
	// tokens is BenchmarkManyLiveTokens's figures; nil when it could not
	// run.
	tokens []tokenCacheFigures
}

type apisShapeResult struct {
	name       string
	file, sync loadFigures
}

// writeAPIs writes n APIs of ten operations each in the given shape.
func writeAPIs(path string, n int, shape apiShape) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var ops strings.Builder
	for j := range 10 {
		if j > 0 {
			ops.WriteString(", ")
		}
		fmt.Fprintf(&ops, "{path: \"/items%d/{id}\", methods: [GET]}", j)
	}
	fmt.Fprintf(w, "apis:\n")
	for i := range n {
		base, hosts := shape.api(i)
		fmt.Fprintf(w, "  - {id: t%d, basePath: %s, hosts: %s, security: [none], operations: [%s]}\n", i, base, hosts, ops.String())
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// allowsRequest says whether the enforcer at grpc lets a request for host
// and path through.
func allowsRequest(grpc, host, path string) func() bool {
	c, err := dial(grpc)
	if err != nil {
		return func() bool { return false }
	}
	req := checkRequest("GET", path, map[string]string{":authority": host}, "")
	req.Attributes.Request.Http.Host = host
	return func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		resp, err := c.auth.Check(ctx, req)
		return err == nil && resp.GetOkResponse() != nil
	}
}

func runAPIs(o options, dir string) (*apisResult, error) {
	res := &apisResult{apis: o.scale.apis}
	for _, shape := range apiShapes {
		fmt.Printf("scale: %d APIs told apart by %s\n", o.scale.apis, shape.name)
		resources := filepath.Join(dir, "apis-"+shape.name+".yaml")
		if err := writeAPIs(resources, o.scale.apis, shape); err != nil {
			return nil, err
		}
		r := apisShapeResult{name: shape.name}
		host, path := shape.request(o.scale.apis - 1)
		var err error
		if r.file, err = apisFromFile(o, dir, resources, host, path); err != nil {
			return nil, fmt.Errorf("%s, from the file: %w", shape.name, err)
		}
		if r.sync, err = apisOverXDS(o, dir, resources, host, path); err != nil {
			return nil, fmt.Errorf("%s, over xDS: %w", shape.name, err)
		}
		res.shapes = append(res.shapes, r)
	}
	var err error
	if res.match, err = matchManyAPIs(); err != nil {
		fmt.Fprintln(os.Stderr, "bench: matching among many APIs skipped:", err)
	}
	if res.tokens, err = manyLiveTokens(); err != nil {
		fmt.Fprintln(os.Stderr, "bench: many live tokens skipped:", err)
	}
	return res, nil
}

// apisFromFile is `enforcer serve` on the APIs' file: from its start
// until the last API allows a request.
func apisFromFile(o options, dir, resources, host, path string) (loadFigures, error) {
	grpc, admin := freeAddr(), freeAddr()
	cfg := filepath.Join(dir, "serve-apis.yaml")
	data, err := os.ReadFile(resources)
	if err != nil {
		return loadFigures{}, err
	}
	head := fmt.Sprintf("listen: {grpc: %q, http: %q, admin: %q}\nunmatched: deny\n", grpc, freeAddr(), admin)
	if err := os.WriteFile(cfg, append([]byte(head), data...), 0o600); err != nil {
		return loadFigures{}, err
	}
	began := time.Now()
	p, err := startProc(dir, "serve-apis", o.enforcer, "serve", "--config", cfg)
	if err != nil {
		return loadFigures{}, err
	}
	defer p.stop()
	return measureLoad(p, admin, began, 0, 0, func() error {
		if err := p.until("ready", 5*time.Minute, ready(admin)); err != nil {
			return err
		}
		return p.until("the last API", time.Minute, allowsRequest(grpc, host, path))
	})
}

// apisOverXDS is a fresh replica of a control plane serving the APIs'
// file: from the replica's start until the last API allows a request.
func apisOverXDS(o options, dir, resources, host, path string) (loadFigures, error) {
	xds, api := freeAddr(), freeAddr()
	cpCfg := filepath.Join(dir, "cp-apis.yaml")
	if err := os.WriteFile(cpCfg, fmt.Appendf(nil, "listen: {xds: %q, api: %q}\nsource: {file: %s}\n", xds, api, resources), 0o600); err != nil {
		return loadFigures{}, err
	}
	cp, err := startProc(dir, "controlplane-apis", o.enforcer, "controlplane", "--config", cpCfg)
	if err != nil {
		return loadFigures{}, err
	}
	defer cp.stop()
	if err := cp.until("a ready control plane", 5*time.Minute, ready(api)); err != nil {
		return loadFigures{}, err
	}
	if err := cp.until("an idle control plane", 2*time.Minute, idle(cp.pid())); err != nil {
		return loadFigures{}, err
	}
	grpc, admin := freeAddr(), freeAddr()
	state, err := os.MkdirTemp(dir, "state-apis-")
	if err != nil {
		return loadFigures{}, err
	}
	cfg := filepath.Join(dir, "replica-apis.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "listen: {grpc: %q, http: %q, admin: %q}\nunmatched: deny\n"+
		"controlPlane: {address: %q, node: bench, stateDir: %s}\n", grpc, freeAddr(), admin, xds, state), 0o600); err != nil {
		return loadFigures{}, err
	}
	began := time.Now()
	r, err := startProc(dir, "replica-apis", o.enforcer, "serve", "--config", cfg)
	if err != nil {
		return loadFigures{}, err
	}
	defer r.stop()
	return measureLoad(r, admin, began, 0, 0, func() error {
		if err := r.until("ready", 5*time.Minute, ready(admin)); err != nil {
			return err
		}
		return r.until("the last API", time.Minute, allowsRequest(grpc, host, path))
	})
}

// matchManyAPIs runs BenchmarkMatchManyAPIs (internal/catalog) with the
// test toolchain that built the bench.
func matchManyAPIs() (map[string]float64, error) {
	fmt.Println("scale: matching among many APIs, in process")
	out, err := exec.Command("go", "test", "-run", "^$", "-bench", "^BenchmarkMatchManyAPIs$", "./internal/catalog").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, out)
	}
	m := map[string]float64{}
	for _, line := range strings.Split(string(out), "\n") {
		name, ok := strings.CutPrefix(line, "BenchmarkMatchManyAPIs/")
		fields := strings.Fields(name)
		if !ok || len(fields) < 4 || fields[3] != "ns/op" {
			continue
		}
		if v, err := strconv.ParseFloat(fields[2], 64); err == nil {
			sub, _, _ := strings.Cut(fields[0], "-") // the -GOMAXPROCS suffix
			m[sub] = v
		}
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("no figures in: %s", out)
	}
	return m, nil
}

// tokenCacheFigures are BenchmarkManyLiveTokens's, by cache size.
type tokenCacheFigures struct {
	entries            string
	nsPerCheck, hitPct float64
	bytesPerToken      float64
}

// manyLiveTokens runs BenchmarkManyLiveTokens (internal/authz): 100,000
// distinct live tokens at the default cache size and at the README's.
func manyLiveTokens() ([]tokenCacheFigures, error) {
	fmt.Println("scale: 100,000 distinct live tokens, in process")
	out, err := exec.Command("go", "test", "-run", "^$", "-bench", "^BenchmarkManyLiveTokens$", "-benchtime", "200000x", "./internal/authz").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, out)
	}
	var figs []tokenCacheFigures
	for _, line := range strings.Split(string(out), "\n") {
		name, ok := strings.CutPrefix(line, "BenchmarkManyLiveTokens/entries=")
		fields := strings.Fields(name)
		if !ok || len(fields) < 2 {
			continue
		}
		f := tokenCacheFigures{}
		f.entries, _, _ = strings.Cut(fields[0], "-")
		v := benchValues(fields[1:])
		f.nsPerCheck, f.hitPct, f.bytesPerToken = v["ns/op"], v["hit-%"], v["B/token"]
		figs = append(figs, f)
	}
	if len(figs) == 0 {
		return nil, fmt.Errorf("no figures in: %s", out)
	}
	return figs, nil
}
