package openapi

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/internal/keys"
)

// Tollgate's schemes as bits of an AND set; 0 is none.
const (
	bitMTLS uint8 = 1 << iota
	bitJWT
	bitAPIKey
)

// schemeName names an AND set in Tollgate's form, in a fixed order so
// that the same set is always written the same way: mtls+jwt+apiKey.
func schemeName(mask uint8) string {
	if mask == 0 {
		return "none"
	}
	var parts []string
	for _, s := range []struct {
		bit  uint8
		name string
	}{{bitMTLS, "mtls"}, {bitJWT, "jwt"}, {bitAPIKey, "apiKey"}} {
		if mask&s.bit != 0 {
			parts = append(parts, s.name)
		}
	}
	return strings.Join(parts, "+")
}

// scheme is a security scheme of the document, as Tollgate can enforce it.
type scheme struct {
	loc     string
	bit     uint8  // 0: unsupported
	why     string // why unsupported
	invalid string // why the definition itself is wrong
	keyIn   string // apiKey: header or query
	keyName string
}

func schemeOf(loc, typ, in, name, httpScheme string) scheme {
	s := scheme{loc: loc}
	switch typ {
	case "apiKey":
		switch in {
		case "header", "query":
			s.bit, s.keyIn, s.keyName = bitAPIKey, in, name
			if name == "" {
				s.invalid = "an apiKey scheme needs the name of its " + in
			}
		case "cookie":
			s.why = "API keys in cookies are not supported"
		default:
			s.invalid = fmt.Sprintf("an apiKey scheme is in header, query or cookie, not %q", in)
		}
	case "http":
		switch {
		case strings.EqualFold(httpScheme, "bearer"):
			s.bit = bitJWT
		case httpScheme == "":
			s.invalid = "an http scheme needs its scheme, such as bearer"
		default:
			s.why = fmt.Sprintf("HTTP %s authentication is not supported", strings.ToLower(httpScheme))
		}
	case "oauth2", "openIdConnect":
		s.bit = bitJWT
	case "mutualTLS":
		s.bit = bitMTLS
	case "basic":
		s.why = "HTTP basic authentication is not supported"
	case "":
		s.invalid = "a security scheme needs a type"
	default:
		s.why = fmt.Sprintf("scheme type %q is not supported", typ)
	}
	return s
}

// alt is one alternative of an operation's security, as Tollgate enforces
// it: an AND set of schemes and the scopes the document asks with it.
type alt struct {
	mask   uint8 // 0: none (anonymous)
	scopes []string
}

// secMapper maps security requirements to Tollgate's alternatives.
type secMapper struct {
	im      *importer
	schemes map[string]scheme
	// The API's key location: an API reads its keys from one place, the
	// first apiKey scheme the document uses.
	keyScheme string
	keyIn     string
	keyName   string
	mapped    map[*securityList][]alt
	// root is the top-level security: what is dropped from it is said
	// once every operation that takes it is known (rootDropped), naming
	// them (rootUsers).
	root        *securityList
	rootDropped []string
	rootUsers   []string
}

func newSecMapper(im *importer, s *spec) *secMapper {
	m := &secMapper{im: im, schemes: s.schemes, mapped: map[*securityList][]alt{}, root: s.security}
	for _, name := range sortedKeys(s.schemes) {
		if sc := s.schemes[name]; sc.invalid != "" {
			im.problems.addf(sc.loc, "%s", sc.invalid)
		}
	}
	lists := []*securityList{s.security}
	for _, p := range s.paths {
		for _, o := range p.ops {
			lists = append(lists, o.security)
		}
	}
	for _, l := range lists {
		if l == nil {
			continue
		}
		for _, r := range l.reqs {
			for _, name := range r.names {
				if sc, ok := s.schemes[name]; ok && sc.bit == bitAPIKey && m.keyScheme == "" {
					m.keyScheme, m.keyIn, m.keyName = name, sc.keyIn, sc.keyName
				}
			}
		}
	}
	return m
}

// alternatives maps a security list; ok is false when the list has
// alternatives and Tollgate can enforce none of them (a problem is
// reported: an operation is never made public because its schemes are
// unsupported).
func (m *secMapper) alternatives(l *securityList) ([]alt, bool) {
	if alts, ok := m.mapped[l]; ok {
		return alts, alts != nil
	}
	var alts []alt
	var dropped []string
	failed := false
	for _, r := range l.reqs {
		a, why, ok := m.requirement(r)
		switch {
		case !ok:
			failed = true
		case why != "":
			if l == m.root {
				m.rootDropped = append(m.rootDropped, fmt.Sprintf("%s (%s) is not imported for %%s: %s", r.loc, strings.Join(r.names, ", "), why))
			} else {
				m.im.warnf("%s (%s) is not imported: %s", r.loc, strings.Join(r.names, ", "), why)
			}
			dropped = append(dropped, why)
		default:
			alts = append(alts, a)
		}
	}
	if len(alts) == 0 && !failed {
		m.im.problems.addf(l.loc, "no alternative here can be enforced by Tollgate (%s); it does not make an operation public because its schemes are unsupported",
			strings.Join(slices.Compact(dropped), "; "))
	}
	if len(alts) == 0 || failed {
		alts = nil
	}
	m.mapped[l] = alts
	return alts, alts != nil
}

// uses records that an operation takes the top-level security.
func (m *secMapper) uses(l *securityList, label string) {
	if l == m.root {
		m.rootUsers = append(m.rootUsers, label)
	}
}

// finish says what was dropped from the top-level security, for which
// operations.
func (m *secMapper) finish() {
	users := strings.Join(m.rootUsers, ", ")
	if len(m.rootUsers) > 3 {
		users = fmt.Sprintf("%s and %d more", strings.Join(m.rootUsers[:3], ", "), len(m.rootUsers)-3)
	}
	for _, w := range m.rootDropped {
		m.im.warnf(w, users)
	}
}

// requirement maps one requirement object. why says why it is dropped;
// ok is false when it is wrong (a problem was reported).
func (m *secMapper) requirement(r requirement) (a alt, why string, ok bool) {
	ok = true
	var keyAt string
	for i, name := range r.names {
		sc, found := m.schemes[name]
		if !found {
			m.im.problems.addf(join(r.loc, name), "no security scheme named %q is defined", name)
			ok = false
			continue
		}
		if sc.invalid != "" {
			ok = false
			continue
		}
		if sc.bit == 0 {
			return alt{}, sc.why, ok
		}
		if sc.bit == bitAPIKey {
			at := sc.keyIn + " " + strconv.Quote(sc.keyName)
			if keyAt != "" && keyAt != at {
				return alt{}, "it needs two API keys in different places, and Tollgate reads one", ok
			}
			keyAt = at
			if name != m.keyScheme && (sc.keyIn != m.keyIn || sc.keyName != m.keyName) {
				m.im.warnf("%s: keys of scheme %s are read from the %s %q of scheme %s, not from its own %s: an API reads its keys from one place",
					sc.loc, name, m.keyIn, m.keyName, m.keyScheme, at)
			}
		}
		a.mask |= sc.bit
		for j, s := range r.scopes[i] {
			if !keys.ValidScope(s) {
				m.im.problems.addf(index(join(r.loc, name), j), "a scope is printable ASCII without spaces, quotes or backslashes (RFC 6749), got %q", s)
				ok = false
				continue
			}
			if !slices.Contains(a.scopes, s) {
				a.scopes = append(a.scopes, s)
			}
		}
	}
	return a, "", ok
}

// maxScopeEntries bounds the scope combinations of one operation.
const maxScopeEntries = 64

// resolve turns an operation's alternatives into Tollgate's security list
// and scopes; quiet leaves the scopes out (x-tollgate-scopes gives them).
//
// Tollgate checks one list of scopes per operation, for every credential
// but none (API keys carry scopes too; client certificates carry none),
// where the document can ask different scopes of each alternative. The
// list chosen is never weaker than the document: every entry holds, for
// each alternative, all the scopes of one of that alternative's scope
// sets, so a caller it admits would have been admitted by the document
// with the same credentials. Where that makes an alternative stricter
// than the document, a warning says so.
func (m *secMapper) resolve(label, loc string, alts []alt, quiet bool) (security, scopes []string) {
	var masks []uint8
	families := map[uint8][][]string{}
	none := false
	for _, a := range alts {
		if a.mask == 0 {
			none = true
			continue
		}
		if _, seen := families[a.mask]; !seen {
			masks = append(masks, a.mask)
		}
		families[a.mask] = append(families[a.mask], a.scopes)
	}
	for _, mask := range masks {
		security = append(security, schemeName(mask))
		families[mask] = minimize(families[mask])
	}
	if none {
		// Last, so that a caller who presents credentials is identified
		// by them: Tollgate takes the first alternative that applies.
		security = append(security, "none")
	}
	if quiet {
		return security, nil
	}
	combined := [][]string{{}}
	for _, mask := range masks {
		var next [][]string
		for _, have := range combined {
			for _, set := range families[mask] {
				next = append(next, union(have, set))
			}
		}
		if combined = minimize(next); len(combined) > maxScopeEntries {
			m.im.problems.addf(loc, "%s: the alternatives' scopes make more than %d combinations; x-tollgate-scopes can say which scopes the operation needs", label, maxScopeEntries)
			return security, nil
		}
	}
	if len(combined) == 1 && len(combined[0]) == 0 {
		return security, nil
	}
	for _, set := range combined {
		scopes = append(scopes, strings.Join(set, " "))
	}
	for _, mask := range masks {
		switch {
		case mask == bitMTLS:
			m.im.warnf("%s: callers with a client certificate alone cannot have the scopes %s: certificates carry no scopes, so that alternative admits no one",
				label, formatList(scopes))
		case !sameFamily(families[mask], combined):
			m.im.warnf("%s: callers using %s need %s, where the document asks %s: Tollgate checks one list of scopes for every alternative",
				label, schemeName(mask), describeScopes(combined), describeScopes(families[mask]))
		}
	}
	return security, scopes
}

// minimize drops duplicate sets and sets that hold another: "one of
// these sets" means the same without them.
func minimize(family [][]string) [][]string {
	var out [][]string
	for i, a := range family {
		redundant := false
		for j, b := range family {
			if i != j && subset(b, a) && (!subset(a, b) || j < i) {
				redundant = true
				break
			}
		}
		if !redundant {
			out = append(out, a)
		}
	}
	return out
}

func subset(a, b []string) bool {
	for _, s := range a {
		if !slices.Contains(b, s) {
			return false
		}
	}
	return true
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// sameFamily compares two minimized families as sets of sets.
func sameFamily(a, b [][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y []string) bool { return subset(x, y) && subset(y, x) }) {
			return false
		}
	}
	return true
}

func describeScopes(family [][]string) string {
	if len(family) == 0 || len(family) == 1 && len(family[0]) == 0 {
		return "no scope"
	}
	var parts []string
	for _, set := range family {
		parts = append(parts, strings.Join(set, " "))
	}
	if len(parts) == 1 {
		return "the scopes " + formatList(parts)
	}
	return "one of the scope sets " + formatList(parts)
}

// formatList writes a list as [a b "c d"]: an entry holding a space is
// quoted, so that an all-of entry reads apart from two entries.
func formatList(list []string) string {
	parts := make([]string, len(list))
	for i, s := range list {
		if s == "" || strings.ContainsAny(s, " \"") {
			s = strconv.Quote(s)
		}
		parts[i] = s
	}
	return "[" + strings.Join(parts, " ") + "]"
}
