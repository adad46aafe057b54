package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// adminResult is the admin API's part: writes per second on each store
// and propagation from an answer to two replicas, as the Go benchmarks
// of internal/controlplane measure them.
type adminResult struct {
	writes      map[string]float64            // "sqlite/clients=1" -> writes/s
	propagation map[string]map[string]float64 // "sqlite" -> p50-ms, p99-ms, max-ms
}

// runAdmin runs BenchmarkAdminWrites (3 s a case) and
// BenchmarkAdminPropagation (once) with the test toolchain.
func runAdmin() (*adminResult, error) {
	fmt.Println("admin: writes per second and propagation, on SQLite and PostgreSQL")
	res := &adminResult{writes: map[string]float64{}, propagation: map[string]map[string]float64{}}
	for _, b := range []struct{ name, benchtime string }{{"BenchmarkAdminWrites", "3s"}, {"BenchmarkAdminPropagation", "1x"}} {
		cmd := exec.Command("go", "test", "-run", "^$", "-bench", "^"+b.name+"$", "-benchtime", b.benchtime, "./internal/controlplane")
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("%s: %w: %s", b.name, err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			fields := strings.Fields(line)
			if len(fields) < 2 || !strings.HasPrefix(fields[0], b.name+"/") {
				continue
			}
			name := strings.TrimPrefix(fields[0], b.name+"/")
			if i := strings.LastIndex(name, "-"); i > 0 {
				if _, err := strconv.Atoi(name[i+1:]); err == nil {
					name = name[:i] // the GOMAXPROCS suffix, absent when it is 1
				}
			}
			metrics := map[string]float64{}
			for i := 1; i+1 < len(fields); i++ {
				if v, err := strconv.ParseFloat(fields[i], 64); err == nil && strings.ContainsAny(fields[i+1], "/-") {
					metrics[fields[i+1]] = v
				}
			}
			if v, ok := metrics["writes/s"]; ok {
				res.writes[name] = v
			} else {
				res.propagation[name] = metrics
			}
		}
	}
	if len(res.writes) != 4 || len(res.propagation) != 2 {
		return nil, fmt.Errorf("admin benchmarks: expected 4 write and 2 propagation figures, got %v and %v", res.writes, res.propagation)
	}
	return res, nil
}

func renderAdmin(b *strings.Builder, r *adminResult) {
	fmt.Fprintf(b, "\n## Admin API\n\n")
	fmt.Fprintf(b, "`BenchmarkAdminWrites` and `BenchmarkAdminPropagation` (internal/controlplane): a control plane in "+
		"process with its admin API on loopback HTTP, on SQLite (a file in the temp directory) and on the test suite's "+
		"PostgreSQL (Debian's, started on a free port with `fsync=off`: the figures are the control plane's, not a "+
		"durable disk's). Everything of this part — client, control planes, replicas and the database — runs on the "+
		"CPUs the bench itself has (one, under `make bench`'s pinning). A write is `POST /api/v1/applications`: authenticated, validated by the data plane's rules, "+
		"written with its audit record in one transaction, then pushed to the replicas.\n\n")
	fmt.Fprintf(b, "| store | 1 client | 8 clients |\n|---|---|---|\n")
	for _, st := range []string{"sqlite", "postgres"} {
		fmt.Fprintf(b, "| %s | %.0f writes/s | %.0f writes/s |\n", st, r.writes[st+"/clients=1"], r.writes[st+"/clients=8"])
	}
	fmt.Fprintf(b, "\nPropagation: 200 API keys created one every 20 ms with `POST /api/v1/applications/{id}/keys`, each "+
		"timed from the API's answer until each of two replicas' snapshots (what a Check is decided on) holds it. On "+
		"PostgreSQL the two replicas are on two control planes sharing the database, so the change reaches the second "+
		"through LISTEN/NOTIFY.\n\n")
	fmt.Fprintf(b, "| store | p50 | p99 | max |\n|---|---|---|---|\n")
	for _, st := range []string{"sqlite", "postgres"} {
		p := r.propagation[st]
		fmt.Fprintf(b, "| %s | %.2f ms | %.2f ms | %.2f ms |\n", st, p["p50-ms"], p["p99-ms"], p["max-ms"])
	}
	fmt.Fprintf(b, "\nA p50 near zero means the replica already held the key when the client read the answer: the "+
		"push starts at the commit, before the response is written.\n")
}
