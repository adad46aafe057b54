package policy

import (
	"strconv"
	"strings"
	"time"
)

// CORS is an API's cross-origin settings, compiled.
type CORS struct {
	// Origins are exact origins, lower case ("https://app.example.com").
	Origins []string
	// Patterns are "https://*.example.com" and the like.
	Patterns []OriginPattern
	// AnyOrigin is "*": never with Credentials (the compiler refuses it,
	// as browsers do).
	AnyOrigin   bool
	Methods     []string
	Headers     []string // lower case; "*" allows any (never with Credentials)
	Credentials bool
	MaxAge      time.Duration
	Expose      []string

	// rendered once, for the answers
	methodsText, headersText, exposeText, maxAgeText string
}

// OriginPattern matches origins with one or more labels before Suffix.
type OriginPattern struct {
	Scheme string // "https://"
	Suffix string // ".example.com" or ".example.com:8443"
}

// Finish renders the header values the answers repeat. Compilers call it
// once the fields are set.
func (c *CORS) Finish() {
	c.methodsText = strings.Join(c.Methods, ", ")
	c.headersText = strings.Join(c.Headers, ", ")
	c.exposeText = strings.Join(c.Expose, ", ")
	if c.MaxAge > 0 {
		c.maxAgeText = strconv.FormatInt(int64(c.MaxAge/time.Second), 10)
	}
}

// AllowOrigin is the Access-Control-Allow-Origin value for origin (as
// the browser sent it), and false when it may not call. The value is "*"
// (any origin; never with credentials), a configured origin, or one that
// matched a pattern, whose "*" part was checked to be DNS labels: never
// the request's bytes unchecked.
func (c *CORS) AllowOrigin(origin string) (string, bool) {
	if origin == "" || origin == "null" {
		return "", false
	}
	if c.AnyOrigin {
		return "*", true
	}
	o := strings.ToLower(origin)
	for _, want := range c.Origins {
		if o == want {
			return want, true
		}
	}
	for _, p := range c.Patterns {
		rest, ok := strings.CutPrefix(o, p.Scheme)
		if !ok {
			continue
		}
		label, ok := strings.CutSuffix(rest, p.Suffix)
		if ok && validLabels(label) {
			return o, true
		}
	}
	return "", false
}

// validLabels reports whether s is one or more DNS labels: what a pattern's
// "*" stands for (never a port, a path or userinfo).
func validLabels(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !('a' <= ch && ch <= 'z' || '0' <= ch && ch <= '9' || ch == '-' || ch == '.') || ch == '.' && s[i-1] == '.' {
			return false
		}
	}
	return true
}

// AllowsMethod reports whether a preflight may ask for method.
func (c *CORS) AllowsMethod(method string) bool {
	for _, m := range c.Methods {
		if m == method {
			return true
		}
	}
	return false
}

// AllowsHeaders reports whether every header of a preflight's
// Access-Control-Request-Headers (a comma-separated list) is allowed.
func (c *CORS) AllowsHeaders(list string) bool {
	for name := range strings.SplitSeq(list, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "" {
			continue
		}
		ok := false
		for _, h := range c.Headers {
			if h == name || h == "*" {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// PreflightHeaders are the headers of the answer to an allowed
// preflight; allowOrigin is AllowOrigin's value. "*" in the allowed
// headers is the Fetch standard's wildcard, which holds because "*"
// never goes with credentials.
func (c *CORS) PreflightHeaders(allowOrigin string, add func(name, value string)) {
	add("access-control-allow-origin", allowOrigin)
	add("access-control-allow-methods", c.methodsText)
	if c.headersText != "" {
		add("access-control-allow-headers", c.headersText)
	}
	if c.Credentials {
		add("access-control-allow-credentials", "true")
	}
	if c.maxAgeText != "" {
		add("access-control-max-age", c.maxAgeText)
	}
	add("vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
}

// ResponseHeaders are the headers a real response to an allowed origin
// carries.
func (c *CORS) ResponseHeaders(allowOrigin string, add func(name, value string)) {
	add("access-control-allow-origin", allowOrigin)
	if c.Credentials {
		add("access-control-allow-credentials", "true")
	}
	if c.exposeText != "" {
		add("access-control-expose-headers", c.exposeText)
	}
	add("vary", "Origin")
}

// IsPreflight reports whether a request is a CORS preflight: OPTIONS with
// Origin and Access-Control-Request-Method.
func IsPreflight(method string, h HeaderReader) (origin, requestMethod string, ok bool) {
	if method != "OPTIONS" {
		return "", "", false
	}
	origin, hasOrigin := h.Get("origin")
	requestMethod, hasMethod := h.Get("access-control-request-method")
	return origin, requestMethod, hasOrigin && hasMethod && requestMethod != ""
}

// OriginPatternOf parses an allowOrigins entry with a "*." host, such as
// "https://*.example.com" or "https://*.example.com:8443".
func OriginPatternOf(s string) (OriginPattern, bool) {
	scheme, rest, ok := strings.Cut(strings.ToLower(s), "://")
	if !ok || scheme == "" {
		return OriginPattern{}, false
	}
	suffix, ok := strings.CutPrefix(rest, "*")
	if !ok || !strings.HasPrefix(suffix, ".") || strings.ContainsAny(suffix, "*/?#@") {
		return OriginPattern{}, false
	}
	return OriginPattern{Scheme: scheme + "://", Suffix: suffix}, true
}
