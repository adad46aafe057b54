package catalog

import (
	"errors"
	"strings"
)

// EscapedSlashes says what %2F and %5C (either case) in a request path
// mean, like Envoy's path_with_escaped_slashes_action.
type EscapedSlashes uint8

const (
	// RejectEscapedSlashes refuses the request: upstreams disagree on
	// whether an escaped slash separates segments (nginx decodes it, Go's
	// ServeMux does not), so no single reading is safe.
	RejectEscapedSlashes EscapedSlashes = iota
	// UnescapeEscapedSlashes decodes them, as Envoy's UNESCAPE_AND_FORWARD
	// does before routing: %2F becomes a separator.
	UnescapeEscapedSlashes
	// KeepEscapedSlashes leaves them inside their segment, for upstreams
	// known never to decode them.
	KeepEscapedSlashes
)

// ParseEscapedSlashes parses reject, unescape or keep ("" is reject).
func ParseEscapedSlashes(s string) (EscapedSlashes, error) {
	switch s {
	case "", "reject":
		return RejectEscapedSlashes, nil
	case "unescape":
		return UnescapeEscapedSlashes, nil
	case "keep":
		return KeepEscapedSlashes, nil
	}
	return 0, errors.New("want reject, unescape or keep")
}

// PathError says why a path cannot be read one way only; its text is the
// description of the 400 answer.
type PathError struct{ Description string }

func (e *PathError) Error() string { return e.Description }

// The ways a path is refused.
var (
	ErrEmptyPath     = &PathError{"The request has no path."}
	ErrNotOriginForm = &PathError{"The request path must start with /."}
	ErrBadEscape     = &PathError{"The request path has a malformed percent-encoding."}
	ErrEscapedSlash  = &PathError{"The request path has an encoded slash or backslash (%2F, %5C)."}
	ErrBackslash     = &PathError{"The request path has a backslash, which upstreams read differently."}
	ErrPathControl   = &PathError{"The request path has characters that must be percent-encoded, or an encoded NUL."}
)

// Path is a request path as Tollgate matches it.
type Path struct {
	// Clean is the path with the query and fragment dropped, percent-
	// encoded path characters decoded (every other escape kept, with
	// upper-case hex), dot segments resolved and repeated slashes merged:
	// how Envoy's normalize_path + merge_slashes, nginx and Go's ServeMux
	// read it, so that a request cannot reach an operation by spelling its
	// path differently.
	Clean string
	// WithoutParams is the same path with every ";parameter" suffix of a
	// segment removed (and dot segments resolved again), as Java servlet
	// containers read it — or "" when no segment has one. The decision
	// must hold for both readings.
	WithoutParams string
}

// CleanPath reads a request target (path and query, as sent) into the path
// that is matched, or says why it cannot be read one way only. Clean
// paths, the common case, are returned without allocating.
func CleanPath(target string, slashes EscapedSlashes) (Path, error) {
	if i := strings.IndexAny(target, "?#"); i >= 0 {
		target = target[:i]
	}
	if target == "" {
		return Path{}, ErrEmptyPath
	}
	if target[0] != '/' {
		return Path{}, ErrNotOriginForm
	}
	if isCanonical(target) {
		return Path{Clean: target}, nil
	}
	segs, err := decodeSegments(target, slashes)
	if err != nil {
		return Path{}, err
	}
	p := Path{Clean: joinSegments(resolveDots(segs))}
	hasParams := false
	for _, s := range segs {
		if strings.IndexByte(s, ';') >= 0 {
			hasParams = true
			break
		}
	}
	if hasParams {
		stripped := make([]string, 0, len(segs))
		for _, s := range segs {
			if s, _, _ = strings.Cut(s, ";"); s != "" { // a segment that was only a parameter merges away
				stripped = append(stripped, s)
			}
		}
		if alt := joinSegments(resolveDots(stripped)); alt != p.Clean {
			p.WithoutParams = alt
		}
	}
	return p, nil
}

// NormalizePath returns the clean path of target for logs and analytics,
// whatever the escaped-slash setting: a path that cannot be read one way is
// shown up to its query, as sent.
func NormalizePath(target string) string {
	p, err := CleanPath(target, KeepEscapedSlashes)
	if err == nil {
		return p.Clean
	}
	if i := strings.IndexAny(target, "?#"); i >= 0 {
		target = target[:i]
	}
	if target == "" {
		return "/"
	}
	return target
}

// isCanonical reports whether p (starting with /) is already clean: no
// escapes, no characters that would be escaped, no dot or empty segments
// (one trailing slash is harmless: matching ignores it) and no ;parameters.
func isCanonical(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '/' {
			rest := p[i+1:]
			switch {
			case rest == "":
				continue
			case rest[0] == '/', rest == ".", rest == "..",
				strings.HasPrefix(rest, "./"), strings.HasPrefix(rest, "../"):
				return false
			}
			continue
		}
		if c == '%' || c == ';' || !isRawPathChar(c) {
			return false
		}
	}
	return true
}

// decodeSegments splits p into segments, decoding each escape of a path
// character and keeping (upper-cased) every other escape. Empty segments
// are dropped: repeated slashes merge.
func decodeSegments(p string, slashes EscapedSlashes) ([]string, error) {
	var segs []string
	var b strings.Builder
	flush := func() {
		if b.Len() > 0 {
			segs = append(segs, b.String())
			b.Reset()
		}
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '/':
			flush()
			continue
		case c == '\\':
			return nil, ErrBackslash
		case c == '%':
			if i+2 >= len(p) {
				return nil, ErrBadEscape
			}
			hi, ok1 := unhex(p[i+1])
			lo, ok2 := unhex(p[i+2])
			if !ok1 || !ok2 {
				return nil, ErrBadEscape
			}
			i += 2
			d := hi<<4 | lo
			switch {
			case d == '/' || d == '\\':
				switch slashes {
				case RejectEscapedSlashes:
					return nil, ErrEscapedSlash
				case UnescapeEscapedSlashes:
					if d == '\\' {
						return nil, ErrBackslash
					}
					flush()
					continue
				}
				writeEscape(&b, d)
			case d == 0:
				return nil, ErrPathControl
			case isDecodedPathChar(d):
				b.WriteByte(d)
			default:
				writeEscape(&b, d)
			}
		case c <= ' ' || c >= 0x7f:
			return nil, ErrPathControl
		case isRawPathChar(c):
			b.WriteByte(c)
		default:
			writeEscape(&b, c) // printable but not a path character: ", <, >, {, |, ...
		}
	}
	flush()
	return segs, nil
}

// resolveDots applies the segments' . and .. (RFC 3986 remove_dot_segments;
// .. at the root stays at the root, as Envoy and Go do).
func resolveDots(segs []string) []string {
	out := segs[:0:0]
	for _, s := range segs {
		switch s {
		case ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, s)
		}
	}
	return out
}

func joinSegments(segs []string) string {
	if len(segs) == 0 {
		return "/"
	}
	return "/" + strings.Join(segs, "/")
}

const upperHex = "0123456789ABCDEF"

func writeEscape(b *strings.Builder, c byte) {
	b.WriteByte('%')
	b.WriteByte(upperHex[c>>4])
	b.WriteByte(upperHex[c&0xf])
}

// isDecodedPathChar reports whether an escaped c is decoded: RFC 3986
// pchar (unreserved, sub-delims, ':' and '@'), which every upstream decodes
// to the same character — except ';', whose escaped and raw forms
// servlet containers tell apart (only a raw one starts a parameter).
// Everything else stays escaped, so that decoding can never build a new
// separator, parameter, query or escape.
func isDecodedPathChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,=:@", c) >= 0
}

// isRawPathChar reports whether c may stand unescaped in a clean path.
func isRawPathChar(c byte) bool { return c == ';' || isDecodedPathChar(c) }

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// nextSegment returns the segment of p that starts at i (after any
// slashes) and the index just past it; ok is false at the end of p.
func nextSegment(p string, i int) (seg string, next int, ok bool) {
	for i < len(p) && p[i] == '/' {
		i++
	}
	if i >= len(p) {
		return "", i, false
	}
	j := strings.IndexByte(p[i:], '/')
	if j < 0 {
		return p[i:], len(p), true
	}
	return p[i : i+j], i + j, true
}
