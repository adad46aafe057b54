package catalog

import (
	"strings"
	"testing"
)

func TestScopeSets(t *testing.T) {
	sets := func(entries ...string) [][]string {
		var out [][]string
		for _, e := range entries {
			out = append(out, strings.Split(e, " "))
		}
		return out
	}
	cases := []struct {
		name  string
		sets  [][]string
		have  []string
		allow bool
	}{
		{"no requirement", nil, nil, true},
		{"no requirement, scopes held", nil, []string{"a"}, true},
		{"any of single scopes: one held", sets("a", "b"), []string{"x", "b"}, true},
		{"any of single scopes: none held", sets("a", "b"), []string{"c"}, false},
		{"any of single scopes: nothing held", sets("a", "b"), nil, false},
		{"all of a set: both held", sets("a b"), []string{"b", "a"}, true},
		{"all of a set: one held", sets("a b"), []string{"a"}, false},
		{"(a and b) or c: a only", sets("a b", "c"), []string{"a"}, false},
		{"(a and b) or c: a and b", sets("a b", "c"), []string{"x", "a", "b"}, true},
		{"(a and b) or c: c", sets("a b", "c"), []string{"c"}, true},
		{"(a and b) or c: b and c", sets("a b", "c"), []string{"b", "c"}, true},
		{"(a and b) or (c and d): a and d", sets("a b", "c d"), []string{"a", "d"}, false},
		{"a repeat in a set", sets("a a"), []string{"a"}, true},
		{"scopes are compared whole", sets("pets:write"), []string{"pets:writer", "pets"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := NewScopeSets(tc.sets)
			if got := s.Allow(tc.have); got != tc.allow {
				t.Fatalf("sets %q, held %q: Allow = %v, want %v", tc.sets, tc.have, got, tc.allow)
			}
			if s.Empty() != (len(tc.sets) == 0) {
				t.Errorf("Empty = %v for %d sets", s.Empty(), len(tc.sets))
			}
		})
	}
}

func TestScopeSetsDescription(t *testing.T) {
	cases := []struct {
		sets [][]string
		want string
	}{
		{[][]string{{"pets:write"}, {"pets:admin"}}, "The operation requires one of the scopes: pets:write pets:admin"},
		{[][]string{{"pets:write"}}, "The operation requires one of the scopes: pets:write"},
		{[][]string{{"write:pets", "read:pets"}}, "The operation requires the scopes write:pets and read:pets."},
		{[][]string{{"a", "b"}, {"c"}}, "The operation requires the scopes a and b, or c."},
		{[][]string{{"a", "a"}, {"c"}}, "The operation requires one of the scopes: a c"},
		{nil, ""},
	}
	for _, tc := range cases {
		s := NewScopeSets(tc.sets)
		if got := s.Description(); got != tc.want {
			t.Errorf("sets %q: %q, want %q", tc.sets, got, tc.want)
		}
	}
}

// TestScopeSetsAllocateNothing: checking scopes is on every request's
// path, single scopes or sets.
func TestScopeSetsAllocateNothing(t *testing.T) {
	single := NewScopeSets([][]string{{"pets:write"}, {"pets:admin"}})
	all := NewScopeSets([][]string{{"write:pets", "read:pets"}, {"admin"}})
	have := []string{"read:pets", "pets:read", "write:pets"}
	for name, s := range map[string]*ScopeSets{"single": &single, "sets": &all} {
		if n := testing.AllocsPerRun(100, func() { s.Allow(have) }); n != 0 {
			t.Errorf("%s: %v allocations per check", name, n)
		}
	}
}

// BenchmarkScopeSets measures the scope check of one request: a token's
// few scopes against an operation's entries, single scopes and sets.
func BenchmarkScopeSets(b *testing.B) {
	have := []string{"openid", "profile", "pets:read", "pets:write"}
	cases := []struct {
		name string
		sets [][]string
	}{
		{"single", [][]string{{"pets:admin"}, {"pets:write"}}},
		{"all-of", [][]string{{"pets:read", "pets:write"}, {"pets:admin"}}},
	}
	for _, tc := range cases {
		s := NewScopeSets(tc.sets)
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !s.Allow(have) {
					b.Fatal("refused")
				}
			}
		})
	}
}
