package catalog

import (
	"path"
	"strings"
)

// NormalizePath turns a request target into the path that is matched:
// the query and fragment are dropped, percent-encoded unreserved characters
// are decoded (so /%70ets is /pets and %2e%2e is ..), dot segments and
// repeated slashes are resolved. A request cannot reach an operation by
// spelling its path differently from the template. Already-clean paths,
// the common case, are returned without allocating.
func NormalizePath(target string) string {
	if i := strings.IndexAny(target, "?#"); i >= 0 {
		target = target[:i]
	}
	if target == "" {
		return "/"
	}
	if strings.IndexByte(target, '%') >= 0 {
		target = decodeUnreserved(target)
	}
	if needsClean(target) {
		target = path.Clean("/" + target)
	}
	return target
}

// needsClean reports whether p has a dot segment, an empty segment or no
// leading slash.
func needsClean(p string) bool {
	if p[0] != '/' {
		return true
	}
	for i := 0; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		rest := p[i+1:]
		switch {
		case rest == "" && i > 0:
			return false // one trailing slash is harmless: matching ignores it
		case strings.HasPrefix(rest, "/"):
			return true
		case rest == "." || strings.HasPrefix(rest, "./"):
			return true
		case rest == ".." || strings.HasPrefix(rest, "../"):
			return true
		}
	}
	return false
}

// decodeUnreserved decodes %XX escapes of RFC 3986 unreserved characters
// (ALPHA DIGIT - . _ ~) and leaves every other escape, such as %2F, intact.
// A stray % (not followed by two hex digits) becomes %25, so that decoding
// can never assemble a new escape ("%%370" must not turn into "%70", which
// a second decoder would read as "p").
func decodeUnreserved(p string) string {
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] != '%' {
			b.WriteByte(p[i])
			continue
		}
		if i+2 < len(p) {
			hi, ok1 := unhex(p[i+1])
			lo, ok2 := unhex(p[i+2])
			if ok1 && ok2 {
				if c := hi<<4 | lo; isUnreserved(c) {
					b.WriteByte(c)
				} else {
					b.WriteString(p[i : i+3])
				}
				i += 2
				continue
			}
		}
		b.WriteString("%25")
	}
	return b.String()
}

func isUnreserved(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return c == '-' || c == '.' || c == '_' || c == '~'
}

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
