package catalog

import (
	"strings"
	"testing"
)

// FuzzTemplateMatch parses arbitrary templates and matches arbitrary paths
// against them: nothing may panic, a literal template matches its own text,
// and normalising a path is idempotent and leaves no dot or empty segments.
func FuzzTemplateMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"/pets/{id}", "/pets/1"}, {"/files/**", "/files/a/b"}, {"/a/{p...}", "/a"},
		{"/", "/"}, {"/x/*", "/x/%2e%2e/y"}, {"/{a}/{b}", "//a//b//"}, {"/a", "/a/./../a?x#y"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, template, path string) {
		norm := NormalizePath(path)
		if !strings.HasPrefix(norm, "/") {
			t.Fatalf("NormalizePath(%q) = %q lacks a leading slash", path, norm)
		}
		if again := NormalizePath(norm); again != norm {
			t.Fatalf("NormalizePath not idempotent: %q -> %q -> %q", path, norm, again)
		}
		for _, seg := range strings.Split(strings.TrimSuffix(norm, "/"), "/")[1:] {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("NormalizePath(%q) = %q keeps segment %q", path, norm, seg)
			}
		}

		tpl, err := ParseTemplate(template)
		if err != nil {
			return
		}
		api := &API{ID: "a", Hosts: []string{"*"}}
		op := &Operation{API: api, Path: tpl.String(), Template: tpl}
		api.Operations = []*Operation{op}
		c := New([]*API{api})
		c.Match("h", "GET", norm)

		literal := true
		for _, s := range tpl.segments {
			literal = literal && s.kind == segLiteral
		}
		if literal {
			if got, _ := c.Match("h", "GET", NormalizePath(tpl.String())); got != op && !strings.Contains(tpl.String(), "%") {
				t.Fatalf("literal template %q does not match its own text", tpl)
			}
		}
	})
}
