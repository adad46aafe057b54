// Package testredis runs real redis-server processes for tests, on free
// loopback ports: a standalone server that can be stopped and restarted on
// its port, and a three-master Redis Cluster. scripts/test-deps.sh installs
// redis-server and redis-cli from Debian.
package testredis

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Server is one redis-server process.
type Server struct {
	t       testing.TB
	Addr    string
	args    []string
	cmd     *exec.Cmd
	exited  chan struct{}
	workdir string
}

func binary(t testing.TB, name string) string {
	t.Helper()
	for _, p := range []string{name, "/usr/bin/" + name, "/usr/local/bin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatalf("%s not found: run scripts/test-deps.sh (installs redis-server from Debian)", name)
	return ""
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start runs a standalone redis-server; it is stopped at cleanup.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	port := FreePort(t)
	s := &Server{t: t, Addr: "127.0.0.1:" + strconv.Itoa(port), workdir: t.TempDir()}
	s.args = append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", s.workdir, "--protected-mode", "no"}, extra...)
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

// Restart starts the server again, on the same port, after Stop.
func (s *Server) Restart() {
	s.t.Helper()
	s.cmd = exec.Command(binary(s.t, "redis-server"), s.args...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { _ = cmd.Wait(); close(exited) }(s.cmd, s.exited)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := s.Do("PING"); err == nil {
			return
		}
		select {
		case <-s.exited:
			s.t.Fatalf("redis-server on %s exited during start-up", s.Addr)
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on %s did not answer", s.Addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop kills the server and waits for it.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// Do sends one command in the inline protocol and returns the first line
// of the reply (enough for PING, INFO sections are read whole).
func (s *Server) Do(args ...string) (string, error) {
	return do(s.Addr, args...)
}

func do(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "-"):
		return "", fmt.Errorf("redis: %s", line[1:])
	case strings.HasPrefix(line, "$"):
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return strings.TrimLeft(line, "+:"), nil
}

// CommandCalls returns how many times the server has run command without
// an error (from INFO commandstats), e.g. "evalsha". An EVALSHA refused
// with NOSCRIPT is not counted: it changed nothing.
func (s *Server) CommandCalls(command string) int {
	s.t.Helper()
	return commandCalls(s.t, s.Addr, command)
}

func commandCalls(t testing.TB, addr, command string) int {
	info, err := do(addr, "INFO", "commandstats")
	if err != nil {
		t.Fatal(err)
	}
	prefix := "cmdstat_" + strings.ToLower(command) + ":"
	for _, line := range strings.Split(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), prefix)
		if !ok {
			continue
		}
		// calls=7,usec=...,rejected_calls=0,failed_calls=1
		stats := map[string]int{}
		for _, field := range strings.Split(rest, ",") {
			if k, v, ok := strings.Cut(field, "="); ok {
				stats[k], _ = strconv.Atoi(v)
			}
		}
		return stats["calls"] - stats["failed_calls"]
	}
	return 0
}

// Cluster is a Redis Cluster of three masters.
type Cluster struct {
	Nodes []*Server
}

// Addrs returns the nodes' addresses.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr
	}
	return out
}

// CommandCalls sums command's calls over the nodes.
func (c *Cluster) CommandCalls(t testing.TB, command string) int {
	total := 0
	for _, n := range c.Nodes {
		total += commandCalls(t, n.Addr, command)
	}
	return total
}

// StartCluster runs three cluster-enabled servers and joins them with
// redis-cli --cluster create; it returns once every slot is served.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	c := &Cluster{}
	for range 3 {
		c.Nodes = append(c.Nodes, Start(t, "--cluster-enabled", "yes", "--cluster-node-timeout", "2000"))
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.Command(binary(t, "redis-cli"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok := true
		for _, n := range c.Nodes {
			info, err := n.Do("CLUSTER", "INFO")
			ok = ok && err == nil && strings.Contains(info, "cluster_state:ok")
		}
		if ok {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatal("the cluster did not reach cluster_state:ok")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// StartSentinel runs a Sentinel that monitors master under name, and
// returns its address once it knows the master.
func StartSentinel(t testing.TB, master *Server, name string) string {
	t.Helper()
	port := FreePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	host, mport, _ := net.SplitHostPort(master.Addr)
	body := fmt.Sprintf("port %d\nbind 127.0.0.1\nprotected-mode no\ndir %s\nsentinel monitor %s %s %s 1\nsentinel down-after-milliseconds %s 5000\n",
		port, dir, name, host, mport, name)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary(t, "redis-server"), conf, "--sentinel")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	addr := "127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if reply, err := do(addr, "SENTINEL", "get-master-addr-by-name", name); err == nil && reply != "" {
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatal("sentinel did not come up")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
