package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// webResult compares nginx serving a file with and without an
// auth_request to Tollgate's HTTP front end, both driven by wrk.
type webResult struct {
	plain, authed wrkResult
	tollgateCPU   time.Duration // Tollgate's CPU per request over the authed rounds
}

type wrkResult struct {
	requests float64 // total
	rps      float64
	p50, p99 time.Duration
}

func (w *wrkResult) add(o wrkResult, rounds int) {
	w.requests += o.requests
	w.rps += o.rps / float64(rounds)
	w.p50 += o.p50 / time.Duration(rounds)
	w.p99 += o.p99 / time.Duration(rounds)
}

// measureNginx: nginx on two ports, one plain, one asking Tollgate (HTTP
// front end, API key) for every request; wrk drives them in turn.
func measureNginx(o options, dir, config string) (*webResult, error) {
	if _, err := exec.LookPath("wrk"); err != nil {
		return nil, fmt.Errorf("wrk not found (scripts/bench-deps.sh installs it)")
	}
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		if nginx, err = exec.LookPath("/usr/sbin/nginx"); err != nil {
			return nil, fmt.Errorf("nginx not found (scripts/bench-deps.sh installs it)")
		}
	}
	// The same config, with the HTTP front end told that nginx calls it.
	base, err := os.ReadFile(config)
	if err != nil {
		return nil, err
	}
	nginxConfig := filepath.Join(dir, "nginx-tollgate.yaml")
	if err := os.WriteFile(nginxConfig, append(base, "\nhttpFrontEnd: {shape: nginx}\n"...), 0o600); err != nil {
		return nil, err
	}
	tg, err := startEnforcer(o.enforcer, nginxConfig, nil)
	if err != nil {
		return nil, err
	}
	defer tg.stop()

	root := filepath.Join(dir, "www")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(root, "ok.txt"), []byte("ok\n"), 0o644); err != nil {
		return nil, err
	}
	plainAddr, authedAddr := freeAddr(), freeAddr()
	conf := fmt.Sprintf(`
daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %[1]s/body; proxy_temp_path %[1]s/proxy; fastcgi_temp_path %[1]s/fcgi;
    uwsgi_temp_path %[1]s/uwsgi; scgi_temp_path %[1]s/scgi;
    upstream tollgate_http { server %[2]s; keepalive 64; }
    server {
        listen %[3]s;
        root %[4]s;
        location / { try_files /ok.txt =404; }
    }
    server {
        listen %[5]s;
        root %[4]s;
        location / { auth_request /_tollgate; try_files /ok.txt =404; }
        location = /_tollgate {
            internal;
            proxy_pass http://tollgate_http/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header Host api.example.com;
        }
    }
}
`, dir, tg.addrs["http"], plainAddr, root, authedAddr)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	cmd := pinned(nginx, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "nginx-error.log"))
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if err := waitTCP(plainAddr); err != nil {
		return nil, err
	}
	if err := waitTCP(authedAddr); err != nil {
		return nil, err
	}

	path := "/partner/v1/orders/42"
	w := &webResult{}
	// warm-up
	if _, err := runWrk(plainAddr, path, time.Second, o.concurrency); err != nil {
		return nil, err
	}
	if _, err := runWrk(authedAddr, path, time.Second, o.concurrency); err != nil {
		return nil, err
	}
	var cpu time.Duration
	for range o.rounds {
		p, err := runWrk(plainAddr, path, o.round, o.concurrency)
		if err != nil {
			return nil, err
		}
		w.plain.add(p, o.rounds)
		before, _ := cpuTime(tg.pid())
		a, err := runWrk(authedAddr, path, o.round, o.concurrency)
		if err != nil {
			return nil, err
		}
		after, _ := cpuTime(tg.pid())
		cpu += after - before
		w.authed.add(a, o.rounds)
	}
	w.tollgateCPU = cpu / time.Duration(max(w.authed.requests, 1))
	fmt.Printf("%-58s rps %8.0f vs %8.0f (%.2fx), Tollgate CPU %.1fµs/request\n", "nginx auth_request (HTTP front end)",
		w.authed.rps, w.plain.rps, w.authed.rps/w.plain.rps, us(w.tollgateCPU))
	return w, nil
}

var (
	wrkRPS      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkTotal    = regexp.MustCompile(`(\d+) requests in`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkPercents = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)`)
)

func runWrk(addr, path string, d time.Duration, connections int) (wrkResult, error) {
	out, err := exec.Command("wrk", "-t", "2", "-c", strconv.Itoa(connections), "-d", d.String(), "--latency",
		"-H", "apikey: "+benchKey, "http://"+addr+path).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	s := string(out)
	if m := wrkNon2xx.FindStringSubmatch(s); m != nil {
		return wrkResult{}, fmt.Errorf("wrk saw %s non-2xx responses:\n%s", m[1], s)
	}
	var r wrkResult
	if m := wrkRPS.FindStringSubmatch(s); m != nil {
		r.rps, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := wrkTotal.FindStringSubmatch(s); m != nil {
		r.requests, _ = strconv.ParseFloat(m[1], 64)
	}
	for _, m := range wrkPercents.FindAllStringSubmatch(s, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[3]]
		if m[1] == "50" {
			r.p50 = time.Duration(v * float64(unit))
		} else {
			r.p99 = time.Duration(v * float64(unit))
		}
	}
	if r.rps == 0 {
		return r, fmt.Errorf("could not read wrk's output:\n%s", strings.TrimSpace(s))
	}
	return r, nil
}
