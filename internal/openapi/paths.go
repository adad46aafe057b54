package openapi

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"

	"github.com/tollgate/tollgate/internal/catalog"
)

// serverBasePath is the path of a server URL, its variables replaced by
// their defaults. problem says why there is none.
func serverBasePath(srv *v3.Server) (path, problem string) {
	if srv == nil {
		return "", ""
	}
	raw, rest := "", srv.URL
	for rest != "" {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			raw += rest
			break
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return "", fmt.Sprintf("server URL %q has an unclosed {", srv.URL)
		}
		name := rest[i+1 : i+j]
		var v *v3.ServerVariable
		if srv.Variables != nil {
			v = srv.Variables.GetOrZero(name)
		}
		if v == nil {
			return "", fmt.Sprintf("server URL %q uses the variable {%s}, which it does not define", srv.URL, name)
		}
		raw += rest[:i] + v.Default
		rest = rest[i+j+1:]
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Sprintf("server URL %q is not a URL", raw)
	}
	if u.Scheme == "" && u.Host == "" && raw != "" && !strings.HasPrefix(raw, "/") {
		return "", fmt.Sprintf("server URL %q is relative to where the document is served", raw)
	}
	return u.EscapedPath(), ""
}

// trimBase is a base path without its trailing slash: "" is the root.
func trimBase(p string) string { return strings.TrimRight(p, "/") }

// template is a document path in Tollgate's template syntax.
type template struct {
	path      string // as Tollgate writes it
	canonical string // what it matches, parameter names aside
	notes     []string
}

// pathTemplate converts a document path. OpenAPI's {name} segments stay
// as they are; parameter names Tollgate does not accept are renamed (a
// name plays no part in matching), and a segment that mixes text and
// parameters ("{name}.json") matches any value of that segment, since a
// Tollgate segment is either text or a parameter.
func pathTemplate(raw string, base catalog.Template) (template, error) {
	if !strings.HasPrefix(raw, "/") {
		return template{}, fmt.Errorf("a path starts with /")
	}
	var t template
	var segs []string
	names := map[string]bool{}
	for _, seg := range strings.Split(strings.TrimSuffix(raw[1:], "/"), "/") {
		switch {
		case strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") && strings.Count(seg, "{") == 1 && strings.Count(seg, "}") == 1:
			name := seg[1 : len(seg)-1]
			rest := ""
			if n, ok := strings.CutSuffix(name, "..."); ok {
				name, rest = n, "..."
			}
			fixed := paramName(name, names)
			if fixed != name {
				t.notes = append(t.notes, fmt.Sprintf("parameter {%s} is written {%s}", name, fixed))
			}
			names[fixed] = true
			segs = append(segs, "{"+fixed+rest+"}")
		case strings.ContainsAny(seg, "{}"):
			t.notes = append(t.notes, fmt.Sprintf("segment %q matches any value in its place", seg))
			segs = append(segs, "*")
		case seg == "*" || seg == "**":
			t.notes = append(t.notes, fmt.Sprintf("segment %q is a wildcard in Tollgate", seg))
			segs = append(segs, seg)
		default:
			segs = append(segs, seg)
		}
	}
	parsed, err := catalog.ParseTemplate("/" + strings.Join(segs, "/"))
	if err != nil {
		return template{}, err
	}
	if _, err := base.Join(parsed); err != nil {
		return template{}, err
	}
	t.path, t.canonical = parsed.String(), parsed.Canonical()
	return t, nil
}

// paramName returns name if Tollgate accepts it as a parameter name and
// it is not taken, else a name made of its letters, digits and '_'.
func paramName(name string, taken map[string]bool) string {
	if _, err := catalog.ParseTemplate("/{" + name + "}"); err == nil && !taken[name] {
		return name
	}
	b := []byte(name)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	fixed := string(b)
	if fixed == "" || '0' <= fixed[0] && fixed[0] <= '9' {
		fixed = "p" + fixed
	}
	for i, try := 2, fixed; ; i++ {
		if !taken[try] {
			return try
		}
		try = fixed + "_" + strconv.Itoa(i)
	}
}
