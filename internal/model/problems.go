package model

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"github.com/tollgate/tollgate/internal/keys"
)

// Problem is one thing wrong with a resource or a setting, located by its
// path (apis[0].operations[2].path).
type Problem struct {
	Path string
	Msg  string
}

func (p Problem) String() string { return p.Path + ": " + p.Msg }

// Checker collects problems. Sources embed it to hold their own settings
// to the same rules as resources.
type Checker struct {
	Problems []Problem
}

// Addf records a problem at path.
func (c *Checker) Addf(path, format string, args ...any) {
	c.Problems = append(c.Problems, Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// ID requires an identifier that is safe in metrics labels, headers and
// log lines.
func (c *Checker) ID(path, id string) bool {
	if id == "" {
		c.Addf(path, "required")
		return false
	}
	if !ValidID(id) {
		c.Addf(path, "ids are up to 128 letters, digits, '-', '_' or '.', starting with a letter or digit; got %q", id)
		return false
	}
	return true
}

// ValidID reports whether id is up to 128 letters, digits, '-', '_' or
// '.', starting with a letter or digit.
func ValidID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		ok := 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' ||
			i > 0 && (ch == '-' || ch == '_' || ch == '.')
		if !ok {
			return false
		}
	}
	return true
}

// Prefixes parses a list of addresses or CIDR prefixes.
func (c *Checker) Prefixes(path string, in []string) []netip.Prefix {
	var out []netip.Prefix
	for i, s := range in {
		p, err := keys.ParseCIDR(s)
		if err != nil {
			c.Addf(fmt.Sprintf("%s[%d]", path, i), "not an address or CIDR: %q", s)
			continue
		}
		out = append(out, p)
	}
	return out
}

// Scopes requires each scope to be an RFC 6749 scope-token: printable
// ASCII without space, " or \.
func (c *Checker) Scopes(path string, scopes []string) {
	for i, s := range scopes {
		if !keys.ValidScope(s) {
			c.Addf(fmt.Sprintf("%s[%d]", path, i), "a scope is printable ASCII without spaces, quotes or backslashes (RFC 6749), got %q", s)
		}
	}
}

// OperationScopes checks an operation's scopes: each entry is one
// scope-token, or several separated by single spaces, all of which a
// credential must hold (catalog.ScopeSets). Spaces anywhere else are
// refused rather than tidied: " a" or "a  b" is more likely a mistake
// than a way of writing "a" or "a b".
func (c *Checker) OperationScopes(path string, entries []string) {
	for i, entry := range entries {
		at := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case entry == "":
			c.Addf(at, "a scope cannot be empty")
			continue
		case entry[0] == ' ' || entry[len(entry)-1] == ' ':
			c.Addf(at, "%q starts or ends with a space: an entry requiring several scopes separates them by single spaces", entry)
			continue
		case strings.Contains(entry, "  "):
			c.Addf(at, "%q has two spaces in a row: an entry requiring several scopes separates them by single spaces", entry)
			continue
		}
		set := strings.Split(entry, " ")
		for _, s := range set {
			if !keys.ValidScope(s) {
				if len(set) == 1 {
					c.Addf(at, "a scope is printable ASCII without spaces, quotes or backslashes (RFC 6749), got %q", s)
				} else {
					c.Addf(at, "in %q: a scope is printable ASCII without spaces, quotes or backslashes (RFC 6749), got %q", entry, s)
				}
				break
			}
		}
	}
}

// Text requires printable text: names and owners are sent upstream in
// headers and written to logs.
func (c *Checker) Text(path, s string) {
	if len(s) > 256 {
		c.Addf(path, "longer than 256 bytes")
		return
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			c.Addf(path, "must be printable UTF-8 text without control characters")
			return
		}
	}
}

// ValidHeaderName reports whether h is a lower-case HTTP header name.
func ValidHeaderName(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		ch := h[i]
		if !('a' <= ch && ch <= 'z' || '0' <= ch && ch <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", ch) >= 0) {
			return false
		}
	}
	return true
}

// IdentityHeaderNames are the headers the decision sets upstream; a
// client's copy never reaches the upstream.
var IdentityHeaderNames = []string{"x-consumer-id", "x-consumer-name", "x-authenticated-userid", "x-authenticated-scope", "x-credential-type"}

// NotForTokens are headers a claim or the backend JWT may not be written
// to: the identity headers have their own meaning, and the rest would
// change how the request is routed.
var NotForTokens = append(IdentityHeaderNames[:len(IdentityHeaderNames):len(IdentityHeaderNames)],
	"authorization", "host", "content-length", "content-type", "transfer-encoding", "connection", "te")
