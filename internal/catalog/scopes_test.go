package catalog

import (
	"testing"
)

func TestScopeSets(t *testing.T) {
	cases := []struct {
		name    string
		entries []string
		have    []string
		allow   bool
	}{
		{"no requirement", nil, nil, true},
		{"no requirement, scopes held", nil, []string{"a"}, true},
		{"any of single scopes: one held", []string{"a", "b"}, []string{"x", "b"}, true},
		{"any of single scopes: none held", []string{"a", "b"}, []string{"c"}, false},
		{"any of single scopes: nothing held", []string{"a", "b"}, nil, false},
		{"all of a set: both held", []string{"a b"}, []string{"b", "a"}, true},
		{"all of a set: one held", []string{"a b"}, []string{"a"}, false},
		{"(a and b) or c: a only", []string{"a b", "c"}, []string{"a"}, false},
		{"(a and b) or c: a and b", []string{"a b", "c"}, []string{"x", "a", "b"}, true},
		{"(a and b) or c: c", []string{"a b", "c"}, []string{"c"}, true},
		{"(a and b) or c: b and c", []string{"a b", "c"}, []string{"b", "c"}, true},
		{"(a and b) or (c and d): a and d", []string{"a b", "c d"}, []string{"a", "d"}, false},
		{"a repeat in a set", []string{"a a"}, []string{"a"}, true},
		{"scopes are compared whole", []string{"pets:write"}, []string{"pets:writer", "pets"}, false},
		// The config compiler refuses these; were one to get here, it
		// would ask for an empty scope, which nothing carries.
		{"doubled space", []string{"a  b"}, []string{"a", "b"}, false},
		{"leading space", []string{" a"}, []string{"a"}, false},
		{"empty entry", []string{""}, []string{"a"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := NewScopeSets(tc.entries)
			if got := s.Allow(tc.have); got != tc.allow {
				t.Fatalf("entries %q, held %q: Allow = %v, want %v", tc.entries, tc.have, got, tc.allow)
			}
			if s.Empty() != (len(tc.entries) == 0) {
				t.Errorf("Empty = %v for %d entries", s.Empty(), len(tc.entries))
			}
		})
	}
}

func TestScopeSetsDescription(t *testing.T) {
	cases := []struct {
		entries []string
		want    string
	}{
		{[]string{"pets:write", "pets:admin"}, "The operation requires one of the scopes: pets:write pets:admin"},
		{[]string{"pets:write"}, "The operation requires one of the scopes: pets:write"},
		{[]string{"write:pets read:pets"}, "The operation requires the scopes write:pets and read:pets."},
		{[]string{"a b", "c"}, "The operation requires the scopes a and b, or c."},
		{[]string{"a a", "c"}, "The operation requires one of the scopes: a c"},
		{nil, ""},
	}
	for _, tc := range cases {
		s := NewScopeSets(tc.entries)
		if got := s.Description(); got != tc.want {
			t.Errorf("entries %q: %q, want %q", tc.entries, got, tc.want)
		}
	}
}

// TestNewCompilesScopes: New fills in every operation's ScopeSets from its
// Scopes, so an operation cannot list scopes that go unchecked.
func TestNewCompilesScopes(t *testing.T) {
	api := &API{ID: "shop", Hosts: []string{"*"}}
	tpl, err := ParseTemplate("/x")
	if err != nil {
		t.Fatal(err)
	}
	op := &Operation{API: api, Path: "/x", Template: tpl, Scopes: []string{"a b", "c"}}
	api.Operations = []*Operation{op}
	New([]*API{api}, Options{})
	if op.ScopeSets.Empty() || op.ScopeSets.Allow([]string{"a"}) || !op.ScopeSets.Allow([]string{"b", "a"}) {
		t.Fatalf("after New, scopes %q compiled to %+v", op.Scopes, op.ScopeSets)
	}
}

// TestScopeSetsAllocateNothing: checking scopes is on every request's
// path, single scopes or sets.
func TestScopeSetsAllocateNothing(t *testing.T) {
	single := NewScopeSets([]string{"pets:write", "pets:admin"})
	all := NewScopeSets([]string{"write:pets read:pets", "admin"})
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
		name    string
		entries []string
	}{
		{"single", []string{"pets:admin", "pets:write"}},
		{"all-of", []string{"pets:read pets:write", "pets:admin"}},
	}
	for _, tc := range cases {
		s := NewScopeSets(tc.entries)
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
