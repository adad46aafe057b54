package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// policiesResult compares the API-key Check with the same Check on an
// operation with three request policies and a CEL rule: the enforcer's
// CPU per Check over gRPC, and the in-process benchmarks.
type policiesResult struct {
	plain, withPolicies result
	inProcess           map[string]benchFigure // by benchmark/case
	// instructions per Check in process (callgrind), without and with
	// the policies; 0 when valgrind is missing
	instructions [2]float64
}

// runPolicies measures both Checks against the do-nothing server, in the
// same interleaved rounds as the main table, then runs
// BenchmarkCheckPolicies (internal/authz) and BenchmarkRule
// (internal/policy).
func runPolicies(o options, plain scenario) (*policiesResult, error) {
	fmt.Println("policies: a Check with request policies and a CEL rule against one without")
	noop, err := startNoop(o.noop, nil)
	if err != nil {
		return nil, err
	}
	defer noop.stop()
	noopClient, err := dial(noop.addrs["grpc"])
	if err != nil {
		return nil, err
	}
	defer noopClient.conn.Close()
	res := &policiesResult{inProcess: map[string]benchFigure{}}
	if res.plain, err = measure(o, plain, noop, noopClient, nil); err != nil {
		return nil, err
	}
	printRow(res.plain)
	if res.withPolicies, err = measure(o, policiesScenario(plain), noop, noopClient, nil); err != nil {
		return nil, err
	}
	printRow(res.withPolicies)
	for i, c := range []string{"without", "with-3-policies-1-rule"} {
		if res.instructions[i], err = instructionsPerCheck(c); err != nil {
			fmt.Fprintln(os.Stderr, "bench: instruction counts skipped:", err)
			break
		}
	}
	for _, b := range []struct{ name, pkg, times string }{
		{"BenchmarkCheckPolicies", "./internal/authz", "200000x"},
		{"BenchmarkRule", "./internal/policy", "1000000x"},
		{"BenchmarkRoundTrip", "./internal/extproc", "20000x"},
	} {
		if err := goBench(b.name, b.pkg, b.times, res.inProcess); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func renderPolicies(b *strings.Builder, r *policiesResult) {
	fmt.Fprintf(b, "\n## Policies\n\n")
	fmt.Fprintf(b, "The API-key Check of the table above, and the same Check on an operation with three request policies "+
		"(set a header, rename one, rewrite the path with the template's variable) and one CEL rule "+
		"(`request.method != 'DELETE' || 'admin' in identity.scopes`), in the same run. Over gRPC: the enforcer's own CPU "+
		"per Check as the main table measures it, each against the do-nothing server in interleaved rounds.\n\n")
	fmt.Fprintf(b, "| over gRPC | Tollgate CPU per Check | do-nothing CPU per Check |\n|---|---|---|\n")
	for _, x := range []result{r.plain, r.withPolicies} {
		fmt.Fprintf(b, "| %s | %.1f µs | %.1f µs |\n", x.name, us(x.tollgate.cpuPerCheck()), us(x.noop.cpuPerCheck()))
	}
	fmt.Fprintf(b, "\nWith policies / without: **%.2f×** (target ≤ 1.15×).\n\n",
		ratio(r.withPolicies.tollgate.cpuPerCheck(), r.plain.tollgate.cpuPerCheck()))
	fmt.Fprintf(b, "In process, `BenchmarkCheckPolicies` (internal/authz): the decision, the CheckResponse and its marshalling, "+
		"without the gRPC transport, for two operations of one config (so that both run against the same compiled model), "+
		"one without policies and one with them; `BenchmarkRule` (internal/policy): one rule's input and evaluation "+
		"(target ≤ 2 µs a rule).\n\n")
	fmt.Fprintf(b, "| in process | time | allocations |\n|---|---|---|\n")
	for _, k := range []string{"BenchmarkCheckPolicies/without", "BenchmarkCheckPolicies/with-3-policies-1-rule",
		"BenchmarkRule/method-or-scope", "BenchmarkRule/header-and-claim", "BenchmarkRule/query"} {
		f := r.inProcess[k]
		fmt.Fprintf(b, "| %s | %.0f ns | %.0f |\n", k, f.ns, f.allocs)
	}
	without, with := r.inProcess["BenchmarkCheckPolicies/without"], r.inProcess["BenchmarkCheckPolicies/with-3-policies-1-rule"]
	if without.ns > 0 {
		fmt.Fprintf(b, "\nIn process, with / without: %.2f× in time.", with.ns/without.ns)
	}
	if r.instructions[0] > 0 {
		fmt.Fprintf(b, " In instructions (callgrind, which the machine's other work does not change: %.0f without, "+
			"%.0f with, per Check): **%.2f×**.", r.instructions[0], r.instructions[1], r.instructions[1]/r.instructions[0])
	}
	fmt.Fprintf(b, "\n")

	fmt.Fprintf(b, "\n## Interceptors (ext_proc)\n\n")
	fmt.Fprintf(b, "`BenchmarkRoundTrip` (internal/extproc): one ext_proc stream over loopback gRPC per operation — a new stream, "+
		"the request headers sent, the answer received, the stream closed — with the server behind the enforcer's codec. "+
		"\"pass\" is an operation with nothing to do (CONTINUE and a mode override that skips the rest); \"interceptor\" is "+
		"an operation whose request interceptor (headers and invocation context) is an HTTP server on loopback in the same "+
		"process, answering with one header to add. Client, server and interceptor share the machine's CPUs.\n\n")
	fmt.Fprintf(b, "| | per round trip | allocations |\n|---|---|---|\n")
	pass, icpt := r.inProcess["BenchmarkRoundTrip/pass"], r.inProcess["BenchmarkRoundTrip/interceptor"]
	fmt.Fprintf(b, "| pass | %.0f µs | %.0f |\n| interceptor | %.0f µs | %.0f |\n", pass.ns/1000, pass.allocs, icpt.ns/1000, icpt.allocs)
	if pass.ns > 0 {
		fmt.Fprintf(b, "\nWith an interceptor / without: **%.1f×**; the difference is the interceptor call (its JSON, one HTTP/1.1 "+
			"request on a kept-alive loopback connection, reading and checking the answer) and the header mutation.\n", icpt.ns/pass.ns)
	}
}

// instructionsPerCheck counts the instructions of one iteration of a case
// of BenchmarkCheckPolicies under callgrind: the difference between runs
// of 6,000 and 3,000 iterations, over 3,000, so that the set-up (the
// config compiled, the test binary started) cancels out. Go's
// asynchronous preemption is off for it: callgrind does not follow its
// signals.
func instructionsPerCheck(c string) (float64, error) {
	if _, err := exec.LookPath("valgrind"); err != nil {
		return 0, err
	}
	dir, err := os.MkdirTemp("", "tollgate-callgrind-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	bin := dir + "/authz.test"
	if out, err := exec.Command("go", "test", "-c", "-o", bin, "./internal/authz").CombinedOutput(); err != nil {
		return 0, fmt.Errorf("building the test binary: %w: %s", err, out)
	}
	count := func(n int) (float64, error) {
		outFile := fmt.Sprintf("%s/callgrind.%d", dir, n)
		cmd := exec.Command("valgrind", "--tool=callgrind", "--callgrind-out-file="+outFile, bin,
			"-test.run", "^$", "-test.bench", "^BenchmarkCheckPolicies/"+c+"$", "-test.benchtime", fmt.Sprintf("%dx", n), "-test.cpu", "1")
		cmd.Env = append(os.Environ(), "GODEBUG=asyncpreemptoff=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("callgrind: %w: %s", err, out)
		}
		data, err := os.ReadFile(outFile)
		if err != nil {
			return 0, err
		}
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "summary: "); ok {
				return strconv.ParseFloat(strings.TrimSpace(v), 64)
			}
		}
		return 0, fmt.Errorf("callgrind wrote no summary")
	}
	short, err := count(3000)
	if err != nil {
		return 0, err
	}
	long, err := count(6000)
	if err != nil {
		return 0, err
	}
	return (long - short) / 3000, nil
}
