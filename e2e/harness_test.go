// Package e2e tests the real enforcer binary with real peers: the
// go-control-plane gRPC client, plain HTTP, and nginx.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tollgate/tollgate/internal/testpg"
)

// enforcerBin is the binary under test, built once by TestMain.
var enforcerBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tollgate-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	enforcerBin = filepath.Join(dir, "enforcer")
	build := exec.Command("go", "build", "-o", enforcerBin, "../cmd/enforcer")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the enforcer:", err)
		os.Exit(1)
	}
	code := m.Run()
	testpg.StopShared()
	os.RemoveAll(dir)
	os.Exit(code)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func sha(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// listenAnyPort makes every listener pick a free port; the harness reads
// the chosen addresses from the enforcer's "listening" log lines.
const listenAnyPort = `
listen: {grpc: "127.0.0.1:0", http: "127.0.0.1:0", admin: "127.0.0.1:0"}
`

// enforcer is a running enforcer process.
type enforcer struct {
	t          testing.TB
	cmd        *exec.Cmd
	ConfigPath string
	addrs      map[string]string // role -> address

	mu    sync.Mutex
	lines []map[string]any // parsed log lines
	raw   bytes.Buffer     // everything it wrote to stderr
	done  chan struct{}    // closed when the process has exited
	err   error            // its exit error
}

// startEnforcer writes cfg (plus listenAnyPort) to a temp file and runs
// `enforcer serve` on it. The process is stopped at cleanup.
func startEnforcer(t testing.TB, cfg string, extraArgs ...string) *enforcer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(listenAnyPort+cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return startEnforcerAt(t, path, extraArgs...)
}

func startEnforcerAt(t testing.TB, path string, extraArgs ...string) *enforcer {
	t.Helper()
	e := startProcess(t, path, append([]string{"serve", "--config", path, "--log-level", "debug"}, extraArgs...), "grpc", "http", "admin")
	e.waitReady("/readyz")
	return e
}

// startProcess runs the binary with args and waits until it has logged
// that it listens in every one of roles.
func startProcess(t testing.TB, path string, args []string, roles ...string) *enforcer {
	t.Helper()
	e := &enforcer{t: t, ConfigPath: path, addrs: map[string]string{}, done: make(chan struct{})}
	e.cmd = exec.Command(enforcerBin, args...)
	stderr, err := e.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go e.readLogs(stderr)
	t.Cleanup(e.stop)
	waitFor(t, "the process to listen", 20*time.Second, func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		select {
		case <-e.done:
			t.Fatalf("%s exited during start-up: %v\n%s", args[0], e.err, e.raw.String())
		default:
		}
		for _, role := range roles {
			if e.addrs[role] == "" {
				return false
			}
		}
		return true
	})
	return e
}

// waitReady polls a readiness path on the admin (or API) listener.
func (e *enforcer) waitReady(path string) {
	e.t.Helper()
	base := e.AdminURL()
	if e.addrs["admin"] == "" {
		base = "http://" + e.addrs["api"]
	}
	waitFor(e.t, "the process to be ready", 20*time.Second, func() bool {
		resp, err := http.Get(base + path)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func (e *enforcer) readLogs(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var m map[string]any
		_ = json.Unmarshal(line, &m)
		e.mu.Lock()
		e.raw.Write(line)
		e.raw.WriteByte('\n')
		if m != nil {
			e.lines = append(e.lines, m)
			if m["msg"] == "listening" {
				e.addrs[m["role"].(string)] = m["addr"].(string)
			}
		}
		e.mu.Unlock()
	}
	err := e.cmd.Wait()
	e.mu.Lock()
	e.err = err
	e.mu.Unlock()
	close(e.done)
}

// stop sends SIGTERM and waits for the process; it is killed if it does
// not exit in time.
func (e *enforcer) stop() {
	select {
	case <-e.done:
		return
	default:
	}
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(30 * time.Second):
		_ = e.cmd.Process.Kill()
		<-e.done
		e.t.Errorf("enforcer did not stop on SIGTERM; killed")
	}
}

// Logs returns everything the enforcer has logged so far.
func (e *enforcer) Logs() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.raw.String()
}

// logOrder returns the index of the first log line with each msg, or -1.
func (e *enforcer) logOrder(msgs ...string) map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int, len(msgs))
	for _, m := range msgs {
		out[m] = -1
	}
	for i, l := range e.lines {
		if m, ok := l["msg"].(string); ok {
			if j, want := out[m]; want && j < 0 {
				out[m] = i
			}
		}
	}
	return out
}

// hasLog reports whether a log line has msg and, if given, attr=value.
func (e *enforcer) hasLog(msg string, attrs ...string) bool {
	return e.countLogs(msg, attrs...) > 0
}

// countLogs counts the lines with msg and every attribute name, value
// pair of attrs.
func (e *enforcer) countLogs(msg string, attrs ...string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, l := range e.lines {
		if l["msg"] != msg {
			continue
		}
		ok := true
		for i := 0; i+1 < len(attrs); i += 2 {
			ok = ok && fmt.Sprint(l[attrs[i]]) == attrs[i+1]
		}
		if ok {
			n++
		}
	}
	return n
}

func (e *enforcer) HTTPURL() string  { return "http://" + e.addrs["http"] }
func (e *enforcer) AdminURL() string { return "http://" + e.addrs["admin"] }

// Dial returns a gRPC connection to the enforcer, closed at cleanup.
func (e *enforcer) Dial() *grpc.ClientConn {
	conn, err := grpc.NewClient(e.addrs["grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	return conn
}

// AuthClient returns an ext_authz client.
func (e *enforcer) AuthClient() authv3.AuthorizationClient {
	return authv3.NewAuthorizationClient(e.Dial())
}

// Metric returns the value of the sample of family name whose labels
// include all of labels (name, value pairs), or -1 if there is none.
func (e *enforcer) Metric(name string, labels ...string) float64 {
	e.t.Helper()
	resp, err := http.Get(e.AdminURL() + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		e.t.Fatalf("parsing /metrics: %v", err)
	}
	fam := families[name]
	if fam == nil {
		return -1
	}
next:
	for _, m := range fam.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

// runCommand runs the enforcer binary with args and returns its exit code,
// stdout and stderr.
func runCommand(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, enforcerBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}
