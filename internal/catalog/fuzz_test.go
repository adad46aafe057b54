package catalog

import (
	"strings"
	"testing"
)

// FuzzTemplateMatch parses arbitrary templates and matches arbitrary paths
// against them: nothing may panic, a literal template matches its own text,
// and a path that CleanPath accepts is clean: reading it again changes
// nothing, and it has no dot or empty segments.
func FuzzTemplateMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"/pets/{id}", "/pets/1"}, {"/files/**", "/files/a/b"}, {"/a/{p...}", "/a"},
		{"/", "/"}, {"/x/*", "/x/%2e%2e/y"}, {"/{a}/{b}", "//a//b//"}, {"/a", "/a/./../a?x#y"},
		{"/a%7e", "/a~"}, {"/x/{y}", "/x/..;/y"}, {"/x", "/x%2F..%5c"},
	} {
		f.Add(s[0], s[1], uint8(0))
	}
	f.Fuzz(func(t *testing.T, template, path string, mode uint8) {
		slashes := EscapedSlashes(mode % 3)
		p, err := CleanPath(path, slashes)
		if err == nil {
			for _, reading := range []string{p.Clean, p.WithoutParams} {
				if reading == "" {
					continue
				}
				if !strings.HasPrefix(reading, "/") {
					t.Fatalf("CleanPath(%q) = %q lacks a leading slash", path, reading)
				}
				again, err := CleanPath(reading, slashes)
				if err != nil || again.Clean != reading {
					t.Fatalf("CleanPath not idempotent: %q -> %q -> %q, %v", path, reading, again.Clean, err)
				}
				for _, seg := range strings.Split(strings.TrimSuffix(reading, "/"), "/")[1:] {
					if seg == "" || seg == "." || seg == ".." {
						t.Fatalf("CleanPath(%q) = %q keeps segment %q", path, reading, seg)
					}
				}
			}
		}

		tpl, err := ParseTemplate(template)
		if err != nil {
			return
		}
		api := &API{ID: "a", Hosts: []string{"*"}}
		op := &Operation{API: api, Path: tpl.String(), Template: tpl}
		api.Operations = []*Operation{op}
		c := New([]*API{api}, Options{})
		if p.Clean != "" {
			c.Match("h", "GET", p.Clean)
		}

		literal := true
		for _, s := range tpl.segments {
			literal = literal && s.kind == segLiteral
		}
		if literal {
			own, err := CleanPath(tpl.String(), KeepEscapedSlashes)
			if err != nil {
				t.Fatalf("literal template %q is not a readable path: %v", tpl, err)
			}
			if got, _ := c.Match("h", "GET", own.Clean); got != op {
				t.Fatalf("literal template %q does not match its own text %q", tpl, own.Clean)
			}
		}
	})
}
