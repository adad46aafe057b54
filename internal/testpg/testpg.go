// Package testpg runs a real PostgreSQL server for tests, on a free
// loopback port, from Debian's postgresql package (scripts/test-deps.sh
// installs it). One server serves a whole test binary; each test gets a
// database of its own.
//
// PostgreSQL refuses to run as root, so when the tests run as root the
// server runs as the postgres user that Debian's package creates.
package testpg

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// Server is one postgres process and its data directory.
type Server struct {
	Port    int
	dataDir string
	cred    *syscall.Credential
	cmd     *exec.Cmd
	exited  chan struct{}
	log     *os.File
}

var (
	shared    *Server
	sharedErr error
	once      sync.Once
	databases atomic.Int64
)

// bin finds a PostgreSQL program: Debian keeps them in
// /usr/lib/postgresql/<major>/bin, off PATH.
func bin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(matches) == 0 {
		return "", fmt.Errorf("%s not found: run scripts/test-deps.sh (installs postgresql from Debian)", name)
	}
	return matches[len(matches)-1], nil
}

// credential is the postgres user's when running as root.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the postgres user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start initialises a data directory and runs the server.
func start() (*Server, error) {
	initdb, err := bin("initdb")
	if err != nil {
		return nil, err
	}
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	// Under the system temp directory, not t.TempDir: the postgres user
	// must be able to reach it.
	dir, err := os.MkdirTemp("", "tollgate-pg-")
	if err != nil {
		return nil, err
	}
	s := &Server{dataDir: filepath.Join(dir, "data"), cred: cred}
	if err := os.Mkdir(s.dataDir, 0o700); err != nil {
		return nil, err
	}
	if cred != nil {
		for _, d := range []string{dir, s.dataDir} {
			if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, err
			}
		}
	}
	cmd := exec.Command(initdb, "-D", s.dataDir, "-U", "tollgate", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	if s.Port, err = freePort(); err != nil {
		return nil, err
	}
	if err := s.Restart(); err != nil {
		return nil, err
	}
	return s, nil
}

// Restart starts the server again on its port, after Stop.
func (s *Server) Restart() error {
	postgres, err := bin("postgres")
	if err != nil {
		return err
	}
	s.log, err = os.CreateTemp("", "tollgate-pg-log-")
	if err != nil {
		return err
	}
	s.cmd = exec.Command(postgres, "-D", s.dataDir, "-p", strconv.Itoa(s.Port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+s.dataDir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200")
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Setpgid: true}
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	s.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { _ = cmd.Wait(); close(exited) }(s.cmd, s.exited)
	deadline := time.Now().Add(30 * time.Second)
	for {
		db, err := sql.Open("pgx", s.URL("postgres"))
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err = db.PingContext(ctx)
			cancel()
			db.Close()
		}
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			out, _ := os.ReadFile(s.log.Name())
			return fmt.Errorf("postgres exited during start-up: %s", out)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres on port %d did not answer: %v", s.Port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop shuts the server down (fast mode) and waits for it.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	if s.log != nil {
		os.Remove(s.log.Name())
	}
}

// URL is a connection string for one database of the server.
func (s *Server) URL(database string) string {
	return fmt.Sprintf("postgres://tollgate@127.0.0.1:%d/%s?sslmode=disable", s.Port, database)
}

// Shared is the test binary's server, started at first use. Call
// StopShared from TestMain after the tests ran.
func Shared(t testing.TB) *Server {
	t.Helper()
	once.Do(func() { shared, sharedErr = start() })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

// StopShared stops the shared server and removes its data.
func StopShared() {
	if shared == nil {
		return
	}
	shared.Stop()
	os.RemoveAll(filepath.Dir(shared.dataDir))
}

// Database creates an empty database on the shared server and returns
// its URL; it is dropped at cleanup.
func Database(t testing.TB) string {
	t.Helper()
	s := Shared(t)
	name := fmt.Sprintf("t%d_%d", os.Getpid(), databases.Add(1))
	admin, err := sql.Open("pgx", s.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("creating database %s: %v", name, err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", s.URL("postgres"))
		if err != nil {
			return
		}
		defer db.Close()
		_, _ = db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
	})
	return s.URL(strings.ToLower(name))
}
