package catalog

import (
	"fmt"
	"strings"
)

// segmentKind orders segments by specificity: a literal beats a parameter,
// which beats a rest match.
type segmentKind uint8

const (
	segLiteral segmentKind = iota
	segParam
	segRest
)

type segment struct {
	kind  segmentKind
	value string // the literal text, or the parameter name ("" for * and **)
}

// Template is a parsed path template such as /pets/{id} or /files/{path...}.
type Template struct {
	raw      string
	segments []segment
}

// String returns the template as written (normalised: no trailing slash).
func (t Template) String() string { return t.raw }

// Canonical returns a form in which templates that match exactly the same
// paths are equal: parameter names are dropped.
func (t Template) Canonical() string {
	var b strings.Builder
	for _, s := range t.segments {
		b.WriteByte('/')
		switch s.kind {
		case segLiteral:
			b.WriteString(s.value)
		case segParam:
			b.WriteString("{}")
		case segRest:
			b.WriteString("**")
		}
	}
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}

// Join appends other's segments to t (used for basePath + operation path).
func (t Template) Join(other Template) (Template, error) {
	if t.hasRest() && len(other.segments) > 0 {
		return Template{}, fmt.Errorf("%q: nothing may follow a rest segment", t.raw+other.raw)
	}
	joined := Template{raw: t.raw + other.raw}
	if t.raw == "/" {
		joined.raw = other.raw
	} else if other.raw == "/" {
		joined.raw = t.raw
	}
	joined.segments = append(append([]segment(nil), t.segments...), other.segments...)
	if err := checkParamNames(joined.segments); err != nil {
		return Template{}, fmt.Errorf("%q: %w", joined.raw, err)
	}
	return joined, nil
}

func (t Template) hasRest() bool {
	return len(t.segments) > 0 && t.segments[len(t.segments)-1].kind == segRest
}

// ParseTemplate parses a path template. Grammar, one segment at a time:
//
//	literal      pets, v1, a-b.c
//	{name}       exactly one segment
//	*            exactly one segment, unnamed
//	{name...}    the rest of the path (zero or more segments); last only
//	**           the rest of the path, unnamed; last only
//
// A segment mixes nothing: "file.{ext}" is rejected rather than half-supported.
func ParseTemplate(s string) (Template, error) {
	if s == "" || s[0] != '/' {
		return Template{}, fmt.Errorf("path template %q must start with /", s)
	}
	if strings.ContainsAny(s, "?#") {
		return Template{}, fmt.Errorf("path template %q must not contain a query or fragment", s)
	}
	trimmed := strings.TrimSuffix(s, "/")
	t := Template{raw: trimmed}
	if trimmed == "" {
		t.raw = "/"
		return t, nil
	}
	parts := strings.Split(trimmed[1:], "/")
	for i, p := range parts {
		seg, err := parseSegment(p)
		if err != nil {
			return Template{}, fmt.Errorf("path template %q: segment %d: %w", s, i+1, err)
		}
		if seg.kind == segRest && i != len(parts)-1 {
			return Template{}, fmt.Errorf("path template %q: a rest segment ({name...} or **) must be last", s)
		}
		t.segments = append(t.segments, seg)
	}
	if err := checkParamNames(t.segments); err != nil {
		return Template{}, fmt.Errorf("path template %q: %w", s, err)
	}
	return t, nil
}

func parseSegment(p string) (segment, error) {
	switch {
	case p == "":
		return segment{}, fmt.Errorf("empty segment (//)")
	case p == "." || p == "..":
		return segment{}, fmt.Errorf("dot segment %q", p)
	case p == "*":
		return segment{kind: segParam}, nil
	case p == "**":
		return segment{kind: segRest}, nil
	case p[0] == '{':
		if p[len(p)-1] != '}' {
			return segment{}, fmt.Errorf("%q: unbalanced {", p)
		}
		name := p[1 : len(p)-1]
		kind := segParam
		if rest, ok := strings.CutSuffix(name, "..."); ok {
			name, kind = rest, segRest
		}
		if !validParamName(name) {
			return segment{}, fmt.Errorf("%q: parameter names are letters, digits and _, not starting with a digit", p)
		}
		return segment{kind: kind, value: name}, nil
	}
	for i := 0; i < len(p); i++ {
		if !isPathChar(p[i]) {
			return segment{}, fmt.Errorf("%q: character %q is not allowed in a literal segment", p, p[i])
		}
	}
	// A literal is kept in the form requests are read into (CleanPath), so
	// that %7e and ~ are the same segment on both sides.
	segs, err := decodeSegments("/"+p, KeepEscapedSlashes)
	if err != nil {
		return segment{}, fmt.Errorf("%q: %v", p, err)
	}
	if len(segs) != 1 || segs[0] == "." || segs[0] == ".." || strings.IndexByte(segs[0], ';') >= 0 {
		return segment{}, fmt.Errorf("%q: a literal segment cannot decode to a dot segment or hold ';' (some upstreams strip ;parameters)", p)
	}
	return segment{kind: segLiteral, value: segs[0]}, nil
}

func checkParamNames(segs []segment) error {
	seen := make(map[string]bool, len(segs))
	for _, s := range segs {
		if s.kind == segLiteral || s.value == "" {
			continue
		}
		if seen[s.value] {
			return fmt.Errorf("parameter {%s} appears twice", s.value)
		}
		seen[s.value] = true
	}
	return nil
}

func validParamName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// isPathChar reports whether c may appear in a literal segment: RFC 3986
// pchar without the characters the template syntax itself uses, and
// without ';', which starts a path parameter for servlet containers.
func isPathChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~%!$&'()+,=:@", c) >= 0
}

// Params lists the template's named parameters, in order.
func (t Template) Params() []string {
	var out []string
	for _, s := range t.segments {
		if s.kind != segLiteral && s.value != "" {
			out = append(out, s.value)
		}
	}
	return out
}

// ParamValue is the value parameter name takes in path, a clean path
// (CleanPath) that the template matched: one segment, or for a rest
// parameter the rest of the path without its leading slash.
func (t Template) ParamValue(path, name string) string {
	rest := strings.TrimPrefix(path, "/")
	for _, s := range t.segments {
		seg, after, _ := strings.Cut(rest, "/")
		switch {
		case s.kind == segRest && s.value == name:
			return rest
		case s.kind == segParam && s.value == name:
			return seg
		}
		rest = after
	}
	return ""
}
