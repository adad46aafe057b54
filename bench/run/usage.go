package main

import (
	"fmt"
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
	figs := map[string]benchFigure{}
	if err := goBench(name, "./internal/usage", "2000000x", figs); err != nil {
		return nil, err
	}
	res := &usageResult{nsPerOp: map[string]float64{}, allocsPerOp: map[string]float64{}}
	for k, f := range figs {
		c := strings.ReplaceAll(strings.TrimPrefix(k, name+"/"), "_", " ")
		res.nsPerOp[c], res.allocsPerOp[c] = f.ns, f.allocs
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
