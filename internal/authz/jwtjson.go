package authz

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
)

// repeatsMember reports whether a compact JWS repeats a member name in its
// header or claims object. JSON parsers disagree on which of two equal
// names counts (Go's takes the last, others the first), so an upstream
// reading a forwarded token could see another subject or audience than
// Tollgate did; RFC 7519 §4 allows refusing such tokens, and Tollgate
// does. Parts that are not base64url JSON objects are left for the
// parser to refuse.
func repeatsMember(token string) (bool, error) {
	header, rest, ok := strings.Cut(token, ".")
	if !ok {
		return false, nil
	}
	payload, _, ok := strings.Cut(rest, ".")
	if !ok {
		return false, nil
	}
	for _, part := range [2]string{header, payload} {
		data, err := base64.RawURLEncoding.DecodeString(part)
		if err != nil {
			return false, nil
		}
		if dup, err := objectRepeatsMember(data); dup || err != nil {
			return dup, err
		}
	}
	return false, nil
}

// objectRepeatsMember reports whether the JSON object in data has two
// members of the same name at its top level.
func objectRepeatsMember(data []byte) (bool, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return false, err
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return false, err
		}
		name, _ := tok.(string)
		if seen[name] {
			return true, nil
		}
		seen[name] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return false, err
		}
	}
	return false, nil
}
