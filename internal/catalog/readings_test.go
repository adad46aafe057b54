package catalog

import (
	"net/url"
	"path"
	"strings"
	"testing"
)

// The decision only holds if the upstream serves the operation Tollgate
// allowed. These tests read a path the ways upstreams do — decode
// everything then resolve (nginx), unescape each segment (Go's ServeMux),
// Envoy's normalize_path + merge_slashes, and strip ;parameters (servlet
// containers) — and require that whenever Tollgate allows a path as
// operation O, every reading that serves something serves O.

// readingCatalog has neighbours that a different reading could reach.
func readingCatalog(t testing.TB) *Catalog {
	return testCatalog(t, []string{"api", "/api", "*",
		"GET /pets", "GET /pets/{id}", "GET /pets/{id}/owner", "GET /public/**", "GET /admin",
		"GET /{section}/admin", "GET /files/{name}", "GET /a+b", "GET /~home"})
}

// A reading returns the segments an upstream routes on, or ok false when it
// serves nothing for the path (refuses it, or redirects to a clean form that
// comes back through Tollgate).
type reading func(raw string) (segs []string, ok bool)

func upstreamReadings() map[string]reading {
	return map[string]reading{
		"nginx": func(raw string) ([]string, bool) {
			p, err := url.PathUnescape(raw)
			if err != nil || strings.IndexByte(p, 0) >= 0 {
				return nil, false
			}
			return resolve(strings.Split(p, "/"), true)
		},
		"go-servemux": func(raw string) ([]string, bool) {
			var segs []string
			for _, s := range strings.Split(raw, "/")[1:] {
				u, err := url.PathUnescape(s)
				if err != nil {
					return nil, false
				}
				if u == "" || u == "." || u == ".." {
					return nil, false // not clean: ServeMux redirects to the cleaned path
				}
				segs = append(segs, u)
			}
			return segs, true
		},
		"envoy-normalize": func(raw string) ([]string, bool) {
			var b strings.Builder
			for i := 0; i < len(raw); i++ {
				if raw[i] == '%' && i+2 < len(raw) {
					hi, ok1 := unhex(raw[i+1])
					lo, ok2 := unhex(raw[i+2])
					if !ok1 || !ok2 {
						return nil, false
					}
					if c := hi<<4 | lo; c == '/' || c == '\\' {
						return nil, false // path_with_escaped_slashes_action: REJECT_REQUEST
					} else if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
						b.WriteByte(c)
						i += 2
						continue
					}
				}
				b.WriteByte(raw[i])
			}
			segs, ok := resolve(strings.Split(b.String(), "/"), false)
			for i, s := range segs {
				u, err := url.PathUnescape(s) // the upstream behind Envoy then reads each segment
				if err != nil {
					return nil, false
				}
				segs[i] = u
			}
			return segs, ok
		},
		"servlet": func(raw string) ([]string, bool) {
			parts := strings.Split(raw, "/")
			for i, s := range parts {
				parts[i], _, _ = strings.Cut(s, ";")
			}
			p, err := url.PathUnescape(strings.Join(parts, "/"))
			if err != nil {
				return nil, false
			}
			return resolve(strings.Split(p, "/"), false)
		},
	}
}

// resolve merges empty segments and applies dot segments; aboveRoot says
// whether going above the root is refused (nginx) or stays at the root.
func resolve(parts []string, refuseAboveRoot bool) ([]string, bool) {
	var out []string
	for _, s := range parts {
		switch s {
		case "", ".":
		case "..":
			if len(out) == 0 && refuseAboveRoot {
				return nil, false
			}
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, s)
		}
	}
	return out, true
}

// asMatched writes decoded segments in the form the catalog matches.
func asMatched(segs []string) string {
	var b strings.Builder
	for _, s := range segs {
		b.WriteByte('/')
		for i := 0; i < len(s); i++ {
			if c := s[i]; isDecodedPathChar(c) {
				b.WriteByte(c)
			} else {
				writeEscape(&b, c)
			}
		}
	}
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}

// allowedAs is what Tollgate decides for raw: the operation, or nil when it
// refuses the path (unreadable, a ;parameter reading that differs, or no
// operation).
func allowedAs(c *Catalog, raw string) *Operation {
	p, err := CleanPath(raw, RejectEscapedSlashes)
	if err != nil {
		return nil
	}
	op, _ := c.Match("h", "GET", p.Clean)
	if op != nil && p.WithoutParams != "" {
		if other, _ := c.Match("h", "GET", p.WithoutParams); other != op {
			return nil
		}
	}
	return op
}

func checkReadings(t *testing.T, c *Catalog, raw string) {
	op := allowedAs(c, raw)
	if op == nil {
		return
	}
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i] // every upstream parses the target so
	}
	for name, read := range upstreamReadings() {
		segs, ok := read(raw)
		if !ok {
			continue
		}
		if got, _ := c.Match("h", "GET", asMatched(segs)); got != op {
			var gotPath string
			if got != nil {
				gotPath = got.Path
			}
			t.Errorf("%q: Tollgate allows it as %s, %s serves %q (%q)", raw, op.Path, name, path.Join(append([]string{"/"}, segs...)...), gotPath)
		}
	}
}

// Every path built from up to four pieces that mix what upstreams read
// differently: dots in every spelling, encoded separators, ;parameters,
// encoded path characters.
func TestPathReadingsAgree(t *testing.T) {
	c := readingCatalog(t)
	pieces := []string{"api", "pets", "1", "admin", "public", "files", "owner", "x",
		".", "..", "%2e", "%2E%2e", ".%2e", "%2F", "%2f..", "%5C", "..;", ";x=1", "%3B", "", "%41", "a+b", "a%2Bb", "%7ehome", "%25"}
	var build func(prefix string, depth int)
	n := 0
	build = func(prefix string, depth int) {
		n++
		checkReadings(t, c, prefix)
		if depth == 0 || t.Failed() {
			return
		}
		for _, p := range pieces {
			build(prefix+"/"+p, depth-1)
		}
	}
	build("/api", 4)
	if n < 100000 {
		t.Fatalf("only %d paths checked", n)
	}
}

// FuzzPathReadings checks the same property for arbitrary paths.
func FuzzPathReadings(f *testing.F) {
	for _, s := range []string{"/api/pets/1", "/api/public/..;/admin", "/api/pets/1%2F..%2F..%2Fadmin", "/api/x/%2e%2e/admin", "/api/pets/1;v=2"} {
		f.Add(s)
	}
	c := readingCatalog(f)
	f.Fuzz(func(t *testing.T, raw string) {
		if !strings.HasPrefix(raw, "/") {
			raw = "/" + raw
		}
		checkReadings(t, c, raw)
	})
}
