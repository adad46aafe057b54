package config

import (
	"cmp"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/internal/catalog"
	"github.com/tollgate/tollgate/internal/model"
)

// Default listener addresses (README, "Config reference").
const (
	DefaultGRPCAddr  = "127.0.0.1:8081"
	DefaultHTTPAddr  = "127.0.0.1:8082"
	DefaultAdminAddr = "127.0.0.1:8083"
)

// compiler validates the bootstrap sections of a File, collecting every
// problem with its YAML path; the resource sections are compiled by
// model.Compile.
type compiler struct {
	model.Checker
	baseDir string // relative file paths are taken from here
}

// bootstrap compiles everything but the resources: the replica's own
// settings, and the part of them the decision reads.
func (c *compiler) bootstrap(f *File) (Bootstrap, model.Settings) {
	b := Bootstrap{
		Listen:    c.listen(f.Listen),
		RateLimit: c.rateLimitStore(f.RateLimit),
		Analytics: c.analytics(f.Analytics),
		Tracing:   c.tracing(f.Tracing),
		PProf:     f.Admin.PProf,
		Limits:    c.limits(f.Limits),
	}
	b.AccessLogPeers = c.Prefixes("analytics.accessLogPeers", f.Analytics.AccessLogPeers)
	s := model.Settings{
		ClientIP:   c.clientIP(f.ClientIP),
		StripPort:  f.HostMatching.StripPort,
		BackendJWT: c.backendJWT(f.BackendJWT),
	}
	var ok bool
	if s.HTTPShape, ok = model.ParseHTTPShape(f.HTTPFrontEnd.Shape); !ok {
		c.Addf("httpFrontEnd.shape", "want envoy, nginx or forwardAuth, got %q", f.HTTPFrontEnd.Shape)
	}
	var err error
	if s.EscapedSlashes, err = catalog.ParseEscapedSlashes(f.Paths.EscapedSlashes); err != nil {
		c.Addf("paths.escapedSlashes", "%v, got %q", err, f.Paths.EscapedSlashes)
	}
	switch f.Unmatched {
	case "", "deny":
	case "allow":
		s.UnmatchedAllow = true
	default:
		c.Addf("unmatched", "want deny or allow, got %q", f.Unmatched)
	}
	return b, s
}

// emptySecurity refuses "security: []" on an operation. A message cannot
// tell an empty list from a missing one, which inherits the API's
// schemes; in the file the writer said "no schemes", which is no
// security setting at all.
func (c *compiler) emptySecurity(f *File, lines map[string]int) {
	for i, a := range f.APIs {
		for j, o := range a.GetOperations() {
			path := fmt.Sprintf("apis[%d].operations[%d].security", i, j)
			if _, written := lines[path]; written && len(o.GetSecurity()) == 0 {
				c.Addf(path, "list at least one scheme, or leave security out to use the API's")
			}
		}
	}
}

// Defaults of the limits section.
const (
	DefaultMaxRequestBytes      = 1 << 20
	DefaultMaxConcurrentStreams = 256
	DefaultTokenCacheEntries    = 1 << 14
)

func (c *compiler) limits(in Limits) LimitSettings {
	l := LimitSettings{
		MaxRequestBytes:      int(cmp.Or(in.MaxRequestBytes, DefaultMaxRequestBytes)),
		MaxConcurrentStreams: DefaultMaxConcurrentStreams,
		MemoryLimit:          cmp.Or(in.MemoryLimit, "auto"),
	}
	l.TokenCacheEntries = cmp.Or(in.TokenCacheEntries, DefaultTokenCacheEntries)
	if l.TokenCacheEntries < 1024 || l.TokenCacheEntries > 1<<24 {
		c.Addf("limits.tokenCacheEntries", "between 1024 and 16777216")
	}
	if l.MaxRequestBytes < 16<<10 || l.MaxRequestBytes > 64<<20 {
		c.Addf("limits.maxRequestBytes", "between 16KiB and 64MiB")
	}
	if in.MaxConcurrentStreams != 0 {
		if in.MaxConcurrentStreams < 1 || in.MaxConcurrentStreams > 100000 {
			c.Addf("limits.maxConcurrentStreams", "between 1 and 100000")
		}
		l.MaxConcurrentStreams = uint32(max(in.MaxConcurrentStreams, 1))
	}
	switch l.MemoryLimit {
	case "auto", "off":
	default:
		n, err := parseByteSize(l.MemoryLimit)
		if err != nil || n < 32<<20 {
			c.Addf("limits.memoryLimit", "want auto, off or a size of at least 32MiB such as 512MiB, got %q", l.MemoryLimit)
		}
		l.MemoryLimitBytes = n
	}
	return l
}

func (c *compiler) listen(l Listen) Listen {
	out := Listen{
		GRPC:      cmp.Or(l.GRPC, DefaultGRPCAddr),
		HTTP:      cmp.Or(l.HTTP, DefaultHTTPAddr),
		Admin:     cmp.Or(l.Admin, DefaultAdminAddr),
		AccessLog: l.AccessLog,
	}
	addrs := []struct{ key, addr string }{{"listen.grpc", out.GRPC}, {"listen.http", out.HTTP}, {"listen.admin", out.Admin}}
	if out.AccessLog != "" {
		addrs = append(addrs, struct{ key, addr string }{"listen.accessLog", out.AccessLog})
	}
	for _, l := range addrs {
		_, port, err := net.SplitHostPort(l.addr)
		if err == nil {
			_, err = strconv.ParseUint(port, 10, 16)
		}
		if err != nil {
			c.Addf(l.key, "want host:port (port 0 picks a free one), got %q", l.addr)
		}
	}
	return out
}

func (c *compiler) clientIP(in ClientIP) model.ClientIPPolicy {
	p := model.ClientIPPolicy{Header: strings.ToLower(in.Header)}
	switch p.Header {
	case "", "x-forwarded-for", "x-real-ip":
	default:
		c.Addf("clientIp.header", "want x-forwarded-for or x-real-ip, got %q", in.Header)
	}
	p.TrustedProxies = c.Prefixes("clientIp.trustedProxies", in.TrustedProxies)
	if p.Header != "" && len(in.TrustedProxies) == 0 {
		c.Addf("clientIp.trustedProxies", "required when clientIp.header is set: list the proxies whose %s is believed", p.Header)
	}
	return p
}
