package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accesslogdata "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/internal/keys"
)

// The security model's regression tests, against the real binary over
// the official ext_authz client: each case is a bypass that was found, or
// a variant of one. Proxies in front of the HTTP front end are tested in
// nginx_test.go and forwardauth_test.go.

const (
	keyCorp = "tgk_e2e_corp_key" // restricted to 10.0.0.0/8
)

// securityConfig has a public API and a protected one on the same paths,
// told apart by host, and a JWT API whose tokens come from a watched file.
func securityConfig(jwksFile string) string {
	return `
clientIp: {header: x-forwarded-for, trustedProxies: [10.0.0.5]}
issuers:
  - name: sec
    issuer: https://idp.sec.test
    jwksFile: ` + jwksFile + `
    audiences: [petstore, billing]
    claimHeaders: {email: x-user-email}
apis:
  - id: public
    hosts: [public.example.com]
    basePath: /shop
    security: [none]
    operations: [{path: "/**", methods: [GET]}]
  - id: protected
    basePath: /shop
    security: [apiKey]
    operations: [{path: "/**", methods: [GET]}]
  - id: petstore
    basePath: /petstore/v1
    security: [jwt, apiKey]
    apiKey: {header: apikey, query: apikey}
    operations:
      - {path: /pets, methods: [GET], scopes: ["pets:read"]}
      - {path: "/pets/{id}", methods: [GET], scopes: ["pets:read"]}
      - {path: "/pets/{id}", methods: [DELETE], scopes: ["pets:write"]}
      - {path: "/docs/**", methods: [GET], security: [none]}
  - id: billing
    basePath: /billing
    security: [jwt]
    audiences: [billing]
    operations: [{path: "/**", methods: [GET]}]
  - id: strict
    basePath: /strict
    security: [apiKey]
    methodOverride: deny
    operations: [{path: "/**"}]
applications:
  - {id: mobile, name: Mobile app, owner: alice, clientIds: [mobile-client]}
subscriptions:
  - {application: mobile, api: protected, state: active}
  - {application: mobile, api: petstore, state: active}
  - {application: mobile, api: billing, state: active}
  - {application: mobile, api: strict, state: active}
apiKeys:
  - {application: mobile, name: ci, sha256: ` + sha(keyMobile) + `, scopes: ["pets:read"]}
  - {application: mobile, name: office, sha256: ` + sha(keyCorp) + `, scopes: ["pets:read"], allowedCidrs: [10.0.0.0/8]}
`
}

// rawTokens signs tokens with headers and claims as written, so that a
// test can send what signing libraries never produce.
type rawTokens struct {
	key *ecdsa.PrivateKey
	kid string
}

func newRawTokens(t *testing.T, dir string) (*rawTokens, string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	s, err := keys.NewSigner(key)
	must(t, err)
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	must(t, json.Unmarshal(s.PublicJWKS(), &set))
	path := filepath.Join(dir, "jwks.json")
	must(t, os.WriteFile(path, s.PublicJWKS(), 0o600))
	return &rawTokens{key: key, kid: set.Keys[0].KID}, path
}

// claims returns valid claims for mobile-client with edits applied.
func (r *rawTokens) claims(edit func(map[string]any)) map[string]any {
	now := time.Now()
	c := map[string]any{"iss": "https://idp.sec.test", "aud": "petstore", "sub": "alice", "azp": "mobile-client",
		"scope": "pets:read", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "email": "alice@example.com"}
	if edit != nil {
		edit(c)
	}
	return c
}

func (r *rawTokens) sign(t *testing.T, header, claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	signing := enc([]byte(header)) + "." + enc([]byte(claims))
	sig, err := jwt.SigningMethodES256.Sign(signing, r.key)
	must(t, err)
	return signing + "." + enc(sig)
}

func (r *rawTokens) token(t *testing.T, edit func(map[string]any)) string {
	c, err := json.Marshal(r.claims(edit))
	must(t, err)
	return r.sign(t, `{"alg":"ES256","typ":"JWT","kid":"`+r.kid+`"}`, string(c))
}

// verdict is what a Check answered: 200 for an allow, else the deny status.
type securityVerdict struct {
	status  int
	code    string
	ok      *authv3.OkHttpResponse
	headers map[string]string // the upstream headers an allow sets
}

func securityCheck(t *testing.T, client authv3.AuthorizationClient, req *authv3.CheckRequest) securityVerdict {
	t.Helper()
	resp, err := client.Check(context.Background(), req)
	if err != nil {
		t.Fatalf("Check: %v (every CheckRequest must get a CheckResponse)", err)
	}
	if ok := resp.GetOkResponse(); ok != nil {
		v := securityVerdict{status: 200, ok: ok, headers: map[string]string{}}
		for _, h := range ok.GetHeaders() {
			v.headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
		return v
	}
	var body map[string]string
	_ = json.Unmarshal([]byte(resp.GetDeniedResponse().GetBody()), &body)
	return securityVerdict{status: int(resp.GetDeniedResponse().GetStatus().GetCode()), code: body["code"]}
}

func onHost(req *authv3.CheckRequest, host string) *authv3.CheckRequest {
	req.Attributes.Request.Http.Host = host
	return req
}

// withRawHeaders moves the headers into header_map, one line each, as
// Envoy sends them with encode_raw_headers: names may repeat.
func withRawHeaders(req *authv3.CheckRequest, kv ...string) *authv3.CheckRequest {
	hm := &corev3.HeaderMap{}
	for i := 0; i+1 < len(kv); i += 2 {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	req.Attributes.Request.Http.Headers = nil
	req.Attributes.Request.Http.HeaderMap = hm
	return req
}

func bearer(tok string) map[string]string { return map[string]string{"authorization": "Bearer " + tok} }

func TestSecurityRegressions(t *testing.T) {
	tokens, jwksFile := newRawTokens(t, t.TempDir())
	e := startEnforcer(t, securityConfig(jwksFile))
	client := e.AuthClient()
	key := map[string]string{"apikey": keyMobile}
	good := tokens.token(t, nil)
	claims := func(edit func(map[string]any)) string { return tokens.token(t, edit) }
	validClaims, _ := json.Marshal(tokens.claims(nil))
	kidHeader := `"kid":"` + tokens.kid + `"`

	cases := []struct {
		name   string
		req    *authv3.CheckRequest
		status int
		code   string
	}{
		// 1. encoded separators in a segment
		{"encoded slashes climb to a scoped operation", check("DELETE", "/petstore/v1/pets/1%2F..%2F..%2Fpets", key, nil), 400, "900400"},
		{"lower-case encoded slash", check("GET", "/petstore/v1/pets/1%2f..%2f..%2fpets", key, nil), 400, "900400"},
		{"encoded backslash", check("GET", "/petstore/v1/pets/1%5c..%5c..%5cpets", key, nil), 400, "900400"},
		{"raw backslash", check("GET", "/petstore/v1/docs\\..\\pets/1", nil, nil), 400, "900400"},
		{"encoded dots are resolved", check("GET", "/petstore/v1/docs/%2E%2e/pets", nil, nil), 401, "900902"},
		{";parameters read as a dot segment by servlet containers", check("GET", "/petstore/v1/docs/..;/pets", nil, nil), 400, "900400"},
		{"a malformed escape", check("GET", "/petstore/v1/pets/%zz", key, nil), 400, "900400"},
		{"an encoded NUL", check("GET", "/petstore/v1/pets/a%00b", key, nil), 400, "900400"},
		// 4. host spelling: no spelling Envoy could route elsewhere selects the public API
		{"the public host is public", onHost(check("GET", "/shop/items", nil, nil), "public.example.com"), 200, ""},
		{"the public host in capitals", onHost(check("GET", "/shop/items", nil, nil), "PUBLIC.Example.com"), 200, ""},
		{"with a port", onHost(check("GET", "/shop/items", nil, nil), "public.example.com:8443"), 401, "900902"},
		{"with the default port", onHost(check("GET", "/shop/items", nil, nil), "public.example.com:443"), 401, "900902"},
		{"with a trailing dot", onHost(check("GET", "/shop/items", nil, nil), "public.example.com."), 401, "900902"},
		{"with an empty port", onHost(check("GET", "/shop/items", nil, nil), "public.example.com:"), 401, "900902"},
		{"with a dot and a port", onHost(check("GET", "/shop/items", nil, nil), "public.example.com.:443"), 401, "900902"},
		{"a malformed host", onHost(check("GET", "/shop/items", nil, nil), "public.example.com@evil"), 400, "900400"},
		// 6. header injection from token claims
		{"CRLF in sub", check("GET", "/petstore/v1/pets", bearer(claims(func(c map[string]any) { c["sub"] = "alice\r\nx-consumer-id: admin" })), nil), 401, "900901"},
		{"NUL in sub", check("GET", "/petstore/v1/pets", bearer(claims(func(c map[string]any) { c["sub"] = "alice\x00" })), nil), 401, "900901"},
		{"LF in a claim header", check("GET", "/petstore/v1/pets", bearer(claims(func(c map[string]any) { c["email"] = "a@b\nx: y" })), nil), 401, "900901"},
		// 7. X-Forwarded-For in two lines: the client's first line must not hide the proxy's
		{"XFF lines are joined", withRawHeaders(check("GET", "/petstore/v1/pets", nil, nil),
			"apikey", keyCorp, "x-forwarded-for", "10.1.2.3", "x-forwarded-for", "203.0.113.9"), 403, "900908"},
		{"XFF from the proxy alone", withRawHeaders(check("GET", "/petstore/v1/pets", nil, nil),
			"apikey", keyCorp, "x-forwarded-for", "10.1.2.3"), 200, ""},
		// 8. API keys only where Envoy removes them
		{"key under an encoded name", check("GET", "/petstore/v1/pets?api%6bey="+keyMobile, nil, nil), 400, "900400"},
		{"key under a +-encoded name", check("GET", "/petstore/v1/pets?api+key=x&apikey="+keyMobile, nil, nil), 200, ""},
		{"key in the fragment", check("GET", "/petstore/v1/pets#?apikey="+keyMobile, nil, nil), 401, "900902"},
		{"key in the query twice", check("GET", "/petstore/v1/pets?apikey="+keyMobile+"&apikey=other", nil, nil), 400, "900400"},
		{"key header twice", withRawHeaders(check("GET", "/petstore/v1/pets", nil, nil), "apikey", keyMobile, "apikey", keyCorp), 400, "900400"},
		// 9. scope separators
		{"no-break space in scope", check("DELETE", "/petstore/v1/pets/1", bearer(claims(func(c map[string]any) { c["scope"] = "a\u00a0pets:write" })), nil), 401, "900901"},
		{"tab in scope", check("DELETE", "/petstore/v1/pets/1", bearer(claims(func(c map[string]any) { c["scope"] = "a\tpets:write" })), nil), 401, "900901"},
		{"vertical tab in scope", check("DELETE", "/petstore/v1/pets/1", bearer(claims(func(c map[string]any) { c["scope"] = "a\vpets:write" })), nil), 401, "900901"},
		{"single spaces separate", check("DELETE", "/petstore/v1/pets/1", bearer(claims(func(c map[string]any) { c["scope"] = "a pets:write" })), nil), 200, ""},
		// 10. crit and b64
		{"unknown critical header", check("GET", "/petstore/v1/pets", bearer(tokens.sign(t, `{"alg":"ES256",`+kidHeader+`,"crit":["exp"]}`, string(validClaims))), nil), 401, "900901"},
		{"b64 false", check("GET", "/petstore/v1/pets", bearer(tokens.sign(t, `{"alg":"ES256",`+kidHeader+`,"b64":false,"crit":["b64"]}`, string(validClaims))), nil), 401, "900901"},
		{"a claim twice", check("GET", "/petstore/v1/pets", bearer(tokens.sign(t, `{"alg":"ES256",`+kidHeader+`}`, `{"sub":"admin",`+string(validClaims[1:]))), nil), 401, "900901"},
		// 11. audience per API
		{"a petstore token on billing", check("GET", "/billing/invoices", bearer(good), nil), 401, "900901"},
		{"a billing token on billing", check("GET", "/billing/invoices", bearer(claims(func(c map[string]any) { c["aud"] = "billing" })), nil), 200, ""},
		{"a petstore token on petstore", check("GET", "/petstore/v1/pets", bearer(good), nil), 200, ""},
		// 12. method override: denied where the API says so
		{"override refused on a strict API", check("GET", "/strict/x", map[string]string{"apikey": keyMobile, "x-http-method-override": "DELETE"}, nil), 400, "900400"},
		{"_method refused on a strict API", check("POST", "/strict/x?_method=DELETE", key, nil), 400, "900400"},
		{"_method under another spelling", check("GET", "/petstore/v1/pets?_m%65thod=DELETE", key, nil), 400, "900400"},
		// 14. HEAD is GET
		{"HEAD on a GET operation", check("HEAD", "/petstore/v1/pets", key, nil), 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := securityCheck(t, client, tc.req)
			if v.status != tc.status || v.code != tc.code {
				t.Fatalf("got %d %q, want %d %q", v.status, v.code, tc.status, tc.code)
			}
			if v.ok != nil {
				for name, value := range v.headers {
					if strings.ContainsAny(value, "\r\n\x00") {
						t.Errorf("header %s = %q", name, value)
					}
				}
			}
		})
	}

	t.Run("method-override headers are removed from allowed requests", func(t *testing.T) {
		v := securityCheck(t, client, check("GET", "/petstore/v1/pets/1?_method=DELETE",
			map[string]string{"apikey": keyMobile, "x-http-method-override": "DELETE"}, nil))
		if v.status != 200 {
			t.Fatalf("status %d %s", v.status, v.code)
		}
		for _, h := range []string{"x-http-method-override", "x-http-method", "x-method-override"} {
			if !slices.Contains(v.ok.GetHeadersToRemove(), h) {
				t.Errorf("headers_to_remove = %q lacks %s", v.ok.GetHeadersToRemove(), h)
			}
		}
		if !slices.Contains(v.ok.GetQueryParametersToRemove(), "_method") {
			t.Errorf("query_parameters_to_remove = %q lacks _method", v.ok.GetQueryParametersToRemove())
		}
	})

	t.Run("claim headers are always removed or replaced", func(t *testing.T) {
		v := securityCheck(t, client, check("GET", "/petstore/v1/pets",
			map[string]string{"apikey": keyMobile, "x-user-email": "ceo@example.com"}, nil))
		if v.status != 200 || !slices.Contains(v.ok.GetHeadersToRemove(), "x-user-email") {
			t.Fatalf("status %d, headers_to_remove %q", v.status, v.ok.GetHeadersToRemove())
		}
	})

	t.Run("invalid UTF-8 is denied, not an RPC error", func(t *testing.T) {
		conn := e.Dial()
		var out authv3.CheckResponse
		err := conn.Invoke(context.Background(), authv3.Authorization_Check_FullMethodName,
			invalidUTF8Check(), &out, grpc.ForceCodecV2(rawCodec{}))
		if err != nil || out.GetDeniedResponse().GetStatus().GetCode() != 400 {
			t.Fatalf("err %v, response %v; want a 400 denial", err, &out)
		}
	})

	t.Run("mTLS 401 names a scheme", func(t *testing.T) {
		e2 := startEnforcer(t, `
apis:
  - id: orders
    security: [mtls]
    operations: [{path: "/**"}]
applications: [{id: cart, principals: ["spiffe://cluster.local/ns/shop/sa/cart"]}]
subscriptions: [{application: cart, api: orders, state: active}]
`)
		resp, err := e2.AuthClient().Check(context.Background(), check("GET", "/orders/1", nil, nil))
		must(t, err)
		var challenge string
		for _, h := range resp.GetDeniedResponse().GetHeaders() {
			if h.GetHeader().GetKey() == "www-authenticate" {
				challenge = h.GetHeader().GetValue()
			}
		}
		if resp.GetDeniedResponse().GetStatus().GetCode() != 401 || challenge != `mTLS realm="orders"` {
			t.Fatalf("status %v, WWW-Authenticate %q", resp.GetDeniedResponse().GetStatus(), challenge)
		}
	})
}

// invalidUTF8Check is a CheckRequest whose header value is not UTF-8, as
// Envoy's C++ encoder sends a Latin-1 header: the generated Go code would
// refuse to decode it.
func invalidUTF8Check() []byte {
	field := func(b []byte, num protowire.Number, v []byte) []byte {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		return protowire.AppendBytes(b, v)
	}
	entry := field(field(nil, 1, []byte("user-agent")), 2, []byte{'c', 0xe9})
	http := field(field(field(nil, 2, []byte("GET")), 4, []byte("/petstore/v1/pets")), 3, entry)
	return field(nil, 1, field(nil, 4, field(nil, 2, http)))
}

// rawCodec sends a []byte request as it is and reads protobuf responses.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}
func (rawCodec) Name() string { return "proto" }

func TestEmptyConfigIsRefused(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"empty": "", "comment": "# later\n", "null": "null\n", "dashes": "---\n"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name+".yaml")
			must(t, os.WriteFile(path, []byte(content), 0o600))
			for _, cmd := range []string{"serve", "validate"} {
				code, _, stderr := runCommand(t, nil, cmd, "--config", path)
				if code != 1 || !strings.Contains(stderr, "not valid") {
					t.Errorf("%s: exit %d, %q; want 1 and a problem", cmd, code, stderr)
				}
			}
		})
	}
	t.Run("a missing file says so", func(t *testing.T) {
		code, _, stderr := runCommand(t, nil, "serve", "--config", filepath.Join(dir, "absent.yaml"))
		if code != 1 || !strings.Contains(stderr, "no such file") {
			t.Errorf("exit %d, %q; want the cause", code, stderr)
		}
	})
}

func TestAccessLogOnItsOwnListener(t *testing.T) {
	dir := t.TempDir()
	events := filepath.Join(dir, "events.jsonl")
	path := filepath.Join(dir, "config.yaml")
	must(t, os.WriteFile(path, []byte(`
listen: {grpc: "127.0.0.1:0", http: "127.0.0.1:0", admin: "127.0.0.1:0", accessLog: "127.0.0.1:0"}
analytics: {events: `+events+`, accessLogPeers: [127.0.0.0/8]}
apis: [{id: open, security: [none], operations: [{path: "/**"}]}]
`), 0o600))
	e := startEnforcerAt(t, path)
	waitFor(t, "the access-log listener", 10*time.Second, func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.addrs["accessLog"] != ""
	})
	stream := func(addr string) error {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		must(t, err)
		defer conn.Close()
		s, err := accesslogv3.NewAccessLogServiceClient(conn).StreamAccessLogs(context.Background())
		if err != nil {
			return err
		}
		if err := s.Send(&accesslogv3.StreamAccessLogsMessage{
			Identifier: &accesslogv3.StreamAccessLogsMessage_Identifier{LogName: "tollgate"},
			LogEntries: &accesslogv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &accesslogv3.StreamAccessLogsMessage_HTTPAccessLogEntries{
				LogEntry: []*accesslogdata.HTTPAccessLogEntry{alsEntry("r1", 200, time.Millisecond, 2*time.Millisecond)}}},
		}); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		_, err = s.CloseAndRecv()
		return err
	}
	if err := stream(e.addrs["accessLog"]); err != nil {
		t.Fatalf("access log on its own listener: %v", err)
	}
	if err := stream(e.addrs["grpc"]); status.Code(err) != codes.Unimplemented {
		t.Fatalf("access log on the ext_authz port: %v, want Unimplemented", err)
	}
}

// The HTTP front end in its default shape reads the request itself: a
// client-sent X-Original-URI names nothing.
func TestHTTPShapeIsNotTheClientsChoice(t *testing.T) {
	e := startEnforcer(t, petstoreConfig)
	req, _ := http.NewRequest("DELETE", e.HTTPURL()+"/petstore/v1/pets/1", nil)
	req.Header.Set("X-Original-URI", "/petstore/v1/health")
	req.Header.Set("X-Original-Method", "GET")
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("DELETE with a client-sent X-Original-URI: %d, want 401", resp.StatusCode)
	}
}

// validate checks what serve needs beyond the config, and serve starts
// with more jwksFile issuers than Linux's default inotify instances.
func TestValidateAndServeAgree(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad-events.yaml")
	must(t, os.WriteFile(bad, []byte("analytics: {events: "+filepath.Join(dir, "missing", "events.jsonl")+"}\n"+
		"apis: [{id: open, security: [none], operations: [{path: \"/**\"}]}]\n"), 0o600))
	for _, cmd := range []string{"validate", "serve"} {
		if code, _, stderr := runCommand(t, nil, cmd, "--config", bad); code != 1 || !strings.Contains(stderr, "analytics.events") {
			t.Errorf("%s with an events file that cannot be written: exit %d, %q", cmd, code, stderr)
		}
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	signer, err := keys.NewSigner(key)
	must(t, err)
	var cfg strings.Builder
	cfg.WriteString("issuers:\n")
	for i := range 130 {
		file := filepath.Join(dir, "jwks", fmt.Sprintf("idp-%d.json", i))
		must(t, os.MkdirAll(filepath.Dir(file), 0o700))
		must(t, os.WriteFile(file, signer.PublicJWKS(), 0o600))
		fmt.Fprintf(&cfg, "  - {name: idp-%d, issuer: \"https://idp-%d.test\", jwksFile: %s}\n", i, i, file)
	}
	cfg.WriteString("apis: [{id: open, security: [jwt, none], operations: [{path: \"/**\"}]}]\n")
	if code, out, stderr := runCommand(t, nil, "validate", "--config", writeConfig(t, cfg.String())); code != 0 || !strings.Contains(out, "130 issuers") {
		t.Fatalf("validate: exit %d, %q %q", code, out, stderr)
	}
	startEnforcer(t, cfg.String()) // fails the test unless it becomes ready
}

func writeConfig(t *testing.T, cfg string) string {
	path := filepath.Join(t.TempDir(), "config.yaml")
	must(t, os.WriteFile(path, []byte(cfg), 0o600))
	return path
}

// A config emptied in place (a truncating write) is never loaded: the
// running config stays and the failure is counted.
func TestTruncatedConfigKeepsTheRunningOne(t *testing.T) {
	e := startEnforcer(t, petstoreConfig)
	if got := httpStatus(t, e, keyMobile); got != 200 {
		t.Fatalf("before: %d", got)
	}
	must(t, os.WriteFile(e.ConfigPath, nil, 0o600))
	waitFor(t, "the failed reload", 15*time.Second, func() bool {
		return e.Metric("tollgate_config_reloads_total", "result", "failure") >= 1
	})
	if got := httpStatus(t, e, keyMobile); got != 200 {
		t.Fatalf("after the truncation: %d, want the running config's 200", got)
	}
}
