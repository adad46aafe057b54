package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"
)

// Problem is one thing wrong with a config file, located by its YAML path
// (apis[0].operations[2].path) and, where known, its line.
type Problem struct {
	Path string
	Line int
	Msg  string
}

func (p Problem) String() string {
	var b strings.Builder
	switch {
	case p.Path != "" && p.Line > 0:
		fmt.Fprintf(&b, "%s (line %d)", p.Path, p.Line)
	case p.Path != "":
		b.WriteString(p.Path)
	case p.Line > 0:
		fmt.Fprintf(&b, "line %d", p.Line)
	default:
		b.WriteString("config")
	}
	b.WriteString(": ")
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found in one file; it is the error type of
// Parse and Compile.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Decoding follows aliases, so a few kilobytes of nested aliases ("billion
// laughs") can stand for millions of nodes. The decoder visits at most
// aliasAllowance nodes more than ten times the document's own node count;
// ordinary reuse of anchors stays far below that.
const aliasAllowance = 200_000

// maxProblems bounds what one file can report; past it, only a count.
const maxProblems = 100

// decoder maps a YAML node tree onto the File structs by reflection. It is
// strict (unknown and repeated keys are problems), reports every problem
// rather than the first, expands ${VAR} in scalar values, and remembers the
// line of every path so that later validation can point at it.
type decoder struct {
	env      func(string) (string, bool)
	problems Problems
	dropped  int // problems not recorded, past 10*maxProblems
	lines    map[string]int
	visited  int
	budget   int  // nodes that may be visited
	tooLarge bool // the budget ran out: what was decoded is incomplete
}

// parse decodes a YAML document into f, a pointer to File or to another
// struct of the same kind. lookupEnv resolves ${VAR}. A
// syntax error is returned as err, since nothing after it can be trusted;
// anything else (unknown keys, wrong types) is returned as problems, and
// what could be decoded is in f.
func parse(data []byte, f any, lookupEnv func(string) (string, bool)) (lines map[string]int, problems Problems, dropped int, err error) {
	d := &decoder{env: lookupEnv, lines: map[string]int{}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, 0, Problems{emptyDocument}
		}
		return nil, nil, 0, Problems{syntaxProblem(err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, nil, 0, Problems{{Line: extra.Line, Msg: "the file must hold exactly one YAML document"}}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	// A file that holds nothing — no bytes, only comments, "---" or null —
	// is most likely one being written: it must never load as a config
	// with no APIs, which would answer every request with 404.
	if root.Kind == yaml.DocumentNode || root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" ||
		root.Kind == yaml.MappingNode && len(root.Content) == 0 {
		return nil, nil, 0, Problems{emptyDocument}
	}
	d.budget = 10*countNodes(root) + aliasAllowance
	d.decode(root, reflect.ValueOf(f).Elem(), "")
	if d.tooLarge {
		// Validating a partly decoded file would only add noise.
		return nil, nil, 0, capProblems(d.problems, d.dropped)
	}
	return d.lines, d.problems, d.dropped, nil
}

var emptyDocument = Problem{Msg: "the config is empty: a config file must hold a mapping with at least one key"}

// capProblems keeps the first maxProblems of ps and says how many more
// there were (extra of them already left out).
func capProblems(ps Problems, extra int) Problems {
	if len(ps) > maxProblems {
		extra += len(ps) - maxProblems
		ps = ps[:maxProblems]
	}
	if extra > 0 {
		ps = append(ps, Problem{Msg: fmt.Sprintf("%d more problems not shown", extra)})
	}
	return ps
}

// countNodes counts the nodes of a tree without following aliases.
func countNodes(n *yaml.Node) int {
	count := 1
	for _, c := range n.Content {
		count += countNodes(c)
	}
	return count
}

// syntaxProblem turns a parser error ("yaml: line 3: did not find ...")
// into a Problem with its line.
func syntaxProblem(err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var line int
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, after, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				line, msg = n, after
			}
		}
	}
	// The parser reports the line where the construct it was reading
	// started, which can be just before the mistake.
	return Problem{Line: line, Msg: "YAML syntax error at or after this line: " + msg}
}

func (d *decoder) addf(n *yaml.Node, path, format string, args ...any) {
	if len(d.problems) >= 10*maxProblems { // Compile shows maxProblems, after sorting
		d.dropped++
		return
	}
	line := 0
	if n != nil {
		line = n.Line
	}
	d.problems = append(d.problems, Problem{Path: path, Line: line, Msg: fmt.Sprintf(format, args...)})
}

var (
	durationType = reflect.TypeFor[Duration]()
	byteSizeType = reflect.TypeFor[ByteSize]()
	timeType     = reflect.TypeFor[time.Time]()

	protoMessageType = reflect.TypeFor[proto.Message]()
)

// enter counts n against the budget, follows aliases and records the
// line of path. It returns nil when there is nothing to decode: the budget
// ran out, or the value is null (which leaves the default).
func (d *decoder) enter(n *yaml.Node, path string) *yaml.Node {
	if d.visited++; d.visited > d.budget {
		if !d.tooLarge {
			d.tooLarge = true
			d.addf(n, path, "document too large: its aliases expand to more than %d nodes", d.budget)
		}
		return nil
	}
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.lines[path] = n.Line
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil
	}
	return n
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n = d.enter(n, path); n == nil {
		return
	}
	if v.Type().Implements(protoMessageType) {
		m := reflect.New(v.Type().Elem())
		d.decodeMessage(n, m.Interface().(proto.Message).ProtoReflect(), path)
		v.Set(m)
		return
	}

	switch v.Type() {
	case durationType:
		if dur, ok := d.duration(n, path); ok {
			v.SetInt(int64(dur))
		}
		return
	case byteSizeType:
		if s, ok := d.scalar(n, path, "a size such as 1MiB"); ok {
			size, err := parseByteSize(s)
			if err != nil {
				d.addf(n, path, "%v", err)
				return
			}
			v.SetInt(size)
		}
		return
	case timeType:
		if t, ok := d.timestamp(n, path); ok {
			v.Set(reflect.ValueOf(t))
		}
		return
	}

	switch v.Kind() {
	case reflect.Pointer:
		elem := reflect.New(v.Type().Elem())
		d.decode(n, elem.Elem(), path)
		v.Set(elem)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.addf(n, path, "expected a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.addf(n, path, "expected a mapping, got %s", describe(n))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			kpath := joinPath(path, k.Value)
			if m.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
				d.addf(k, kpath, "key %q appears twice", k.Value)
				continue
			}
			elem := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, elem, kpath)
			m.SetMapIndex(reflect.ValueOf(k.Value), elem)
		}
		v.Set(m)
	case reflect.String:
		if s, ok := d.scalar(n, path, "a string"); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		if b, ok := d.boolean(n, path); ok {
			v.SetBool(b)
		}
	case reflect.Int, reflect.Int32, reflect.Int64:
		if i, ok := d.integer(n, path); ok {
			v.SetInt(i)
		}
	case reflect.Float64:
		if f, ok := d.number(n, path); ok {
			v.SetFloat(f)
		}
	default:
		d.addf(n, path, "internal error: no decoder for %s", v.Type())
	}
}

func (d *decoder) duration(n *yaml.Node, path string) (time.Duration, bool) {
	s, ok := d.scalar(n, path, "a duration such as 250ms or 5m")
	if !ok {
		return 0, false
	}
	dur, err := time.ParseDuration(s)
	if err != nil || dur < 0 {
		d.addf(n, path, "expected a non-negative duration such as 250ms or 5m, got %q", s)
		return 0, false
	}
	return dur, true
}

func (d *decoder) timestamp(n *yaml.Node, path string) (time.Time, bool) {
	s, ok := d.scalar(n, path, "a timestamp")
	if !ok {
		return time.Time{}, false
	}
	t, err := parseTime(s)
	if err != nil {
		d.addf(n, path, "expected an RFC 3339 timestamp such as 2027-01-01T00:00:00Z, got %q", s)
		return time.Time{}, false
	}
	// A resource's timestamps travel as protobuf Timestamps, which hold
	// the years 1 to 9999 only: outside them it could not be sent to a
	// replica or stored.
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		d.addf(n, path, "timestamps are between the years 1 and 9999, got %q", s)
		return time.Time{}, false
	}
	return t, true
}

func (d *decoder) boolean(n *yaml.Node, path string) (bool, bool) {
	s, ok := d.scalar(n, path, "true or false")
	if !ok {
		return false, false
	}
	switch s {
	case "true", "True", "TRUE":
		return true, true
	case "false", "False", "FALSE":
		return false, true
	}
	d.addf(n, path, "expected true or false, got %q", s)
	return false, false
}

func (d *decoder) integer(n *yaml.Node, path string) (int64, bool) {
	s, ok := d.scalar(n, path, "an integer")
	if !ok {
		return 0, false
	}
	i, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		d.addf(n, path, "expected an integer, got %q", s)
		return 0, false
	}
	return i, true
}

func (d *decoder) number(n *yaml.Node, path string) (float64, bool) {
	s, ok := d.scalar(n, path, "a number")
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		d.addf(n, path, "expected a number, got %q", s)
		return 0, false
	}
	return f, true
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	d.eachKey(n, path, func(k, val *yaml.Node, kpath string) {
		field, ok := fieldByKey(t, k.Value)
		if !ok {
			d.addf(k, kpath, "unknown key %q (known: %s)", k.Value, strings.Join(knownKeys(t), ", "))
			return
		}
		d.decode(val, v.Field(field), kpath)
	})
}

// eachKey calls f for each key of the mapping n, once per key: a key that
// is not a plain string, or that appears twice, is a problem instead.
func (d *decoder) eachKey(n *yaml.Node, path string, f func(k, val *yaml.Node, kpath string)) {
	if n.Kind != yaml.MappingNode {
		d.addf(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		kpath := joinPath(path, k.Value)
		if k.Kind != yaml.ScalarNode {
			d.addf(k, path, "keys must be plain strings")
			continue
		}
		if seen[k.Value] {
			d.addf(k, kpath, "key %q appears twice", k.Value)
			continue
		}
		seen[k.Value] = true
		f(k, val, kpath)
	}
}

// scalar returns n's value with ${VAR} expanded, or records a problem if n
// is a list or mapping.
func (d *decoder) scalar(n *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.addf(n, path, "expected %s, got %s", want, describe(n))
		return "", false
	}
	if d.env == nil { // DecodeMessage: values are taken as they are
		return n.Value, true
	}
	s, err := expandEnv(n.Value, d.env)
	if err != nil {
		d.addf(n, path, "%v", err)
		return "", false
	}
	return s, true
}

func fieldByKey(t reflect.Type, key string) (int, bool) {
	for i := 0; i < t.NumField(); i++ {
		if yamlKey(t.Field(i)) == key {
			return i, true
		}
	}
	return 0, false
}

func knownKeys(t reflect.Type) []string {
	keys := make([]string, 0, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		keys = append(keys, yamlKey(t.Field(i)))
	}
	return keys
}

func yamlKey(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return strconv.Quote(n.Value)
	}
}

// parseByteSize reads 1048576, 64KiB, 1MiB or 2GiB.
func parseByteSize(s string) (int64, error) {
	num, unit := s, int64(1)
	for suffix, mult := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if rest, ok := strings.CutSuffix(s, suffix); ok {
			num, unit = strings.TrimSpace(rest), mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<40)/unit {
		return 0, fmt.Errorf("expected a size such as 1048576, 64KiB, 1MiB or 2GiB, got %q", s)
	}
	return n * unit, nil
}

func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05Z07:00", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("bad timestamp %q", s)
}

// expandEnv replaces ${NAME}, ${NAME:-default} and ${NAME:?message} in s.
// An unset NAME becomes "" (like a shell), unless :? makes it an error.
// $${ is a literal ${. A lone $ is left alone.
func expandEnv(s string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			b.WriteByte(s[i])
			continue
		}
		if strings.HasPrefix(s[i:], "$${") {
			b.WriteString("${")
			i += 2
			continue
		}
		if !strings.HasPrefix(s[i:], "${") {
			b.WriteByte('$')
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated ${ in %q", s)
		}
		expr := s[i+2 : i+end]
		val, err := expandOne(expr, lookup)
		if err != nil {
			return "", err
		}
		b.WriteString(val)
		i += end
	}
	return b.String(), nil
}

func expandOne(expr string, lookup func(string) (string, bool)) (string, error) {
	name, op, arg := expr, "", ""
	if j := strings.Index(expr, ":"); j >= 0 {
		name, op = expr[:j], expr[j:]
		if len(op) < 2 || (op[1] != '-' && op[1] != '?') {
			return "", fmt.Errorf("${%s}: want ${NAME}, ${NAME:-default} or ${NAME:?message}", expr)
		}
		op, arg = op[:2], op[2:]
	}
	if !validEnvName(name) {
		return "", fmt.Errorf("${%s}: %q is not a variable name", expr, name)
	}
	val, set := lookup(name)
	if set && val != "" {
		return val, nil
	}
	switch op {
	case ":-":
		return arg, nil
	case ":?":
		if arg == "" {
			arg = "not set"
		}
		return "", fmt.Errorf("${%s}: %s", name, arg)
	}
	return val, nil
}

func validEnvName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
