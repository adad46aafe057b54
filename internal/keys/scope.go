package keys

import "strings"

// ValidScope reports whether s is an RFC 6749 scope-token: one or more
// printable ASCII characters other than space, '"' and '\'.
func ValidScope(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// ParseScopes splits an OAuth scope string. RFC 6749 §3.3 separates
// scope-tokens by single spaces, so only U+0020 separates here: a tab, a
// no-break space or any other character that is not part of a
// scope-token makes the whole value invalid (ok false) rather than being
// read as a separator, which would let "a\u00a0pets:write" grant
// pets:write. Empty tokens (doubled spaces) are skipped.
func ParseScopes(s string) (scopes []string, ok bool) {
	for s != "" {
		var token string
		token, s, _ = strings.Cut(s, " ")
		if token == "" {
			continue
		}
		if !ValidScope(token) {
			return nil, false
		}
		scopes = append(scopes, token)
	}
	return scopes, true
}
