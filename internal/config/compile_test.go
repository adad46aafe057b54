package config

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/catalog"
)

// Plain API keys of the valid config; the config holds only their hashes.
const (
	mobileKey  = "tgk_test_mobile_key"
	partnerKey = "tgk_test_partner_key"
)

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// validConfig is modelled on examples/quickstart.yaml, with a second API
// that sets what the first leaves to defaults.
func validConfig() []byte {
	return fmt.Appendf(nil, `
apis:
  - id: petstore-v1
    name: PetStore
    version: v1
    basePath: /petstore/v1/
    security: [apiKey]
    operations:
      - {path: /pets, methods: [get]}
      - {path: /pets, methods: [POST], scopes: ["pets:write"]}
      - {path: "/pets/{id}", methods: [GET]}
      - {path: "/pets/{id}/", methods: [DELETE], scopes: ["pets:write"]}
      - {path: /health, methods: [GET], security: [none]}
  - id: files
    hosts: [Files.Example.COM., "*.cdn.example.com"]
    security: [apiKey, none]
    forwardCredentials: true
    apiKey: {header: X-Api-Key, query: key}
    operations:
      - {path: "/files/{path...}"}

applications:
  - {id: mobile, name: Mobile app, owner: alice}
  - {id: partner, name: Partner portal, owner: bob}
  - {id: batch}

subscriptions:
  - {application: mobile, api: petstore-v1, state: active}
  - {application: partner, api: petstore-v1, state: blocked}
  - {application: partner, api: files, state: onHold}
  - {application: mobile, api: files, state: active}

apiKeys:
  - application: mobile
    name: ci
    id: k3y1d0000042
    sha256: %s
    scopes: ["pets:write", "pets:read"]
    expiresAt: 2027-01-01T00:00:00Z
    allowedCidrs: [10.0.0.0/8, 192.168.1.7]
  - application: partner
    sha256: %s   # upper case hex is accepted

unmatched: allow
`, sha256Hex(mobileKey), strings.ToUpper(sha256Hex(partnerKey)))
}

func TestCompileValid(t *testing.T) {
	data := validConfig()
	snap := mustCompile(t, data, noEnv)

	if snap.Digest != sha256.Sum256(data) {
		t.Errorf("Digest = %x, want the sha256 of the file", snap.Digest)
	}
	if snap.LoadedAt.IsZero() {
		t.Error("LoadedAt is zero")
	}
	wantListen := Listen{GRPC: "127.0.0.1:8081", HTTP: "127.0.0.1:8082", Admin: "127.0.0.1:8083"}
	if snap.Listen != wantListen {
		t.Errorf("Listen = %+v, want defaults %+v", snap.Listen, wantListen)
	}
	if !snap.UnmatchedAllow {
		t.Error("UnmatchedAllow = false, want true for unmatched: allow")
	}
	if snap.ClientIP.Header != "" || len(snap.ClientIP.TrustedProxies) != 0 {
		t.Errorf("ClientIP = %+v, want the zero policy", snap.ClientIP)
	}

	apis := snap.Catalog.APIs()
	if len(apis) != 2 {
		t.Fatalf("got %d APIs, want 2", len(apis))
	}
	pet, files := snap.Catalog.API("petstore-v1"), snap.Catalog.API("files")
	if pet == nil || files == nil || apis[0] != pet || apis[1] != files {
		t.Fatalf("APIs = %v, want petstore-v1 then files", apis)
	}

	t.Run("APIs", func(t *testing.T) {
		tests := []struct {
			api                                *catalog.API
			name, version, basePath            string
			hosts                              []string
			keyHeader, keyQuery                string
			forward                            bool
			credentialHeaders, credentialQuery []string
		}{
			{
				api: pet, name: "PetStore", version: "v1", basePath: "/petstore/v1",
				hosts: []string{"*"}, keyHeader: "apikey",
				credentialHeaders: []string{"apikey"},
			},
			{
				api: files, name: "files", basePath: "/",
				hosts:     []string{"files.example.com.", "*.cdn.example.com"},
				keyHeader: "x-api-key", keyQuery: "key", forward: true,
				credentialHeaders: []string{"x-api-key"}, credentialQuery: []string{"key"},
			},
		}
		for _, tt := range tests {
			a := tt.api
			if a.Name != tt.name || a.Version != tt.version || a.BasePath != tt.basePath {
				t.Errorf("%s: name, version, basePath = %q, %q, %q; want %q, %q, %q",
					a.ID, a.Name, a.Version, a.BasePath, tt.name, tt.version, tt.basePath)
			}
			if !slices.Equal(a.Hosts, tt.hosts) {
				t.Errorf("%s: Hosts = %q, want %q", a.ID, a.Hosts, tt.hosts)
			}
			if a.APIKeyHeader != tt.keyHeader || a.APIKeyQuery != tt.keyQuery {
				t.Errorf("%s: API key header, query = %q, %q; want %q, %q",
					a.ID, a.APIKeyHeader, a.APIKeyQuery, tt.keyHeader, tt.keyQuery)
			}
			if a.ForwardCredentials != tt.forward {
				t.Errorf("%s: ForwardCredentials = %v, want %v", a.ID, a.ForwardCredentials, tt.forward)
			}
			if !slices.Equal(a.CredentialHeaders, tt.credentialHeaders) || !slices.Equal(a.CredentialQuery, tt.credentialQuery) {
				t.Errorf("%s: credentials = %q, %q; want %q, %q",
					a.ID, a.CredentialHeaders, a.CredentialQuery, tt.credentialHeaders, tt.credentialQuery)
			}
		}
	})

	t.Run("operations", func(t *testing.T) {
		type op struct {
			path, template string
			methods        []string
			scopes         []string
			security       string // requirement names joined by ","
		}
		tests := []struct {
			api  *catalog.API
			want []op
		}{
			{pet, []op{
				{"/pets", "/petstore/v1/pets", []string{"GET"}, nil, "apiKey"},
				{"/pets", "/petstore/v1/pets", []string{"POST"}, []string{"pets:write"}, "apiKey"},
				{"/pets/{id}", "/petstore/v1/pets/{id}", []string{"GET"}, nil, "apiKey"},
				{"/pets/{id}", "/petstore/v1/pets/{id}", []string{"DELETE"}, []string{"pets:write"}, "apiKey"},
				{"/health", "/petstore/v1/health", []string{"GET"}, nil, "none"},
			}},
			{files, []op{
				{"/files/{path...}", "/files/{path...}", nil, nil, "apiKey,none"},
			}},
		}
		for _, tt := range tests {
			if len(tt.api.Operations) != len(tt.want) {
				t.Errorf("%s: %d operations, want %d", tt.api.ID, len(tt.api.Operations), len(tt.want))
				continue
			}
			for i, want := range tt.want {
				got := tt.api.Operations[i]
				var sec []string
				for _, req := range got.Security {
					sec = append(sec, req.Name)
				}
				if got.API != tt.api || got.Path != want.path || got.Template.String() != want.template ||
					!slices.Equal(got.Methods, want.methods) || !slices.Equal(got.Scopes, want.scopes) ||
					strings.Join(sec, ",") != want.security {
					t.Errorf("%s.operations[%d] = {path %q, template %q, methods %q, scopes %q, security %q}, want %+v",
						tt.api.ID, i, got.Path, got.Template, got.Methods, got.Scopes, sec, want)
				}
			}
		}
	})

	t.Run("matching", func(t *testing.T) {
		tests := []struct {
			host, method, path string
			wantTemplate       string // "" for no match
			wantMethods        []string
		}{
			{"gw.example.com", "DELETE", "/petstore/v1/pets/42", "/petstore/v1/pets/{id}", []string{"DELETE"}},
			{"gw.example.com", "GET", "/petstore/v1/pets", "/petstore/v1/pets", []string{"GET"}},
			{"FILES.example.com.", "PUT", "/files/a/b/c", "/files/{path...}", nil},
			// a host is matched as Envoy picks virtual hosts: port and trailing dot included
			{"files.example.com", "PUT", "/files/a/b/c", "", nil},
			{"files.example.com.:8443", "PUT", "/files/a/b/c", "", nil},
			{"img.cdn.example.com", "GET", "/files/x", "/files/{path...}", nil},
			{"gw.example.com", "GET", "/files/x", "", nil},
		}
		for _, tt := range tests {
			op, _ := snap.Catalog.Match(tt.host, tt.method, tt.path)
			switch {
			case tt.wantTemplate == "" && op != nil:
				t.Errorf("Match(%q, %s, %q) = %s, want no match", tt.host, tt.method, tt.path, op.Template)
			case tt.wantTemplate != "" && op == nil:
				t.Errorf("Match(%q, %s, %q) = nil, want %s", tt.host, tt.method, tt.path, tt.wantTemplate)
			case op != nil && (op.Template.String() != tt.wantTemplate || !slices.Equal(op.Methods, tt.wantMethods)):
				t.Errorf("Match(%q, %s, %q) = %s %q, want %s %q",
					tt.host, tt.method, tt.path, op.Template, op.Methods, tt.wantTemplate, tt.wantMethods)
			}
		}
	})

	t.Run("applications", func(t *testing.T) {
		tests := []struct{ id, name, owner string }{
			{"mobile", "Mobile app", "alice"},
			{"partner", "Partner portal", "bob"},
			{"batch", "batch", ""}, // name defaults to the id
		}
		if len(snap.Applications) != len(tests) {
			t.Errorf("got %d applications, want %d", len(snap.Applications), len(tests))
		}
		for _, tt := range tests {
			app := snap.Applications[tt.id]
			if app == nil {
				t.Errorf("application %q missing", tt.id)
				continue
			}
			if app.ID != tt.id || app.Name != tt.name || app.Owner != tt.owner {
				t.Errorf("application %q = {%q, %q, %q}, want {%q, %q, %q}",
					tt.id, app.ID, app.Name, app.Owner, tt.id, tt.name, tt.owner)
			}
		}
	})

	t.Run("subscriptions", func(t *testing.T) {
		tests := []struct {
			app       string
			api       *catalog.API
			want      catalog.SubscriptionState
			wantNoSub bool
		}{
			{app: "mobile", api: pet, want: catalog.StateActive},
			{app: "partner", api: pet, want: catalog.StateBlocked},
			{app: "partner", api: files, want: catalog.StateOnHold},
			{app: "mobile", api: files, want: catalog.StateActive}, // state defaults to active
			{app: "batch", api: pet, wantNoSub: true},
		}
		for _, tt := range tests {
			app := snap.Applications[tt.app]
			if app == nil {
				t.Fatalf("application %q missing", tt.app)
			}
			sub := snap.Subscription(app, tt.api)
			switch {
			case tt.wantNoSub && sub != nil:
				t.Errorf("%s → %s: got a subscription (%v), want none", tt.app, tt.api.ID, sub.State)
			case tt.wantNoSub:
			case sub == nil:
				t.Errorf("%s → %s: no subscription, want %v", tt.app, tt.api.ID, tt.want)
			case sub.State != tt.want || sub.AppID != app.ID || sub.APIID != tt.api.ID:
				t.Errorf("%s → %s: state %v (app %q, api %q), want %v",
					tt.app, tt.api.ID, sub.State, sub.AppID, sub.APIID, tt.want)
			}
		}
	})

	t.Run("API keys", func(t *testing.T) {
		if n := snap.APIKeys.Len(); n != 2 {
			t.Errorf("APIKeys.Len() = %d, want 2", n)
		}
		k, ok := snap.APIKeys.Lookup(mobileKey)
		if !ok {
			t.Fatalf("Lookup(%q) = nil, want the key whose sha256 is %s", mobileKey, sha256Hex(mobileKey))
		}
		if k.AppID != "mobile" || k.Name != "ci" || k.ID.String() != "k3y1d0000042" {
			t.Errorf("mobile key: application %q, name %q, id %q; want mobile, ci, k3y1d0000042", k.AppID, k.Name, k.ID)
		}
		if want := []string{"pets:write", "pets:read"}; !slices.Equal(k.Scopes(), want) || k.ScopeText() != "pets:write pets:read" {
			t.Errorf("mobile key scopes = %q (%q), want %q", k.Scopes(), k.ScopeText(), want)
		}
		if want := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC); !k.ExpiresAt.Equal(want) {
			t.Errorf("mobile key ExpiresAt = %v, want %v", k.ExpiresAt, want)
		}
		wantCIDRs := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32")}
		if !slices.Equal(k.Limits.AllowedCIDRs, wantCIDRs) {
			t.Errorf("mobile key AllowedCIDRs = %v, want %v", k.Limits.AllowedCIDRs, wantCIDRs)
		}

		p, ok := snap.APIKeys.Lookup(partnerKey)
		if !ok {
			t.Fatalf("Lookup(%q) = nil; an upper-case sha256 in the config should match", partnerKey)
		}
		if wantName := "key-" + sha256Hex(partnerKey)[:8]; p.AppID != "partner" || p.Name != wantName || !p.ExpiresAt.IsZero() || p.Limits != nil {
			t.Errorf("partner key = %+v, want application partner, default name %s, no expiry, no CIDRs", p, wantName)
		}

		for _, bad := range []string{"", "tgk_unknown", sha256Hex(mobileKey)} {
			if k, ok := snap.APIKeys.Lookup(bad); ok {
				t.Errorf("Lookup(%q) = %q, want nil", bad, k.Name)
			}
		}
	})
}

// TestCompileDefaults checks what a config gets when it leaves things out.
func TestCompileDefaults(t *testing.T) {
	defaultListen := Listen{GRPC: DefaultGRPCAddr, HTTP: DefaultHTTPAddr, Admin: DefaultAdminAddr}
	tests := []struct {
		name      string
		yaml      string
		listen    Listen
		unmatched bool
	}{
		{name: "unmatched deny", yaml: "unmatched: deny\n", listen: defaultListen},
		{name: "unmatched allow", yaml: "unmatched: allow\n", listen: defaultListen, unmatched: true},
		{name: "empty listen", yaml: "listen:\n", listen: defaultListen},
		{
			name:   "partial listen",
			yaml:   "listen: {http: \"0.0.0.0:9000\"}\n",
			listen: Listen{GRPC: DefaultGRPCAddr, HTTP: "0.0.0.0:9000", Admin: DefaultAdminAddr},
		},
		{
			name:   "port 0 and IPv6",
			yaml:   "listen: {grpc: \"[::1]:0\", http: \":0\", admin: \"localhost:0\"}\n",
			listen: Listen{GRPC: "[::1]:0", HTTP: ":0", Admin: "localhost:0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := mustCompile(t, []byte(tt.yaml), noEnv)
			if snap.Listen != tt.listen {
				t.Errorf("Listen = %+v, want %+v", snap.Listen, tt.listen)
			}
			if snap.UnmatchedAllow != tt.unmatched {
				t.Errorf("UnmatchedAllow = %v, want %v", snap.UnmatchedAllow, tt.unmatched)
			}
			if n := len(snap.Catalog.APIs()); n != 0 {
				t.Errorf("got %d APIs, want none", n)
			}
			if snap.APIKeys.Len() != 0 || len(snap.Applications) != 0 {
				t.Errorf("got %d keys and %d applications, want none", snap.APIKeys.Len(), len(snap.Applications))
			}
		})
	}
}

// TestCompileQuickstart compiles the shipped example and checks the demo keys
// its comments publish.
func TestCompileQuickstart(t *testing.T) {
	// Load, not Compile: the quickstart's jwksFile is relative to its directory.
	snap, err := Load(filepath.Join("..", "..", "examples", "quickstart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	iss := snap.Issuers["https://idp.quickstart.test"]
	if iss == nil || iss.JWKS.File != filepath.Join("..", "..", "examples", "keys", "test-issuer.jwks.json") ||
		snap.ClientIDs["mobile-client"] == nil || len(iss.ClaimHeaders) != 1 {
		t.Fatalf("quickstart issuer = %+v", iss)
	}
	api := snap.Catalog.API("petstore-v1")
	if api == nil || len(api.Operations) != 5 {
		t.Fatalf("petstore-v1 = %+v, want an API with 5 operations", api)
	}
	tests := []struct {
		key, app string
		state    catalog.SubscriptionState
	}{
		{"tgk_quickstart_mobile_demo_key", "mobile", catalog.StateActive},
		{"tgk_quickstart_partner_demo_key", "partner", catalog.StateBlocked},
	}
	for _, tt := range tests {
		k, ok := snap.APIKeys.Lookup(tt.key)
		if !ok || snap.Applications[k.AppID] == nil || k.AppID != tt.app {
			t.Errorf("Lookup(%q) = %+v, want a key of %s", tt.key, k, tt.app)
			continue
		}
		if sub := snap.Subscription(snap.Applications[k.AppID], api); sub == nil || sub.State != tt.state {
			t.Errorf("%s subscription = %+v, want state %v", tt.app, sub, tt.state)
		}
	}
	if snap.UnmatchedAllow {
		t.Error("UnmatchedAllow = true, want false (unmatched: deny)")
	}
}

// anyLine stands for any positive line: the parser's own error messages
// sometimes name the line before the mistake (go.yaml.in/yaml/v3 reports a
// parser error at the 0-based line of its context), so only the presence of
// a line is checked.
const anyLine = -1

// TestCompileInvalid compiles each file in testdata/invalid, which holds one
// mistake, and looks for the problem that names it.
func TestCompileInvalid(t *testing.T) {
	tests := []struct {
		file string
		path string // "" for problems of the whole file
		msg  string
		line int // of the value at path; 0 where it is not in the file
	}{
		// decoding: unknown, repeated and mistyped keys
		{"unknown-top-level-key", "frobnicate", `unknown key "frobnicate"`, 6},
		{"unknown-nested-key", "apis[0].operations[0].verb", `unknown key "verb"`, 6},
		{"repeated-key", "apis[0].id", `key "id" appears twice`, 4},
		{"not-a-mapping", "listen", "expected a mapping", 1},
		{"wrong-type-list-for-string", "apis[0].name", "expected a string, got a list", 3},
		{"wrong-type-bool", "apis[0].forwardCredentials", `expected true or false, got "perhaps"`, 4},
		{"bad-timestamp", "apiKeys[0].expiresAt", "expected an RFC 3339 timestamp", 6},
		{"unset-required-variable", "apis[0].basePath", "${PETSTORE_BASE}: set PETSTORE_BASE to the public base path", 3},
		{"syntax-error", "", "YAML syntax", anyLine},
		{"two-documents", "", "exactly one YAML document", 6},

		// identities and references
		{"bad-id", "apis[0].id", "ids are up to 128 letters", 2},
		{"name-control-character", "apis[0].name", "must be printable UTF-8 text", 3},
		{"name-too-long", "applications[0].name", "longer than 256 bytes", 4},
		{"duplicate-api-id", "apis[1].id", `duplicate API id "petstore"`, 7},
		{"duplicate-application-id", "applications[1].id", `duplicate application id "mobile"`, 3},
		{"subscription-unknown-api", "subscriptions[0].api", `unknown API "bookstore"`, 9},
		{"subscription-unknown-application", "subscriptions[0].application", `unknown application "desktop"`, 9},
		{"duplicate-subscription", "subscriptions[1]", `application "mobile" is already subscribed to API "petstore"`, 10},
		{"bad-subscription-state", "subscriptions[0].state", `unknown state "paused"`, 9},
		{"missing-subscription-state", "subscriptions[0].state", "required: active, blocked or onHold", 9},

		// path templates
		{"path-no-leading-slash", "apis[0].operations[1].path", "must start with /", 6},
		{"path-unbalanced-brace", "apis[0].operations[1].path", "unbalanced {", 6},
		{"path-bad-param-name", "apis[0].operations[1].path", "parameter names are letters", 6},
		{"path-rest-not-last", "apis[0].operations[1].path", "rest segment ({name...} or **) must be last", 6},
		{"path-repeated-param", "apis[0].operations[1].path", "parameter {id} appears twice", 6},
		{"path-repeated-param-with-base", "apis[0].operations[0].path", "parameter {id} appears twice", 6},
		{"path-empty-segment", "apis[0].operations[1].path", "empty segment (//)", 6},
		{"path-query", "apis[0].operations[1].path", "must not contain a query", 6},
		{"path-mixed-segment", "apis[0].operations[1].path", "is not allowed in a literal segment", 6},
		{"bad-base-path", "apis[0].basePath", "must start with /", 3},

		// operations and security
		{"unknown-method", "apis[0].operations[0].methods[1]", `unknown HTTP method "FETCH"`, 5},
		{"method-listed-twice", "apis[0].operations[0].methods[1]", "method GET listed twice", 5},
		{"overlapping-operations", "apis[0].operations[1].path", "matches the same requests as apis[0].operations[0]", 6},
		{"overlapping-operations-across-apis", "apis[1].operations[0].path", "matches the same requests as apis[0].operations[0]", 11},
		{"bad-security-scheme", "apis[0].security", `unknown scheme "oauth2"`, 3},
		{"none-plus-apikey", "apis[0].security", "none cannot be combined with other schemes", 3},
		{"missing-security", "apis[0].security", "required", 2},
		{"empty-operation-security", "apis[0].operations[0].security", "at least one scheme", 5},
		{"no-operations", "apis[0].operations", "at least one operation", 4},
		{"apikey-no-source", "apis[0].apiKey", "needs a header or a query parameter", 4},
		{"bad-apikey-header", "apis[0].apiKey.header", `not a valid header name: "api key"`, 4},
		{"bad-scope", "apis[0].operations[0].scopes[0]", "a scope is printable ASCII without spaces", 5},
		{"bad-scope-in-set", "apis[0].operations[0].scopes[0]", `in "pets:read pets\\write": a scope is printable ASCII`, 5},
		{"scope-double-space", "apis[0].operations[0].scopes[0]", "has two spaces in a row", 5},
		{"scope-trailing-space", "apis[0].operations[0].scopes[1]", "starts or ends with a space", 5},
		{"bad-host", "apis[0].hosts[1]", `want a host name, *.domain or *, optionally with :port, got "api.example.com:84x3"`, 3},
		{"host-port-with-strip-port", "apis[0].hosts[0]", "stripPort drops request ports", 5},
		{"bad-escaped-slashes", "paths.escapedSlashes", "want reject, unescape or keep", 1},
		{"bad-http-shape", "httpFrontEnd.shape", "want envoy, nginx or forwardAuth", 1},
		{"bad-method-override", "apis[0].methodOverride", "want remove or deny", 4},
		{"bad-max-request-bytes", "limits.maxRequestBytes", "between 16KiB and 64MiB", 1},
		{"bad-byte-size", "limits.maxRequestBytes", "expected a size such as", 1},
		{"bad-memory-limit", "limits.memoryLimit", "want auto, off or a size", 1},
		{"bad-token-cache-entries", "limits.tokenCacheEntries", "between 1024 and 16777216", 1},
		{"bad-access-log-peer", "analytics.accessLogPeers[0]", "not an address or CIDR", 1},

		// API keys
		{"sha256-wrong-length", "apiKeys[0].sha256", "want 64 hex characters", 5},
		{"sha256-not-hex", "apiKeys[0].sha256", "not hex", 5},
		{"duplicate-key-hash", "apiKeys[1].sha256", "the same key is already listed at apiKeys[0]", 8},
		{"key-unknown-application", "apiKeys[0].application", `unknown application "desktop"`, 4},
		{"bad-cidr", "apiKeys[0].allowedCidrs[1]", `not an address or CIDR: "10.0.0.0/33"`, 6},
		{"bad-key-id", "apiKeys[0].id", `a key id is 12 characters of 0-9 and a-z`, 6},

		// listeners, client IP and the rest
		{"bad-listen-no-port", "listen.http", `want host:port (port 0 picks a free one), got "localhost"`, 3},
		{"bad-listen-port-range", "listen.admin", `got "127.0.0.1:70000"`, 2},
		{"bad-trusted-proxy", "clientIp.trustedProxies[1]", `not an address or CIDR: "proxy.internal"`, 3},
		{"bad-client-ip-header", "clientIp.header", `want x-forwarded-for or x-real-ip, got "forwarded"`, 2},
		{"client-ip-header-without-proxies", "clientIp.trustedProxies", "required when clientIp.header is set", 2},
		{"unmatched-maybe", "unmatched", `want deny or allow, got "maybe"`, 6},

		// JWT issuers and backend tokens
		{"issuer-http-jwks", "issuers[0].jwksUri", "use https", 4},
		{"issuer-both-sources", "issuers[0]", "not both", 2},
		{"issuer-missing-jwks-file", "issuers[0].jwksFile", "no such file", 4},
		{"issuer-duplicate", "issuers[1].issuer", `issuer "https://idp.example.com" is already configured`, 6},
		{"issuer-leeway-too-large", "issuers[0].leeway", "at most 5m0s", 5},
		{"claim-header-reserved", "issuers[0].claimHeaders.sub", "header x-consumer-id is reserved", 6},
		{"backend-jwt-without-key", "backendJwt.signingKeyFile", "required when backendJwt is enabled", 2},
		{"principal-bad-pattern", "applications[0].principals[1]", "* must be a whole path segment", 5},
		{"bad-certificate-fingerprint", "applications[0].certificates[0]", "SHA-256 fingerprint", 3},
		{"forwarded-by-without-trust", "mtls.forwardedBy", "only meaningful with trustForwardedClientCert", 2},
		{"duplicate-client-id", "applications[1].clientIds[1]", `client id "mobile-client" already belongs to application "mobile"`, 5},

		// rate limiting
		{"unknown-rate-limit-policy", "apis[0].operations[0].rateLimit", `unknown rate-limit policy "strict"`, 5},
		{"bad-limit", "rateLimitPolicies[0].limits[0].requests", "at least 1", 4},
		{"bad-failure-mode", "rateLimit.failureMode", `want open or closed, got "maybe"`, 4},
		{"tracing-endpoint-not-url", "tracing.otlpEndpoint", "want the collector's OTLP/gRPC URL", 2},
		{"tracing-bad-ratio", "tracing.sampleRatio", "between 0 and 1", 3},
		{"redis-without-addrs", "rateLimit.redis.addrs", "required for the redis store", 2},
	}

	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.file+".yaml"] = true
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "invalid", tt.file+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			snap, err := Compile(data, noEnv)
			if snap != nil {
				t.Error("Compile returned a snapshot along with its error")
			}
			ps := problemsOf(t, err)
			p, ok := findProblem(ps, tt.path, tt.msg)
			if !ok {
				t.Fatalf("no problem at %q containing %q; got:\n%v", tt.path, tt.msg, err)
			}
			if tt.line == anyLine && p.Line <= 0 || tt.line != anyLine && p.Line != tt.line {
				t.Errorf("problem %q: line %d, want %d", p, p.Line, tt.line)
			}
			if !strings.Contains(err.Error(), p.String()) {
				t.Errorf("Error() = %q, does not contain %q", err.Error(), p.String())
			}
			// Each fixture holds one mistake; it must not set off others.
			if len(ps) != 1 {
				t.Errorf("got %d problems, want 1:\n%v", len(ps), err)
			}
		})
	}

	// Every fixture must be in the table, so none is silently unchecked.
	files, err := filepath.Glob(filepath.Join("testdata", "invalid", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !covered[filepath.Base(f)] {
			t.Errorf("%s has no entry in the table", f)
		}
	}
}

// TestCompileReportsEveryProblem checks that one error lists all the
// problems of a file, not only the first.
func TestCompileReportsEveryProblem(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "several-problems.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Compile(data, noEnv)
	ps := problemsOf(t, err)
	want := []struct{ path, msg string }{
		{"listen.http", "want host:port"},
		{"apis[0].forwardCredentials", "expected true or false"},
		{"apis[0].operations[0].path", "must start with /"},
		{"apis[0].operations[1].methods[0]", "unknown HTTP method"},
		{"apis[1].id", "duplicate API id"},
		{"apis[1].operations", "at least one operation"},
		{"applications[0].colour", "unknown key"},
		{"subscriptions[0].api", "unknown API"},
		{"subscriptions[0].state", "unknown state"},
		{"apiKeys[0].sha256", "want 64 hex characters"},
		{"unmatched", "want deny or allow"},
	}
	for _, w := range want {
		if _, ok := findProblem(ps, w.path, w.msg); !ok {
			t.Errorf("no problem at %q containing %q", w.path, w.msg)
		}
	}
	// Problems read top to bottom; those without a line come last.
	sorted := slices.IsSortedFunc(ps, func(a, b Problem) int {
		return cmp.Compare(cmp.Or(a.Line, math.MaxInt), cmp.Or(b.Line, math.MaxInt))
	})
	if !sorted {
		t.Errorf("problems are not in line order:\n%v", err)
	}
	if len(ps) < len(want) {
		t.Errorf("got %d problems, want at least %d:\n%v", len(ps), len(want), err)
	}
	if lines := strings.Count(err.Error(), "\n") + 1; lines != len(ps) {
		t.Errorf("Error() has %d lines for %d problems", lines, len(ps))
	}
}

// TestCompileNoFollowOnProblems checks that a value which failed to decode
// is not reported again through the things that refer to it: Compile
// promises to stay quiet about values that failed to decode.
func TestCompileNoFollowOnProblems(t *testing.T) {
	const api = "apis: [{id: p, security: [apiKey], operations: [{path: /a}]}]\n"
	tests := []struct {
		name, yaml, path string
	}{
		{
			name: "application id",
			yaml: api + "applications: [{id: [mobile]}]\nsubscriptions: [{application: mobile, api: p, state: active}]\n",
			path: "applications[0].id",
		},
		{
			name: "API id",
			yaml: "apis: [{id: [p], security: [apiKey], operations: [{path: /a}]}]\n" +
				"applications: [{id: mobile}]\nsubscriptions: [{application: mobile, api: p, state: active}]\n",
			path: "apis[0].id",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile([]byte(tt.yaml), noEnv)
			ps := problemsOf(t, err)
			if len(ps) != 1 || ps[0].Path != tt.path {
				t.Errorf("want one problem, at %s; got:\n%v", tt.path, err)
			}
		})
	}
}

// TestCompileEnv checks ${VAR} expansion through an injected lookup.
func TestCompileEnv(t *testing.T) {
	const api = `
apis:
  - id: petstore
    name: "%s"
    basePath: %s
    security: [apiKey]
    forwardCredentials: %s
    operations:
      - {path: /pets}
`
	tests := []struct {
		name                  string
		apiName, base, fwd    string // spliced into api
		env                   map[string]string
		wantName, wantBase    string
		wantFwd               bool
		wantPath, wantProblem string // a problem instead of a snapshot
	}{
		{
			name: "plain", apiName: "${NAME}", base: "${BASE}", fwd: "${FWD}",
			env:      map[string]string{"NAME": "Pet Store", "BASE": "/shop/v2", "FWD": "true"},
			wantName: "Pet Store", wantBase: "/shop/v2", wantFwd: true,
		},
		{
			name: "defaults when unset", apiName: "${NAME:-Pets}", base: "${BASE:-/pets/v1}", fwd: "${FWD:-false}",
			wantName: "Pets", wantBase: "/pets/v1",
		},
		{
			name: "defaults when set but empty", apiName: "${NAME:-Pets}", base: "${BASE:-/pets/v1}", fwd: "${FWD:-TRUE}",
			env:      map[string]string{"NAME": "", "BASE": "", "FWD": ""},
			wantName: "Pets", wantBase: "/pets/v1", wantFwd: true,
		},
		{
			name: "set value beats default", apiName: "${NAME:-Pets}", base: "${BASE:?needed}", fwd: "false",
			env:      map[string]string{"NAME": "Zoo", "BASE": "/zoo"},
			wantName: "Zoo", wantBase: "/zoo",
		},
		{
			name: "unset is empty", apiName: "pet${UNSET}store", base: "/x${UNSET}", fwd: "false${UNSET}",
			wantName: "petstore", wantBase: "/x",
		},
		{
			// Empty is not a boolean: an optional bool needs ${NAME:-false}.
			name: "unset bool is a problem", apiName: "x", base: "/", fwd: "${UNSET}",
			wantPath: "apis[0].forwardCredentials", wantProblem: `expected true or false, got ""`,
		},
		{
			name: "$$ is a literal", apiName: "$${NAME} and $HOME", base: "/", fwd: "false",
			env:      map[string]string{"NAME": "ignored"},
			wantName: "${NAME} and $HOME", wantBase: "/",
		},
		{
			name: "values are not expanded twice", apiName: "${NAME}", base: "/", fwd: "false",
			env:      map[string]string{"NAME": "${OTHER}", "OTHER": "nested"},
			wantName: "${OTHER}", wantBase: "/",
		},
		{
			name: "required and unset", apiName: "x", base: "${BASE:?set BASE to the base path}", fwd: "false",
			wantPath: "apis[0].basePath", wantProblem: "${BASE}: set BASE to the base path",
		},
		{
			name: "required without message", apiName: "x", base: "${BASE:?}", fwd: "false",
			env:      map[string]string{"BASE": ""},
			wantPath: "apis[0].basePath", wantProblem: "${BASE}: not set",
		},
		{
			name: "expanded bool is checked", apiName: "x", base: "/", fwd: "${FWD}",
			env:      map[string]string{"FWD": "perhaps"},
			wantPath: "apis[0].forwardCredentials", wantProblem: `expected true or false, got "perhaps"`,
		},
		{
			name: "expanded path is validated", apiName: "x", base: "${BASE}", fwd: "false",
			env:      map[string]string{"BASE": "no-slash"},
			wantPath: "apis[0].basePath", wantProblem: "must start with /",
		},
		{
			name: "unterminated", apiName: "${NAME", base: "/", fwd: "false",
			wantPath: "apis[0].name", wantProblem: "unterminated ${",
		},
		{
			name: "bad variable name", apiName: "${1NAME}", base: "/", fwd: "false",
			wantPath: "apis[0].name", wantProblem: `"1NAME" is not a variable name`,
		},
		{
			name: "bad operator", apiName: "${NAME:+alt}", base: "/", fwd: "false",
			wantPath: "apis[0].name", wantProblem: "want ${NAME}, ${NAME:-default} or ${NAME:?message}",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := fmt.Appendf(nil, api, tt.apiName, tt.base, tt.fwd)
			snap, err := Compile(data, envOf(tt.env))
			if tt.wantProblem != "" {
				ps := problemsOf(t, err)
				p, ok := findProblem(ps, tt.wantPath, tt.wantProblem)
				if !ok {
					t.Fatalf("no problem at %q containing %q; got:\n%v", tt.wantPath, tt.wantProblem, err)
				}
				if p.Line == 0 {
					t.Errorf("problem %q has no line", p)
				}
				return
			}
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			a := snap.Catalog.API("petstore")
			if a.Name != tt.wantName || a.BasePath != tt.wantBase || a.ForwardCredentials != tt.wantFwd {
				t.Errorf("name, basePath, forwardCredentials = %q, %q, %v; want %q, %q, %v",
					a.Name, a.BasePath, a.ForwardCredentials, tt.wantName, tt.wantBase, tt.wantFwd)
			}
		})
	}
}

// TestParseEnvTypedFields checks that ${VAR} reaches integer, float and
// duration fields, which are decoded after expansion. Most of these fields
// belong to features Compile still rejects, so this looks at the decoded
// File.
func TestParseEnvTypedFields(t *testing.T) {
	data := []byte(`
rateLimitPolicies:
  - name: gold
    limits: [{requests: "${REQUESTS}", per: "${PER:-1s}", burst: "${BURST}"}]
rateLimit:
  localFallbackShare: ${SHARE}
  redis: {timeout: "${TIMEOUT}", tls: "${TLS}"}
apis:
  - id: petstore
    security: [none]
    forwardCredentials: ${FWD}
    operations: [{path: /pets}]
`)
	env := envOf(map[string]string{
		"REQUESTS": "100", "BURST": "20", "SHARE": "0.5", "TIMEOUT": "25ms", "TLS": "True", "FWD": "true",
	})
	var f File
	if _, problems, _, err := parse(data, &f, env); err != nil || problems != nil {
		t.Fatalf("parse: %v %v", problems, err)
	}
	lim := f.RateLimitPolicies[0].Limits[0]
	if lim.Requests != 100 || lim.Burst == nil || *lim.Burst != 20 || lim.GetPer().AsDuration() != time.Second {
		t.Errorf("limit = %+v, want requests 100, burst 20, per 1s", lim)
	}
	if s := f.RateLimit.LocalFallbackShare; s == nil || *s != 0.5 {
		t.Errorf("localFallbackShare = %v, want 0.5", s)
	}
	if r := f.RateLimit.Redis; r.Timeout != Duration(25*time.Millisecond) || !r.TLS {
		t.Errorf("redis = %+v, want timeout 25ms, tls true", r)
	}
	if !f.APIs[0].ForwardCredentials {
		t.Error("forwardCredentials = false, want true from ${FWD}")
	}

	// An expanded value that is not a number is a problem at its path.
	_, problems, _, err := parse(data, new(File), envOf(map[string]string{"REQUESTS": "lots", "SHARE": "1", "TIMEOUT": "1s", "TLS": "false", "FWD": "false"}))
	if err != nil {
		t.Fatal(err)
	}
	ps := problemsOf(t, problems)
	if _, ok := findProblem(ps, "rateLimitPolicies[0].limits[0].requests", `expected an integer, got "lots"`); !ok {
		t.Errorf("no integer problem; got:\n%v", err)
	}
}

// TestCompileAliasBomb feeds "billion laughs" documents: a few kilobytes
// whose nested aliases stand for millions of nodes. Each must be rejected
// with a problem, not expanded.
func TestCompileAliasBomb(t *testing.T) {
	tests := []struct {
		name    string
		data    []byte
		wantMsg string // a problem containing this must be reported
	}{
		{
			name:    "classic, under unknown keys",
			data:    classicBomb(9),
			wantMsg: `unknown key "lol0"`,
		},
		{
			name:    "rate-limit policies, beyond the node limit",
			data:    policyBomb(600),
			wantMsg: "document too large",
		},
		{
			name:    "APIs, beyond the node limit",
			data:    aliasBomb(128),
			wantMsg: "document too large",
		},
		{
			name:    "APIs, a smaller bomb",
			data:    aliasBomb(96),
			wantMsg: "document too large",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := Compile(tt.data, noEnv)
			t.Logf("%d-byte document rejected in %v", len(tt.data), time.Since(start))
			ps := problemsOf(t, err)
			if msg := err.Error(); len(msg) > 1<<20 {
				t.Fatalf("%d problems, %d bytes of error text: the aliases were expanded", len(ps), len(msg))
			}
			for _, p := range ps {
				if strings.Contains(p.Msg, tt.wantMsg) {
					return
				}
			}
			t.Errorf("no problem containing %q among %d; first: %v", tt.wantMsg, len(ps), ps[0])
		})
	}
}

// classicBomb is the textbook billion laughs: each of n levels lists the
// level below it n times.
func classicBomb(n int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "lol0: &l0 [lol")
	for range n - 1 {
		b.WriteString(", lol")
	}
	b.WriteString("]\n")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "lol%d: &l%d [*l%d", i, i, i-1)
		for range n - 1 {
			fmt.Fprintf(&b, ", *l%d", i-1)
		}
		b.WriteString("]\n")
	}
	return []byte(b.String())
}

// policyBomb returns n rate-limit policies aliasing one list of n aliased
// limits: about 4n² nodes from O(n) bytes.
func policyBomb(n int) []byte {
	var b strings.Builder
	b.WriteString("rateLimitPolicies:\n  - &p\n    name: p\n    limits: [&l {requests: 1, per: 1s, burst: 1}")
	for range n - 1 {
		b.WriteString(", *l")
	}
	b.WriteString("]\n")
	for range n - 1 {
		b.WriteString("  - *p\n")
	}
	return []byte(b.String())
}

// aliasBomb returns a config in which n APIs alias one API whose n
// operations alias one operation with n methods: about n³ nodes once
// aliases are followed, from O(n) bytes.
func aliasBomb(n int) []byte {
	var b strings.Builder
	b.WriteString("apis:\n  - &api\n    id: a\n    security: [none]\n    operations: &ops\n")
	b.WriteString("      - &op {path: /x, methods: [GET")
	for range n - 1 {
		b.WriteString(", GET")
	}
	b.WriteString("]}\n")
	for range n - 1 {
		b.WriteString("      - *op\n")
	}
	for range n - 1 {
		b.WriteString("  - *api\n")
	}
	return []byte(b.String())
}

// TestCompileAcceptsOrdinaryAnchors: reuse of anchors well within normal
// sizes (40 APIs sharing one list of 200 operations) is not mistaken for
// an alias bomb.
func TestCompileAcceptsOrdinaryAnchors(t *testing.T) {
	var b strings.Builder
	b.WriteString("apis:\n  - id: api0\n    basePath: /v0\n    security: [apiKey]\n    operations: &ops\n")
	for i := range 200 {
		fmt.Fprintf(&b, "      - {path: /op%d, methods: [GET, POST]}\n", i)
	}
	for i := 1; i < 40; i++ {
		fmt.Fprintf(&b, "  - {id: api%d, basePath: /v%d, security: [apiKey], operations: *ops}\n", i, i)
	}
	snap, err := Compile([]byte(b.String()), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(snap.Catalog.APIs()); n != 40 {
		t.Fatalf("%d APIs, want 40", n)
	}
}

// TestCompileCapsProblems: a file with hundreds of mistakes reports the
// first hundred and a count of the rest.
func TestCompileCapsProblems(t *testing.T) {
	var b strings.Builder
	b.WriteString("applications:\n")
	for i := range 300 {
		fmt.Fprintf(&b, "  - {id: app%d, colour: blue}\n", i)
	}
	_, err := Compile([]byte(b.String()), noEnv)
	ps := problemsOf(t, err)
	if len(ps) != maxProblems+1 || !strings.Contains(ps[len(ps)-1].Msg, "200 more problems not shown") {
		t.Fatalf("%d problems, last %v", len(ps), ps[len(ps)-1])
	}
}

// A file that holds nothing is most likely one caught while being written:
// it must never load as a config without APIs (every request 404).
func TestCompileEmptyDocumentIsAnError(t *testing.T) {
	for _, doc := range []string{"", "\n", "# nothing configured yet\n", "~\n", "null\n", "---\n", "--- # c\n...\n", "{}\n"} {
		_, err := Compile([]byte(doc), noEnv)
		var problems Problems
		if !errors.As(err, &problems) || !strings.Contains(problems.Error(), "the config is empty") {
			t.Errorf("Compile(%q) = %v, want the empty-config problem", doc, err)
		}
	}
}
