package config

import (
	"errors"
	"strings"
	"testing"
)

// noEnv is a lookup in which no variable is set.
func noEnv(string) (string, bool) { return "", false }

// envOf returns a lookup that sees exactly the variables in m, so that tests
// never read or change the process environment.
func envOf(m map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

// problemsOf asserts that err is a non-empty Problems and returns it.
func problemsOf(t *testing.T, err error) Problems {
	t.Helper()
	if err == nil {
		t.Fatal("got no error, want Problems")
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error %q has type %T, want Problems", err, err)
	}
	if len(ps) == 0 {
		t.Fatal("got an empty Problems")
	}
	return ps
}

// findProblem returns the problem at path whose message contains msg.
func findProblem(ps Problems, path, msg string) (Problem, bool) {
	for _, p := range ps {
		if p.Path == path && strings.Contains(p.Msg, msg) {
			return p, true
		}
	}
	return Problem{}, false
}

// mustCompile compiles data and fails the test on any problem.
func mustCompile(t *testing.T, data []byte, lookupEnv func(string) (string, bool)) *Config {
	t.Helper()
	snap, err := Compile(data, lookupEnv)
	if err != nil {
		t.Fatalf("Compile: unexpected problems:\n%v", err)
	}
	if snap == nil {
		t.Fatal("Compile returned a nil snapshot and no error")
	}
	return snap
}
