package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestControlPlaneUsage(t *testing.T) {
	tests := []struct {
		name, usage string
		want        UsageSettings
		path, msg   string // a wanted problem
	}{
		{name: "defaults", usage: "", want: UsageSettings{Interval: 10 * time.Second, MaxRows: 10000}},
		{name: "set", usage: "usage: {interval: 100ms, maxRows: 50}", want: UsageSettings{Interval: 100 * time.Millisecond, MaxRows: 50}},
		{name: "too often", usage: "usage: {interval: 10ms}", path: "controlPlane.usage.interval", msg: "between 100ms and 1h"},
		{name: "too seldom", usage: "usage: {interval: 2h}", path: "controlPlane.usage.interval", msg: "between 100ms and 1h"},
		{name: "negative rows", usage: "usage: {maxRows: -1}", path: "controlPlane.usage.maxRows", msg: "between 1 and"},
		{name: "too many rows", usage: "usage: {maxRows: 1000001}", path: "controlPlane.usage.maxRows", msg: "between 1 and"},
		{name: "unknown key", usage: "usage: {every: 1s}", path: "controlPlane.usage.every", msg: "unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := "controlPlane:\n  address: 127.0.0.1:18000\n  node: r1\n"
			if tc.usage != "" {
				doc += "  " + tc.usage + "\n"
			}
			cfg, err := Compile([]byte(doc), noEnv)
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("unexpected problems: %v", err)
				}
				if cfg.ControlPlane.Usage != tc.want {
					t.Fatalf("usage = %+v, want %+v", cfg.ControlPlane.Usage, tc.want)
				}
				return
			}
			if _, ok := findProblem(problemsOf(t, err), tc.path, tc.msg); !ok {
				t.Fatalf("no problem at %s containing %q in:\n%v", tc.path, tc.msg, err)
			}
		})
	}
}

func TestControlPlaneUsageRetention(t *testing.T) {
	dir := t.TempDir()
	load := func(doc string) (*ControlPlaneConfig, error) {
		p := filepath.Join(dir, "cp.yaml")
		if err := os.WriteFile(p, []byte("source: {file: resources.yaml}\n"+doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return LoadControlPlane(p)
	}
	cfg, err := load("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Usage.Retention != 30*24*time.Hour {
		t.Fatalf("default retention %v, want 720h", cfg.Usage.Retention)
	}
	if cfg, err = load("usage: {retention: 48h}\n"); err != nil || cfg.Usage.Retention != 48*time.Hour {
		t.Fatalf("retention 48h: %+v, %v", cfg, err)
	}
	_, err = load("usage: {retention: 30m}\n")
	if _, ok := findProblem(problemsOf(t, err), "usage.retention", "at least 1h"); !ok {
		t.Fatalf("a retention of 30m: %v", err)
	}
}
