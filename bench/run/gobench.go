package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// benchFigure is one benchmark case's time and allocations per operation.
type benchFigure struct{ ns, allocs float64 }

// goBench runs one benchmark with the test toolchain and keeps each
// case's ns/op and allocs/op under "name/case".
func goBench(name, pkg, times string, into map[string]benchFigure) error {
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", "^"+name+"$", "-benchtime", times, "-benchmem", pkg)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || !strings.HasPrefix(fields[0], name+"/") {
			continue
		}
		c := fields[0]
		if i := strings.LastIndex(c, "-"); i > 0 {
			if _, err := strconv.Atoi(c[i+1:]); err == nil {
				c = c[:i]
			}
		}
		v := benchValues(fields[1:])
		into[c] = benchFigure{ns: v["ns/op"], allocs: v["allocs/op"]}
	}
	return nil
}

// benchValues reads the "value unit" pairs of a benchmark's result line
// (after its name), by unit: "ns/op", "allocs/op", custom metrics.
func benchValues(fields []string) map[string]float64 {
	out := map[string]float64{}
	for i := 0; i+1 < len(fields); i++ {
		if v, err := strconv.ParseFloat(fields[i], 64); err == nil {
			out[fields[i+1]] = v
		}
	}
	return out
}
