package catalog

import (
	"slices"
	"strings"
)

// ScopeSets is what an operation's scopes ask of a credential: every scope
// of at least one set. An operation's configured scopes are its sets: an
// entry "pets:write" is a set of one, and an entry "write:pets read:pets"
// requires both, since a scope-token never contains a space (RFC 6749
// §3.3) and a space can only separate tokens. So ["a b", "c"] means
// (a and b) or c, and a list of single scopes keeps its meaning "any of
// them".
//
// The sets are built once, by New as it indexes the operation; checking
// them allocates nothing.
type ScopeSets struct {
	sets        [][]string // each without repeats; nil: no requirement
	description string
}

// NewScopeSets compiles an operation's configured scope entries, each
// split at its spaces; repeats within an entry are dropped. The config
// compiler refuses entries with other spacing, but one that reached here
// would hold an empty scope, which no credential carries: an entry never
// asks less than it says.
func NewScopeSets(entries []string) ScopeSets {
	if len(entries) == 0 {
		return ScopeSets{}
	}
	out := ScopeSets{sets: make([][]string, len(entries))}
	single := true
	for i, entry := range entries {
		var unique []string
		for s := range strings.SplitSeq(entry, " ") {
			if !slices.Contains(unique, s) {
				unique = append(unique, s)
			}
		}
		out.sets[i] = unique
		single = single && len(unique) == 1
	}
	out.description = describe(out.sets, single)
	return out
}

// describe says what a credential lacks, for the 403: the long-standing
// wording when every set is one scope.
func describe(sets [][]string, single bool) string {
	var b strings.Builder
	if single {
		b.WriteString("The operation requires one of the scopes:")
		for _, set := range sets {
			b.WriteString(" ")
			b.WriteString(set[0])
		}
		return b.String()
	}
	b.WriteString("The operation requires the scopes ")
	for i, set := range sets {
		if i > 0 {
			b.WriteString(", or ")
		}
		b.WriteString(strings.Join(set, " and "))
	}
	b.WriteString(".")
	return b.String()
}

// Empty reports whether there is no requirement.
func (s *ScopeSets) Empty() bool { return len(s.sets) == 0 }

// Allow reports whether a credential carrying the scopes have meets the
// requirement: holds every scope of some set (always, when there is none).
func (s *ScopeSets) Allow(have []string) bool {
	if len(s.sets) == 0 {
		return true
	}
	for _, set := range s.sets {
		if hasAll(have, set) {
			return true
		}
	}
	return false
}

func hasAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// Description says what the requirement is, for a refusal.
func (s *ScopeSets) Description() string { return s.description }
