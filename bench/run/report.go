package main

import (
	"fmt"
	"strings"
	"time"
)

// render writes the report in Markdown.
func render(o options, rep report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmarks\n\n")
	fmt.Fprintf(&b, "Written by `make bench` on %s.\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "Machine: %s.\n\n", machine())
	renderPlacement(&b)
	if len(rep.results) > 0 {
		renderThroughput(&b, o, rep)
	}
	if rep.hostile != nil {
		if len(rep.results) > 0 {
			b.WriteString("\n")
		}
		renderHostile(&b, rep.hostile)
	}
	if rep.scale != nil {
		renderScale(&b, rep.scale)
		if rep.scale.apis != nil {
			renderAPIs(&b, rep.scale.apis)
		}
	}
	if rep.admin != nil {
		renderAdmin(&b, rep.admin)
	}
	if rep.usage != nil {
		renderUsage(&b, rep.usage)
	}
	if rep.policies != nil {
		renderPolicies(&b, rep.policies)
	}
	return b.String()
}

func renderPlacement(b *strings.Builder) {
	if serverCPUs == "" {
		fmt.Fprintf(b, "Placement: client and servers share the machine's CPUs.\n\n")
		return
	}
	cpus := serverCPUs
	if first, last, ok := strings.Cut(cpus, "-"); ok && first == last {
		cpus = first
	}
	fmt.Fprintf(b, "Placement: the servers (Tollgate, noop, nginx) run on CPU(s) %s (`taskset`); the load clients and Redis, "+
		"which stands in for a remote store, run on the others.\n\n", cpus)
}

// renderThroughput writes the CPU and throughput scenarios, nginx and the soak.
func renderThroughput(b *strings.Builder, o options, rep report) {
	results, web, soak := rep.results, rep.web, rep.soak
	fmt.Fprintf(b, "Method: Tollgate and a do-nothing ext_authz v3 server (`bench/noop`, the floor: gRPC and the "+
		"protos alone) run side by side on loopback. One load client (`bench/run`: one gRPC connection, %d Checks "+
		"in flight, each sent when the last is answered) drives them in interleaved rounds — noop, Tollgate, noop, "+
		"Tollgate … — %d rounds of %v each per scenario, after a warm-up. Server CPU per Check is the server "+
		"process's own user+system time (`/proc/<pid>/stat`) over its rounds, divided by the Checks it answered. "+
		"Throughput is what this client gets, not a server's ceiling. Both servers run with Go's defaults "+
		"apart from what Tollgate sets itself (a gRPC stream-worker pool; GC at Go's default pace). Ratios are Tollgate / noop "+
		"in the same run. The noop decodes each CheckRequest with the generated protobuf code, as an ordinary "+
		"server does; Tollgate reads it straight from the wire (`authz.WireCheckRequest`), which saves more than "+
		"its whole decision costs, so its CPU per Check can come in under the floor.\n\n", o.concurrency, o.rounds, o.round)

	fmt.Fprintf(b, "| scenario | CPU/Check noop | CPU/Check Tollgate | ratio | Checks/s noop | Checks/s Tollgate | ratio | p50 noop / Tollgate | p99 noop / Tollgate |\n")
	fmt.Fprintf(b, "|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		name := r.name
		if r.roundTrips > 0 {
			name += fmt.Sprintf(" (%.2f Redis round trips per decision)", r.roundTrips)
		}
		fmt.Fprintf(b, "| %s | %.1f µs | %.1f µs | **%.2f×** | %.0f | %.0f | %.2f× | %s / %s | %s / %s |\n",
			name, us(r.noop.cpuPerCheck()), us(r.tollgate.cpuPerCheck()), ratio(r.tollgate.cpuPerCheck(), r.noop.cpuPerCheck()),
			r.noop.rps(), r.tollgate.rps(), r.tollgate.rps()/r.noop.rps(),
			dur(r.noop.percentile(0.5)), dur(r.tollgate.percentile(0.5)), dur(r.noop.percentile(0.99)), dur(r.tollgate.percentile(0.99)))
	}
	if web != nil {
		fmt.Fprintf(b, "\nHTTP front end: nginx serving a file, with `auth_request` to Tollgate (API key) and without, "+
			"driven by wrk (2 threads, %d connections) in the same interleaved rounds.\n\n", o.concurrency)
		fmt.Fprintf(b, "| | requests/s | p50 | p99 |\n|---|---|---|---|\n")
		fmt.Fprintf(b, "| nginx, no auth | %.0f | %s | %s |\n", web.plain.rps, dur(web.plain.p50), dur(web.plain.p99))
		fmt.Fprintf(b, "| nginx + auth_request to Tollgate | %.0f (%.2f×) | %s | %s |\n", web.authed.rps, web.authed.rps/web.plain.rps, dur(web.authed.p50), dur(web.authed.p99))
		fmt.Fprintf(b, "\nTollgate's CPU per request behind nginx: %.1f µs.\n", us(web.tollgateCPU))
	}
	if soak != nil {
		fmt.Fprintf(b, "\nSoak: the cached-JWT scenario at %d Checks/s for %v (%d sent, %.0f/s; %d failed), measured after a warm-up.\n\n",
			soak.rate, soak.length, soak.sent, float64(soak.sent)/soak.length.Seconds(), soak.failed)
		fmt.Fprintf(b, "| | start | end |\n|---|---|---|\n")
		for _, m := range soakMetrics {
			fmt.Fprintf(b, "| `%s` | %.0f | %.0f |\n", m, soak.start[m], soak.end[m])
		}
	}
}

func dur(d time.Duration) string {
	switch {
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	}
}

// renderAPIs writes the many-APIs part of the scale scenario.
func renderAPIs(b *strings.Builder, a *apisResult) {
	fmt.Fprintf(b, "\n## Scale: %d APIs of 10 operations\n\n", a.apis)
	fmt.Fprintf(b, "Method: %d APIs of ten `GET` operations each (`/items0/{id}` … `/items9/{id}`), told apart by base path "+
		"(`/t0` … , any host) and, separately, by host only (base path `/shop` for all, host `t<i>.example.com`), "+
		"written as one YAML file. From the file: `enforcer serve` on it; over xDS: a fresh replica of `enforcer "+
		"controlplane` serving it (started and idle first). Time runs from the process's start until `/readyz` "+
		"answers and a Check for the last API is allowed; the other figures as in the table above. Matching: "+
		"`BenchmarkMatchManyAPIs` (internal/catalog), the last API's request among 10 and among %d APIs, in process.\n\n",
		a.apis, a.apis)
	mib := func(n int64) string { return fmt.Sprintf("%d MiB", n>>20) }
	fmt.Fprintf(b, "| shape | | time | CPU | RSS settled | peak RSS | peak RSS / live | target |\n|---|---|---|---|---|---|---|---|\n")
	for _, s := range a.shapes {
		for _, r := range []struct {
			name string
			f    loadFigures
		}{{"file load", s.file}, {"xDS sync", s.sync}} {
			ratio := "—"
			if r.f.liveHeapPeak > 0 {
				ratio = fmt.Sprintf("%.2f×", r.f.rssOverLive())
			}
			verdict := "**not met**"
			if r.f.took <= 2*time.Second {
				verdict = "met"
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | ≤ 2 s: %s |\n", s.name, r.name, secs(r.f.took), secs(r.f.cpu),
				mib(r.f.rssSettled), mib(r.f.rssPeak), ratio, verdict)
		}
	}
	if a.match != nil {
		fmt.Fprintf(b, "\n| shape | match among 10 APIs | among %d | target |\n|---|---|---|---|\n", a.apis)
		for _, s := range a.shapes {
			small, large := a.match[s.name+"/10"], a.match[s.name+"/10000"]
			verdict := "**not met**"
			if large > 0 && large <= 1000 {
				verdict = "met"
			}
			fmt.Fprintf(b, "| %s | %.0f ns | %.0f ns | ≤ 1 µs, flat: %s |\n", s.name, small, large, verdict)
		}
	}
	renderTokens(b, a.tokens)
}

// renderTokens writes BenchmarkManyLiveTokens's figures.
func renderTokens(b *strings.Builder, figs []tokenCacheFigures) {
	if len(figs) == 0 {
		return
	}
	fmt.Fprintf(b, "\n## Scale: 100,000 distinct live JWTs\n\nMethod: `BenchmarkManyLiveTokens` (internal/authz), an engine deciding for "+
		"Checks that each carry one of 100,000 EdDSA tokens drawn at random, after 400,000 such Checks to fill the "+
		"cache; hit is the share of Checks that needed no signature check; memory is the heap the filled cache "+
		"holds per live token (no backend JWT, to see the token cache alone).\n\n")
	fmt.Fprintf(b, "| limits.tokenCacheEntries | hit | CPU per Check | memory per live token | target |\n|---|---|---|---|---|\n")
	for _, f := range figs {
		verdict := "below 95 %: the size is the knob (README)"
		if f.hitPct >= 95 {
			verdict = fmt.Sprintf("≥ 95 %%: met, at %.0f MiB for 100,000 tokens", f.bytesPerToken*100_000/(1<<20))
		}
		fmt.Fprintf(b, "| %s | %.1f %% | %.1f µs | %.0f B | %s |\n", f.entries, f.hitPct, f.nsPerCheck/1000, f.bytesPerToken, verdict)
	}
}

// renderScale writes the scale scenario against the targets.
func renderScale(b *strings.Builder, s *scaleResult) {
	mib := func(n int64) string { return fmt.Sprintf("%d MiB", n>>20) }
	fmt.Fprintf(b, "\n## Scale: %d API keys over %d applications\n\n", s.keys, s.apps)
	fmt.Fprintf(b, "Method: one API, %d applications each subscribed to it, %d API keys spread over them, written as "+
		"one YAML file. Baseline: `enforcer serve` on that file, then one key appended to it (the file is replaced, "+
		"as an editor or a GitOps sync does). Over xDS: `enforcer controlplane` serving the same file (started and "+
		"idle first), a replica with a fresh `stateDir` started against it; then one key appended at the control "+
		"plane; then the replica restarted with the control plane unreachable. Times run from the process's start "+
		"(or the file's replacement) until `/readyz` answers and a Check with the key concerned is allowed; CPU is "+
		"the process's own (`/proc/<pid>/stat`) over that time; RSS is VmRSS then, VmHWM over it, and VmRSS 5 s "+
		"later; heap is `go_memstats_heap_inuse_bytes` then; peak live is the largest heap a collection found live "+
		"over the load and the 5 s after (`GODEBUG=gctrace=1`), against which the peak RSS is set (target: at most 2×). "+
		"The control plane and the replica share the machine's CPUs, as on a developer's laptop.\n\n", s.apps, s.keys)
	fmt.Fprintf(b, "| | time | CPU | RSS ready | peak RSS | RSS settled | heap in use | peak live | peak RSS / live | target |\n|---|---|---|---|---|---|---|---|---|---|\n")
	row := func(name string, f loadFigures, target string) {
		live, ratio := "no collection", "—"
		if f.liveHeapPeak > 0 {
			live, ratio = mib(f.liveHeapPeak), fmt.Sprintf("%.2f×", f.rssOverLive())
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", name, secs(f.took), secs(f.cpu),
			mib(f.rssReady), mib(f.rssPeak), mib(f.rssSettled), mib(int64(f.heapInuse)), live, ratio, target)
	}
	met := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**not met**"
	}
	row("file: load (baseline)", s.file, "baseline")
	row("file: one key added (baseline)", s.fileReload, "baseline")
	row("xDS: initial sync of a fresh replica", s.sync, fmt.Sprintf("≤ 10 s, RSS ≤ 400 MB settled: %s",
		met(s.sync.took <= 10*time.Second && s.sync.rssSettled <= 400e6)))
	row("xDS: one key added (replica)", s.keyChange, fmt.Sprintf("≤ 5 ms of replica CPU: %s beyond the polling (%s over as long without a change; see below)",
		secs(s.keyChangeCPU()), secs(time.Duration(s.idleRate*s.keyChange.took.Seconds()))))
	row("xDS: cold start from the persisted state", s.cold, fmt.Sprintf("≤ 5 s: %s", met(s.cold.took <= 5*time.Second)))
	fmt.Fprintf(b, "\nThe key-change time over xDS is mostly the control plane rereading its %d-key file. The replica's "+
		"CPU in that row covers the whole wait, the Checks that poll for the key every 20 ms included, in ticks of "+
		"10 ms; the same polling for a key that is not there, over 5 s before the change, gives the share that is "+
		"not the change. Its cost of applying one key among a million alone is `BenchmarkApplyOneKeyChange` (`make microbench`, "+
		"`internal/xdssource`).\n", s.keys)
	renderPropagation(b, s.propagation)
}

func renderPropagation(b *strings.Builder, p map[string]float64) {
	if p == nil {
		return
	}
	verdict := "**not met**"
	if p["p99-ms"] <= 100 {
		verdict = "met"
	}
	fmt.Fprintf(b, "\nPropagation (`BenchmarkPropagation`, internal/controlplane): the control plane's caches and three "+
		"replica clients, each on its own Delta xDS stream over loopback, in one process; 1,000 API keys added one "+
		"at a time at 100 a second over 10,000 keys of 1,000 applications; each change timed from the caches "+
		"accepting it until each replica's snapshot holds the key. p50 %.2f ms, p99 **%.2f ms**, max %.2f ms "+
		"(target p99 ≤ 100 ms: %s).\n", p["p50-ms"], p["p99-ms"], p["max-ms"], verdict)
}

func secs(d time.Duration) string {
	if d < time.Second {
		return dur(d)
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}
