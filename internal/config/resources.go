package config

import (
	"cmp"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/internal/model"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// ResourceSet is what a control plane serves: the resources of a YAML
// file, or of every YAML file in a directory, validated together.
type ResourceSet struct {
	Resources *tollgatev1.Resources
	Digest    [sha256.Size]byte // of the files' names and bytes
}

// LoadResources reads resources for a control plane from a file in the
// config format, or from every *.yaml and *.yml file of a directory
// (hidden files left out, so that a ConfigMap's ..data links are not
// read twice). Sections that are not resources are problems: they belong
// in each enforcer's own file. The set is validated as a file is, with
// references across files.
func LoadResources(path string) (*ResourceSet, error) {
	files, err := resourceFiles(path)
	if err != nil {
		return nil, err
	}
	merged := &tollgatev1.Resources{}
	var problems Problems
	decoded := true // every file decoded: the set can be validated
	var spans []fileSpan
	digest := sha256.New()
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("reading resources: %w", err)
		}
		fmt.Fprintf(digest, "%s\x00%d\x00", filepath.Base(file), len(data))
		digest.Write(data)
		r, lines, ps, misplaced := parseResources(data)
		for _, p := range append(ps, misplaced...) {
			problems = append(problems, p.in(file, path))
		}
		if r == nil || len(ps) > 0 {
			decoded = false
			continue
		}
		spans = append(spans, fileSpan{file: file, lines: lines, start: counts(merged)})
		proto.Merge(merged, r)
		if r.Mtls != nil && spans[len(spans)-1].start["mtls"] > 0 {
			problems = append(problems, Problem{Path: "mtls", Line: lines["mtls"], Msg: "mtls is already set in another file"}.in(file, path))
		}
	}
	if decoded {
		_, resourceProblems := model.Compile(model.Input{Resources: merged, BaseDir: dirOf(path), Now: time.Now()})
		for _, p := range resourceProblems {
			problems = append(problems, locate(spans, p, path))
		}
	}
	if len(problems) > 0 {
		slices.SortStableFunc(problems, func(a, b Problem) int {
			return cmp.Or(strings.Compare(fileOf(a), fileOf(b)), lineOrLast(a.Line)-lineOrLast(b.Line))
		})
		return nil, capProblems(problems, 0)
	}
	set := &ResourceSet{Resources: merged}
	digest.Sum(set.Digest[:0])
	return set, nil
}

func resourceFiles(path string) ([]string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading resources: %w", err)
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("reading resources: %w", err)
	}
	var files []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || e.IsDir() || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) {
			continue
		}
		files = append(files, filepath.Join(path, name))
	}
	if len(files) == 0 {
		return nil, Problems{{Msg: fmt.Sprintf("%s holds no .yaml or .yml file", path)}}
	}
	return files, nil
}

func dirOf(path string) string {
	if info, err := os.Stat(path); err == nil && info.IsDir() {
		return path
	}
	return filepath.Dir(path)
}

// fileOf is the file name a problem starts with, in a directory.
func fileOf(p Problem) string {
	name, _, _ := strings.Cut(p.Path, ": ")
	return name
}

// parseResources decodes one document that may hold resource sections
// only. misplaced are the sections that are not resources.
func parseResources(data []byte) (r *tollgatev1.Resources, lines map[string]int, problems, misplaced Problems) {
	var f File
	lines, problems, _, err := parse(data, &f, os.LookupEnv)
	if err != nil {
		var ps Problems
		if as, ok := err.(Problems); ok {
			ps = as
		} else {
			ps = Problems{{Msg: err.Error()}}
		}
		return nil, nil, ps, nil
	}
	for key := range lines {
		if key == "" || strings.ContainsAny(key, ".[") || slices.Contains(resourceKeys, key) {
			continue
		}
		misplaced = append(misplaced, Problem{Path: key, Line: lines[key],
			Msg: "not a resource: the control plane serves resources only; this belongs in each enforcer's own file"})
	}
	c := compiler{}
	c.emptySecurity(&f, lines)
	for _, p := range c.Problems {
		problems = append(problems, Problem{Path: p.Path, Line: lineOf(lines, p.Path), Msg: p.Msg})
	}
	r = f.Resources()
	r.Management = f.Management
	return r, lines, problems, misplaced
}

// ParseResources decodes one document of resource sections and its
// management section (what `enforcer admin import` sends). Problems of
// the document itself are reported with their lines; the resources are
// validated by the receiver, which holds what they may refer to and the
// files they may name.
func ParseResources(data []byte) (*tollgatev1.Resources, error) {
	r, _, problems, misplaced := parseResources(data)
	problems = append(problems, misplaced...)
	if len(problems) > 0 {
		return nil, capProblems(problems, 0)
	}
	return r, nil
}

// fileSpan says where one file's list items start in the merged set.
type fileSpan struct {
	file  string
	lines map[string]int
	start map[string]int
}

func counts(r *tollgatev1.Resources) map[string]int {
	n := map[string]int{
		"issuers": len(r.Issuers), "revokedTokens": len(r.RevokedTokens), "apis": len(r.Apis),
		"applications": len(r.Applications), "subscriptions": len(r.Subscriptions), "apiKeys": len(r.ApiKeys),
		"rateLimitPolicies": len(r.RateLimitPolicies),
	}
	if r.Mtls != nil {
		n["mtls"] = 1
	}
	return n
}

var listIndex = regexp.MustCompile(`^([A-Za-z]+)\[(\d+)\]`)

// locate turns a problem in the merged set back into one in its file.
func locate(spans []fileSpan, p model.Problem, root string) Problem {
	if len(spans) == 0 {
		return Problem{Path: p.Path, Msg: p.Msg}
	}
	m := listIndex.FindStringSubmatch(p.Path)
	if m == nil { // mtls, or the set as a whole
		span := spans[0]
		for _, s := range spans {
			if _, ok := s.lines[strings.SplitN(p.Path, ".", 2)[0]]; ok {
				span = s
			}
		}
		return Problem{Path: p.Path, Line: lineOf(span.lines, p.Path), Msg: p.Msg}.in(span.file, root)
	}
	section := m[1]
	i, _ := strconv.Atoi(m[2])
	span := spans[0]
	for _, s := range spans {
		if s.start[section] <= i {
			span = s
		}
	}
	local := fmt.Sprintf("%s[%d]%s", section, i-span.start[section], p.Path[len(m[0]):])
	return Problem{Path: local, Line: lineOf(span.lines, local), Msg: p.Msg}.in(span.file, root)
}

// in names the file of a problem when the resources are a directory.
func (p Problem) in(file, root string) Problem {
	if file != root {
		p.Path = filepath.Base(file) + ": " + p.Path
	}
	return p
}
