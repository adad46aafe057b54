package config

import (
	"time"
)

// File is the YAML document as written. Field tags are the config keys;
// the decoder rejects any key not declared here.
type File struct {
	Listen            Listen            `yaml:"listen"`
	ClientIP          ClientIP          `yaml:"clientIp"`
	Issuers           []Issuer          `yaml:"issuers"`
	RevokedTokens     []RevokedToken    `yaml:"revokedTokens"`
	BackendJWT        BackendJWT        `yaml:"backendJwt"`
	APIs              []API             `yaml:"apis"`
	Applications      []Application     `yaml:"applications"`
	Subscriptions     []Subscription    `yaml:"subscriptions"`
	APIKeys           []APIKey          `yaml:"apiKeys"`
	MTLS              MTLS              `yaml:"mtls"`
	RateLimitPolicies []RateLimitPolicy `yaml:"rateLimitPolicies"`
	RateLimit         RateLimitStore    `yaml:"rateLimit"`
	Analytics         Analytics         `yaml:"analytics"`
	Tracing           Tracing           `yaml:"tracing"`
	Admin             Admin             `yaml:"admin"`
	Unmatched         string            `yaml:"unmatched"`
	HTTPFrontEnd      HTTPFrontEnd      `yaml:"httpFrontEnd"`
	Paths             Paths             `yaml:"paths"`
	HostMatching      HostMatching      `yaml:"hostMatching"`
	Limits            Limits            `yaml:"limits"`
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

type Issuer struct {
	Name                   string            `yaml:"name"`
	Issuer                 string            `yaml:"issuer"`
	JWKSURI                string            `yaml:"jwksUri"`
	JWKSFile               string            `yaml:"jwksFile"`
	JWKSCAFile             string            `yaml:"jwksCaFile"`
	JWKSRefreshInterval    Duration          `yaml:"jwksRefreshInterval"`
	JWKSMinRefreshInterval Duration          `yaml:"jwksMinRefreshInterval"`
	Audiences              []string          `yaml:"audiences"`
	Leeway                 Duration          `yaml:"leeway"`
	ScopesClaim            string            `yaml:"scopesClaim"`
	ClientIDClaim          string            `yaml:"clientIdClaim"`
	SubscriptionRequired   *bool             `yaml:"subscriptionRequired"`
	ClaimHeaders           map[string]string `yaml:"claimHeaders"`
}

type RevokedToken struct {
	JTI       string    `yaml:"jti"`
	ExpiresAt time.Time `yaml:"expiresAt"`
}

type BackendJWT struct {
	Enabled        bool     `yaml:"enabled"`
	Header         string   `yaml:"header"`
	SigningKeyFile string   `yaml:"signingKeyFile"`
	TTL            Duration `yaml:"ttl"`
}

type API struct {
	ID                 string      `yaml:"id"`
	Name               string      `yaml:"name"`
	Version            string      `yaml:"version"`
	BasePath           string      `yaml:"basePath"`
	Hosts              []string    `yaml:"hosts"`
	Security           []string    `yaml:"security"`
	ForwardCredentials bool        `yaml:"forwardCredentials"`
	APIKey             *APIKeyIn   `yaml:"apiKey"`
	RateLimit          string      `yaml:"rateLimit"`
	AnonymousRateLimit string      `yaml:"anonymousRateLimit"`
	Operations         []Operation `yaml:"operations"`
	Audiences          []string    `yaml:"audiences"`      // if set, a token's aud must name one of them
	MethodOverride     string      `yaml:"methodOverride"` // remove (default) | deny
}

// APIKeyIn says where an API's callers send their key.
type APIKeyIn struct {
	Header string `yaml:"header"`
	Query  string `yaml:"query"`
}

type Operation struct {
	Path      string   `yaml:"path"`
	Methods   []string `yaml:"methods"`
	Scopes    []string `yaml:"scopes"`
	Security  []string `yaml:"security"`
	RateLimit string   `yaml:"rateLimit"`
}

type Application struct {
	ID           string   `yaml:"id"`
	Name         string   `yaml:"name"`
	Owner        string   `yaml:"owner"`
	ClientIDs    []string `yaml:"clientIds"`
	Principals   []string `yaml:"principals"`
	Certificates []string `yaml:"certificates"`
	RateLimit    string   `yaml:"rateLimit"`
}

type Subscription struct {
	Application string `yaml:"application"`
	API         string `yaml:"api"`
	RateLimit   string `yaml:"rateLimit"`
	State       string `yaml:"state"`
}

type APIKey struct {
	Application  string    `yaml:"application"`
	SHA256       string    `yaml:"sha256"`
	Name         string    `yaml:"name"`
	ExpiresAt    time.Time `yaml:"expiresAt"`
	AllowedCIDRs []string  `yaml:"allowedCidrs"`
	Scopes       []string  `yaml:"scopes"`
}

type MTLS struct {
	TrustForwardedClientCert bool   `yaml:"trustForwardedClientCert"`
	CAFile                   string `yaml:"caFile"`
	ForwardedBy              string `yaml:"forwardedBy"`
}

type RateLimitPolicy struct {
	Name   string  `yaml:"name"`
	Limits []Limit `yaml:"limits"`
}

type Limit struct {
	Requests int64    `yaml:"requests"`
	Per      Duration `yaml:"per"`
	Burst    *int64   `yaml:"burst"` // default: requests-1, the whole period at once
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

// Duration is a time.Duration written as "250ms", "5m" or "24h".
type Duration time.Duration

// ByteSize is a number of bytes written as 1048576, 64KiB, 1MiB or 2GiB.
type ByteSize int64
