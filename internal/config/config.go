package config

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/model"
	"github.com/tollgate/tollgate/internal/ratelimit"
)

// Config is a compiled config file: the replica's bootstrap and the model
// compiled from the file's resources.
type Config struct {
	Bootstrap
	*model.Snapshot
	Digest [sha256.Size]byte // of the file's bytes
	// Difference says the snapshot was made by applying what the file
	// changed to the previous one, not by compiling it whole.
	Difference bool
	versions   resourceVersions // nil when two resources shared a name
}

// Bootstrap is what only the replica's own file sets: listeners, stores,
// analytics, tracing, admin. Changes need a restart.
type Bootstrap struct {
	Listen         Listen
	RateLimit      RateLimitSettings
	Analytics      AnalyticsSettings
	Tracing        TracingSettings
	PProf          bool // /debug/pprof on the admin port
	Limits         LimitSettings
	AccessLogPeers []netip.Prefix // empty: any peer
	// ControlPlane, when its Address is set, is where resources come
	// from instead of this file.
	ControlPlane ControlPlaneSettings
}

// LimitSettings is the compiled limits section.
type LimitSettings struct {
	MaxRequestBytes      int
	MaxConcurrentStreams uint32
	// MemoryLimit is "auto" (follow the container's limit unless
	// GOMEMLIMIT is set), "off", or a size in bytes in MemoryLimitBytes.
	MemoryLimit      string
	MemoryLimitBytes int64
	// TokenCacheEntries bounds the cache of verified JWTs.
	TokenCacheEntries int
}

// RateLimitSettings is the compiled rateLimit section.
type RateLimitSettings struct {
	Store         string // memory or redis
	MemoryMaxKeys int    // bound on the memory store (and the Redis store's local fallback)
	Redis         ratelimit.RedisOptions
	FailureMode   ratelimit.FailureMode
	FallbackShare float64
}

// AnalyticsSettings is the compiled analytics section.
type AnalyticsSettings struct {
	Events      string // "" (none), "stdout" or a file path
	FileMaxMB   int
	FileBackups int
}

// TracingSettings is the compiled tracing section.
type TracingSettings struct {
	OTLPEndpoint string // "": off
	SampleRatio  float64
}

// Load reads and compiles the config file at path. ${VAR} is taken from
// the process environment.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return compileIn(data, os.LookupEnv, filepath.Dir(path))
}

// Compile parses and validates a config document. The error, if any, is
// Problems: every problem found, each with its YAML path.
func Compile(data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	return compileIn(data, lookupEnv, "")
}

// compileIn compiles with relative file paths (JWKS files, keys, CA
// bundles) taken relative to baseDir, the config file's directory.
func compileIn(data []byte, lookupEnv func(string) (string, bool), baseDir string) (*Config, error) {
	return compileAgainst(data, lookupEnv, baseDir, nil)
}

// compileAgainst compiles a file; given what the previous load of it
// left (prev), a file that changes only applications, subscriptions or
// API keys is applied to the previous snapshot instead (see
// applyDifference).
func compileAgainst(data []byte, lookupEnv func(string) (string, bool), baseDir string, prev *previous) (*Config, error) {
	var f File
	lines, problems, dropped, err := parse(data, &f, lookupEnv)
	if err != nil {
		return nil, err
	}
	failed := decodeFailed(problems)
	c := compiler{baseDir: baseDir}
	boot, settings := c.bootstrap(&f)
	boot.ControlPlane = c.controlPlane(f.ControlPlane, lines)
	c.emptySecurity(&f, lines)
	now := time.Now()
	res := f.Resources()
	versions, _ := versionsOf(res)
	var snap *model.Snapshot
	var resourceProblems []model.Problem
	difference := false
	if prev != nil && prev.versions != nil && versions != nil && len(problems) == 0 && len(c.Problems) == 0 && dropped == 0 {
		snap, difference = applyDifference(prev, settings, res, versions)
	}
	if !difference {
		snap, resourceProblems = model.Compile(model.Input{
			Settings: settings, Resources: res, BaseDir: baseDir, Now: now, Unsure: failed,
		})
	}
	// Validation runs on whatever decoded, so that one run reports every
	// problem; it stays quiet about values that failed to decode.
	for _, p := range append(c.Problems, resourceProblems...) {
		if !failed(p.Path) {
			problems = append(problems, Problem{Path: p.Path, Line: lineOf(lines, p.Path), Msg: p.Msg})
		}
	}
	if len(problems) > 0 || dropped > 0 {
		slices.SortStableFunc(problems, func(a, b Problem) int {
			return cmp.Compare(lineOrLast(a.Line), lineOrLast(b.Line))
		})
		return nil, capProblems(problems, dropped)
	}
	digest := sha256.Sum256(data)
	snap.Version = "sha256:" + hex.EncodeToString(digest[:8])
	snap.LoadedAt = now
	return &Config{Bootstrap: boot, Snapshot: snap, Digest: digest, Difference: difference, versions: versions}, nil
}

// lineOf is the line of path, or of the nearest enclosing mapping or list
// when path itself is not in the file (a required key left out).
func lineOf(lines map[string]int, path string) int {
	for {
		if line, ok := lines[path]; ok {
			return line
		}
		i := strings.LastIndexAny(path, ".[")
		if i <= 0 {
			return 0
		}
		path = path[:i]
	}
}

// decodeFailed returns a test of whether a path, or a list or mapping
// that contains it, failed to decode.
func decodeFailed(ps Problems) func(path string) bool {
	failed := make(map[string]bool, len(ps))
	for _, p := range ps {
		failed[p.Path] = true
	}
	return func(path string) bool {
		for {
			if failed[path] {
				return true
			}
			i := strings.LastIndexAny(path, ".[")
			if i <= 0 {
				return false
			}
			path = path[:i]
		}
	}
}

func lineOrLast(line int) int {
	if line == 0 {
		return math.MaxInt
	}
	return line
}
