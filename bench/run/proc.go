package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// server is a process under measurement.
type server struct {
	name  string
	cmd   *exec.Cmd
	addrs map[string]string // role -> address
	done  chan struct{}
	log   string // where its output goes, for the scale scenario
}

// startEnforcer runs `enforcer serve` and reads its listeners from the log.
// env is its environment; nil inherits the bench's.
func startEnforcer(bin, configPath string, env []string) (*server, error) {
	cmd := pinned(bin, "serve", "--config", configPath, "--log-level", "info")
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	s := &server{name: "tollgate", cmd: cmd, addrs: map[string]string{}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	found := make(chan struct{})
	var lastLines []string
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		announced := false
		for sc.Scan() {
			if !announced {
				lastLines = append(lastLines, sc.Text())
			}
			var line struct{ Msg, Role, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				s.addrs[line.Role] = line.Addr
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "tollgate started" && !announced {
				announced = true
				close(found)
			}
		}
		_ = cmd.Wait()
		close(s.done)
	}()
	select {
	case <-found:
	case <-s.done:
		return nil, fmt.Errorf("enforcer exited during start-up (config %s):\n%s", configPath, strings.Join(lastLines, "\n"))
	case <-time.After(20 * time.Second):
		s.stop()
		return nil, fmt.Errorf("enforcer did not start")
	}
	return s, waitHTTP("http://" + s.addrs["admin"] + "/readyz")
}

// startNoop runs the do-nothing server, which prints its address. env is
// its environment; nil inherits the bench's.
func startNoop(bin string, env []string) (*server, error) {
	cmd := pinned(bin)
	cmd.Env = env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s := &server{name: "noop", cmd: cmd, addrs: map[string]string{}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("noop: %w", err)
	}
	s.addrs["grpc"] = strings.TrimSpace(strings.TrimPrefix(line, "listening"))
	go func() { _, _ = io.Copy(io.Discard, stdout); _ = cmd.Wait(); close(s.done) }()
	return s, nil
}

// serverCPUs is where the servers run (taskset), apart from the load
// client, so that their CPU time is theirs alone and they do not compete
// with the client for a core. Empty: no pinning.
var serverCPUs string

func pinned(bin string, args ...string) *exec.Cmd {
	if serverCPUs == "" {
		return exec.Command(bin, args...)
	}
	return exec.Command("taskset", append([]string{"-c", serverCPUs, bin}, args...)...)
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// clockTick is the unit of /proc/<pid>/stat CPU times (USER_HZ).
var clockTick = func() time.Duration {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if hz, perr := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && perr == nil && hz > 0 {
		return time.Second / time.Duration(hz)
	}
	return 10 * time.Millisecond
}()

// cpuTime is the process's user + system CPU time, from the kernel's own
// accounting in /proc/<pid>/stat.
func cpuTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after its ')' are plain.
	rest := string(data[strings.LastIndexByte(string(data), ')')+2:])
	f := strings.Fields(rest)
	// rest starts at field 3 (state); utime is field 14, stime field 15.
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parsing /proc/%d/stat", pid)
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// memoryEnv is the bench's environment without its own GOGC and
// GOMEMLIMIT, plus settings ("KEY=VALUE ..."), so that a server runs with
// exactly the memory settings the report states.
func memoryEnv(settings string) ([]string, error) {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOGC=") && !strings.HasPrefix(kv, "GOMEMLIMIT=") {
			env = append(env, kv)
		}
	}
	for _, kv := range strings.Fields(settings) {
		if !strings.Contains(kv, "=") {
			return nil, fmt.Errorf("%q is not KEY=VALUE", kv)
		}
		env = append(env, kv)
	}
	return env, nil
}

// procMemory reads one of the kernel's memory figures for a process
// (VmRSS, VmHWM, ...) from /proc/<pid>/status, in bytes.
func procMemory(pid int, field string) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		rest, ok := strings.CutPrefix(line, field+":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parsing %s of /proc/%d/status: %w", field, pid, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// resetPeakRSS sets a process's VmHWM back to its current RSS (clear_refs
// "5"), so that VmHWM read later is the peak since now, not since start.
func resetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitTCP(addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not come up", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
