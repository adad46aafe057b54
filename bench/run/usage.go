package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// usageResult is what usage reporting adds to each decision: ns per
// decision recorded without and with an aggregator, as
// BenchmarkRecordDecision (internal/usage) measures them.
type usageResult struct {
	nsPerOp     map[string]float64 // "without usage", "with usage"
	allocsPerOp map[string]float64
}

// runUsage runs BenchmarkRecordDecision (2,000,000 decisions a case)
// with the test toolchain.
func runUsage() (*usageResult, error) {
	fmt.Println("usage: the cost of usage reporting per decision")
	const name = "BenchmarkRecordDecision"
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", "^"+name+"$", "-benchtime", "2000000x", "-benchmem", "./internal/usage")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %s", name, err, out)
	}
	res := &usageResult{nsPerOp: map[string]float64{}, allocsPerOp: map[string]float64{}}
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || !strings.HasPrefix(fields[0], name+"/") {
			continue
		}
		c := strings.TrimPrefix(fields[0], name+"/")
		if i := strings.LastIndex(c, "-"); i > 0 {
			if _, err := strconv.Atoi(c[i+1:]); err == nil {
				c = c[:i] // the GOMAXPROCS suffix, absent when it is 1
			}
		}
		c = strings.ReplaceAll(c, "_", " ")
		for i := 1; i+1 < len(fields); i++ {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			switch fields[i+1] {
			case "ns/op":
				res.nsPerOp[c] = v
			case "allocs/op":
				res.allocsPerOp[c] = v
			}
		}
	}
	if len(res.nsPerOp) != 2 {
		return nil, fmt.Errorf("%s: expected 2 figures, got %v", name, res.nsPerOp)
	}
	return res, nil
}

func renderUsage(b *strings.Builder, r *usageResult) {
	fmt.Fprintf(b, "\n## Usage reporting\n\n")
	fmt.Fprintf(b, "`BenchmarkRecordDecision` (internal/usage): what a replica does with each decision after taking it, on a "+
		"replica without an events file — metrics only, against metrics and the usage aggregator that feeds the reports "+
		"to the control plane (a queue send; the aggregator adds it up on its own goroutine). It is part of each "+
		"Check's CPU on a replica with a control plane; nothing is allocated for it.\n\n")
	fmt.Fprintf(b, "| | per decision | allocations |\n|---|---|---|\n")
	for _, c := range []string{"without usage", "with usage"} {
		fmt.Fprintf(b, "| %s | %.0f ns | %.0f |\n", c, r.nsPerOp[c], r.allocsPerOp[c])
	}
}
