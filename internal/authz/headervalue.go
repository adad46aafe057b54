package authz

import "unicode/utf8"

// maxHeaderValueBytes bounds a value taken from a token or certificate
// into an upstream header.
const maxHeaderValueBytes = 4 << 10

// safeHeaderValue reports whether s may be sent upstream as a header value
// as it is: valid UTF-8 (protobuf strings must be, or the whole
// CheckResponse fails to encode), no control character — CR and LF would
// start a new header, NUL makes proxies fail — and at most 4 KiB.
func safeHeaderValue(s string) bool {
	if len(s) > maxHeaderValueBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return utf8.ValidString(s)
}
