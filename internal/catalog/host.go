package catalog

import "strings"

// host is a request's host as matched: the name in lower case and the port,
// kept apart. A trailing dot is part of the name: Envoy keeps it when it
// chooses a virtual host (unless strip_trailing_host_dot), so
// "api.example.com." is not "api.example.com" here either.
type host struct {
	name    string
	port    string
	hasPort bool // "api.example.com:" has a port, an empty one
}

// parseHost reads a Host header or :authority value. ok is false when it is
// not a host name, IPv4 or [IPv6] address with an optional port: such a
// request cannot be routed the way Tollgate would read it.
func parseHost(h string, stripPort bool) (hp host, ok bool) {
	name := h
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return host{}, false
		}
		name = h[:end+1]
		for i := 1; i < end; i++ {
			if c := h[i]; !(c == ':' || c == '.' || isHexDigit(c)) {
				return host{}, false
			}
		}
		rest := h[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return host{}, false
			}
			hp.port, hp.hasPort = rest[1:], true
		}
	} else if i := strings.IndexByte(h, ':'); i >= 0 {
		name, hp.port, hp.hasPort = h[:i], h[i+1:], true
		for j := 0; j < len(name); j++ {
			if !isHostChar(name[j]) {
				return host{}, false
			}
		}
	} else {
		for j := 0; j < len(name); j++ {
			if !isHostChar(name[j]) {
				return host{}, false
			}
		}
	}
	if len(hp.port) > 5 {
		return host{}, false
	}
	for j := 0; j < len(hp.port); j++ {
		if c := hp.port[j]; c < '0' || c > '9' {
			return host{}, false
		}
	}
	if stripPort {
		hp.port, hp.hasPort = "", false
	}
	hp.name = lowerASCII(name)
	return hp, true
}

func isHostChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_'
}

func isHexDigit(c byte) bool {
	_, ok := unhex(c)
	return ok
}

// lowerASCII lower-cases s, allocating only when it has upper-case letters.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// HostPattern is one of an API's hosts: "*", an exact name, or "*.domain",
// each with an optional port. A pattern without a port matches only hosts
// without one (Envoy's virtual hosts do the same unless told to strip
// ports), so a spelling with a port cannot select an API that Envoy would
// not route to; "*" matches every host.
type HostPattern struct {
	any      bool
	wildcard bool   // "*.domain": name holds ".domain"
	name     string // lower case
	port     string
	hasPort  bool
}

// ParseHostPattern reads an API host as configured: "*", "name", "*.domain",
// optionally followed by ":port". ok is false for anything else.
func ParseHostPattern(s string) (p HostPattern, ok bool) {
	if s == "*" {
		return HostPattern{any: true}, true
	}
	h, ok := parseHost(strings.TrimPrefix(s, "*"), false)
	if !ok || h.name == "" || h.hasPort && h.port == "" {
		return HostPattern{}, false
	}
	p = HostPattern{name: h.name, port: h.port, hasPort: h.hasPort}
	if strings.HasPrefix(s, "*") {
		if !strings.HasPrefix(h.name, ".") || len(h.name) < 2 {
			return HostPattern{}, false
		}
		p.wildcard = true
	}
	return p, true
}

// HasPort reports whether the pattern names a port.
func (p HostPattern) HasPort() bool { return p.hasPort }

// score ranks how specifically p matches h: 0 is no match, then "*",
// then wildcards (longer suffixes first), then exact names.
func (p HostPattern) score(h host) int {
	if p.any {
		return 1
	}
	if p.hasPort != h.hasPort || p.port != h.port {
		return 0
	}
	switch {
	case p.wildcard:
		if len(h.name) > len(p.name) && strings.HasSuffix(h.name, p.name) {
			return 2 + len(p.name)
		}
	case p.name == h.name:
		return 1 << 20
	}
	return 0
}
