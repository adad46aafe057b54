package config

import (
	"time"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// File is the YAML document as written. Field tags are the config keys;
// the decoder rejects any key not declared here. The resource sections are
// tollgate.v1 messages, decoded by their JSON names; the rest is the
// bootstrap, which only the file sets.
type File struct {
	Listen            Listen                        `yaml:"listen"`
	ClientIP          ClientIP                      `yaml:"clientIp"`
	Issuers           []*tollgatev1.Issuer          `yaml:"issuers"`
	RevokedTokens     []*tollgatev1.RevokedToken    `yaml:"revokedTokens"`
	BackendJWT        BackendJWT                    `yaml:"backendJwt"`
	APIs              []*tollgatev1.Api             `yaml:"apis"`
	Applications      []*tollgatev1.Application     `yaml:"applications"`
	Subscriptions     []*tollgatev1.Subscription    `yaml:"subscriptions"`
	APIKeys           []*tollgatev1.ApiKey          `yaml:"apiKeys"`
	MTLS              *tollgatev1.MtlsSettings      `yaml:"mtls"`
	RateLimitPolicies []*tollgatev1.RateLimitPolicy `yaml:"rateLimitPolicies"`
	RateLimit         RateLimitStore                `yaml:"rateLimit"`
	Analytics         Analytics                     `yaml:"analytics"`
	Tracing           Tracing                       `yaml:"tracing"`
	Admin             Admin                         `yaml:"admin"`
	Unmatched         string                        `yaml:"unmatched"`
	HTTPFrontEnd      HTTPFrontEnd                  `yaml:"httpFrontEnd"`
	Paths             Paths                         `yaml:"paths"`
	HostMatching      HostMatching                  `yaml:"hostMatching"`
	Limits            Limits                        `yaml:"limits"`
	ControlPlane      ControlPlane                  `yaml:"controlPlane"`
	// Management is what `enforcer admin export` writes beside the
	// resources; only `enforcer admin import` reads it.
	Management *tollgatev1.Management `yaml:"management"`
}

// HTTPFrontEnd says which proxy calls the HTTP front end, and so where the
// original request is read from. It is never the client's choice.
type HTTPFrontEnd struct {
	Shape string `yaml:"shape"` // envoy (default) | nginx | forwardAuth
}

// Paths says how request paths are read.
type Paths struct {
	EscapedSlashes string `yaml:"escapedSlashes"` // reject (default) | unescape | keep
}

// HostMatching says how request hosts are compared with API hosts.
type HostMatching struct {
	StripPort bool `yaml:"stripPort"` // drop any port first (Envoy's strip_any_host_port)
}

// Limits bound what one caller can make the enforcer hold.
type Limits struct {
	MaxRequestBytes      ByteSize `yaml:"maxRequestBytes"`      // largest CheckRequest read; default 1MiB
	MaxConcurrentStreams int      `yaml:"maxConcurrentStreams"` // per gRPC connection; default 256
	MemoryLimit          string   `yaml:"memoryLimit"`          // auto (default) | off | a size such as 512MiB
	TokenCacheEntries    int      `yaml:"tokenCacheEntries"`    // verified JWTs kept; default 16384
}

// Listen holds the three listener addresses.
type Listen struct {
	GRPC  string `yaml:"grpc"`
	HTTP  string `yaml:"http"`
	Admin string `yaml:"admin"`
	// AccessLog, if set, serves Envoy's access-log service on its own
	// listener instead of the gRPC port.
	AccessLog string `yaml:"accessLog"`
}

// ClientIP says when a forwarded client address may be believed.
type ClientIP struct {
	Header         string   `yaml:"header"`         // "", x-forwarded-for or x-real-ip
	TrustedProxies []string `yaml:"trustedProxies"` // peers whose header is believed
}

type BackendJWT struct {
	Enabled        bool     `yaml:"enabled"`
	Header         string   `yaml:"header"`
	SigningKeyFile string   `yaml:"signingKeyFile"`
	TTL            Duration `yaml:"ttl"`
}

type RateLimitStore struct {
	Store              string   `yaml:"store"`
	Memory             Memory   `yaml:"memory"`
	Redis              Redis    `yaml:"redis"`
	FailureMode        string   `yaml:"failureMode"`
	LocalFallbackShare *float64 `yaml:"localFallbackShare"`
}

// Memory bounds the memory store (and the local fallback of the Redis one).
type Memory struct {
	MaxKeys int `yaml:"maxKeys"` // default 100000
}

type Redis struct {
	Addrs          []string `yaml:"addrs"`
	Timeout        Duration `yaml:"timeout"`
	SentinelMaster string   `yaml:"sentinelMaster"`
	Password       string   `yaml:"password"`
	TLS            bool     `yaml:"tls"`
}

type Analytics struct {
	Events      string `yaml:"events"`      // none | stdout | a file path
	FileMaxMB   int    `yaml:"fileMaxMB"`   // rotate the file at this size; default 100
	FileBackups int    `yaml:"fileBackups"` // rotated files kept; default 5
	// AccessLogPeers, if set, are the only addresses that may stream
	// Envoy access logs to Tollgate.
	AccessLogPeers []string `yaml:"accessLogPeers"`
}

type Tracing struct {
	OTLPEndpoint string   `yaml:"otlpEndpoint"`
	SampleRatio  *float64 `yaml:"sampleRatio"`
}

type Admin struct {
	PProf bool `yaml:"pprof"`
}

// Resources are the file's resource sections as one message.
func (f *File) Resources() *tollgatev1.Resources {
	return &tollgatev1.Resources{
		Issuers:           f.Issuers,
		RevokedTokens:     f.RevokedTokens,
		Apis:              f.APIs,
		Applications:      f.Applications,
		Subscriptions:     f.Subscriptions,
		ApiKeys:           f.APIKeys,
		Mtls:              f.MTLS,
		RateLimitPolicies: f.RateLimitPolicies,
	}
}

// Duration is a time.Duration written as "250ms", "5m" or "24h".
type Duration time.Duration

// ByteSize is a number of bytes written as 1048576, 64KiB, 1MiB or 2GiB.
type ByteSize int64
