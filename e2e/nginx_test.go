package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate/internal/keys"
)

// nginxBin finds nginx; the test set-up (scripts/test-deps.sh) installs it.
func nginxBin(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatal("nginx not found: run scripts/test-deps.sh (installs nginx from Debian)")
	return ""
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// fillExample reads a shipped example config and replaces its addresses;
// it fails the test when a placeholder is gone, so that the test never
// runs a config other than the one shipped.
func fillExample(t *testing.T, path string, replace ...string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(string(data), replace[i]) {
			t.Fatalf("%s no longer has the placeholder %q", path, replace[i])
		}
	}
	return strings.NewReplacer(replace...).Replace(string(data))
}

// runProxy starts a proxy process with its output in dir/output.log (and
// the given extra log files shown on failure), stops it at cleanup, and
// waits until ready holds. If the process exits first, the test fails with
// its logs.
func runProxy(t *testing.T, name string, cmd *exec.Cmd, dir string, ready func() bool, extraLogs ...string) {
	t.Helper()
	out, err := os.Create(filepath.Join(dir, "output.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		out.Close()
	})
	logs := func() string {
		var b strings.Builder
		for _, f := range append([]string{"output.log"}, extraLogs...) {
			data, _ := os.ReadFile(filepath.Join(dir, f))
			fmt.Fprintf(&b, "--- %s\n%s\n", f, data)
		}
		return b.String()
	}
	deadline := time.Now().Add(30 * time.Second)
	for !ready() {
		select {
		case <-exited:
			t.Fatalf("%s exited during start-up:\n%s", name, logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s to be ready:\n%s", name, logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// listening reports whether something accepts connections on addr.
func listening(addr string) bool {
	c, err := net.Dial("tcp", addr)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// startNginx runs nginx with the shipped example server block
// (examples/nginx/tollgate.conf), pointed at the given Tollgate HTTP front
// end and backend, on a free port. It returns nginx's base URL.
func startNginx(t *testing.T, tollgateAddr, backendAddr string) string {
	t.Helper()
	bin := nginxBin(t)
	dir := t.TempDir()
	listen := freePort(t)
	server := fillExample(t, "../examples/nginx/tollgate.conf",
		"server 127.0.0.1:8082;", "server "+tollgateAddr+";",
		"server 127.0.0.1:9000;", "server "+backendAddr+";",
		"listen 127.0.0.1:8080;", "listen "+listen+";",
	)
	conf := fmt.Sprintf(`
daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 128; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
%[2]s
}
`, dir, server)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log"))
	runProxy(t, "nginx", cmd, dir, func() bool { return listening(listen) }, "error.log")
	return "http://" + listen
}

// recordedRequest is what reached the backend.
type recordedRequest struct {
	Method, URI string
	Header      http.Header
}

// recordingBackend is the API's upstream: it records every request that
// reaches it.
type recordingBackend struct {
	mu       sync.Mutex
	requests []recordedRequest
	*httptest.Server
}

func newRecordingBackend(t *testing.T) *recordingBackend {
	b := &recordingBackend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.requests = append(b.requests, recordedRequest{r.Method, r.RequestURI, r.Header.Clone()})
		b.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"pets":[]}`)
	}))
	t.Cleanup(b.Close)
	return b
}

// Addr is the backend's host:port.
func (b *recordingBackend) Addr() string { return strings.TrimPrefix(b.URL, "http://") }

func (b *recordingBackend) Count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.requests)
}

func (b *recordingBackend) Last() recordedRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.requests[len(b.requests)-1]
}

// Keys of the proxy tests besides those of petstoreConfig.
const (
	keyLimited = "tgk_e2e_limited_key" // one request an hour
	keyOffice  = "tgk_e2e_office_key"  // only from 10.1.2.3
)

// proxyTollgate is the Tollgate behind a proxy example.
type proxyTollgate struct {
	*enforcer
	signer *keys.Signer // signs access tokens its issuer accepts
}

// startProxyTollgate runs Tollgate for the proxy examples, with the HTTP
// front end in the given shape and the client address read from the given
// header: petstoreConfig's API-key API, a JWT API whose issuer sets the
// x-user-email claim header, the backend JWT, a rate-limited key and a
// key bound to a CIDR.
func startProxyTollgate(t *testing.T, shape, clientIPHeader string) *proxyTollgate {
	t.Helper()
	idp := newIdentityProvider(t)
	signer, _ := newSigner(t)
	idp.publish(t, signer)
	_, backendKeyFile := newSigner(t)
	cfg := `
httpFrontEnd: {shape: ` + shape + `}
clientIp: {header: ` + clientIPHeader + `, trustedProxies: [127.0.0.1]}
issuers:
  - name: e2e-idp
    issuer: https://idp.e2e.test
    jwksUri: ` + idp.URL + `/jwks.json
    jwksCaFile: ` + idp.CAFile + `
    audiences: [petstore]
    claimHeaders: {email: x-user-email}
backendJwt: {enabled: true, signingKeyFile: ` + backendKeyFile + `}
rateLimitPolicies:
  - {name: one-an-hour, limits: [{requests: 1, per: 1h}]}
apis:` + petstoreAPI + `  - id: petstore-jwt
    name: PetStore for tokens
    basePath: /jwt/v1
    security: [jwt]
    operations:
      - {path: /pets, methods: [GET], scopes: ["pets:read"]}
  - id: limited
    basePath: /limited
    security: [apiKey]
    operations:
      - {path: /pets, methods: [GET]}
applications:
  - {id: mobile, name: Mobile app, owner: alice, clientIds: [mobile-client]}
  - {id: partner, name: Partner}
  - {id: nosub, name: Nobody}
subscriptions:
  - {application: mobile, api: petstore-v1, state: active}
  - {application: mobile, api: petstore-jwt, state: active}
  - {application: mobile, api: limited, state: active, rateLimit: one-an-hour}
  - {application: partner, api: petstore-v1, state: blocked}
apiKeys:
  - {application: mobile, name: ci, sha256: ` + sha(keyMobile) + `, scopes: ["pets:write"]}
  - {application: mobile, name: ro, sha256: ` + sha(keyRO) + `}
  - {application: mobile, name: limited, sha256: ` + sha(keyLimited) + `}
  - {application: mobile, name: office, sha256: ` + sha(keyOffice) + `, allowedCidrs: [10.1.2.3/32]}
  - {application: partner, sha256: ` + sha(keyPartner) + `}
  - {application: nosub, sha256: ` + sha(keyNoSub) + `}
`
	return &proxyTollgate{enforcer: startEnforcer(t, cfg), signer: signer}
}

// backendClaims verifies a backend JWT with the keys Tollgate publishes
// and returns its claims.
func (tg *proxyTollgate) backendClaims(t *testing.T, tok string) jwt.MapClaims {
	t.Helper()
	resp, err := http.Get(tg.AdminURL() + "/.well-known/jwks.json")
	must(t, err)
	published, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	set, err := keys.ParseJWKS(published)
	must(t, err)
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(tok, &claims, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		k, ok := set.Find(kid, tok.Method.Alg())
		if !ok {
			return nil, fmt.Errorf("kid %q is not published", kid)
		}
		return k.Key, nil
	}); err != nil {
		t.Fatalf("the backend JWT %q does not verify: %v", tok, err)
	}
	return claims
}

// Headers only Tollgate may set upstream, with the copies a client sends
// to pass for someone else.
var spoofedIdentity = map[string]string{
	"X-Consumer-Id":          "eve",
	"X-Consumer-Name":        "Eve",
	"X-Authenticated-Userid": "eve",
	"X-Authenticated-Scope":  "admin",
	"X-Credential-Type":      "jwt",
	"X-User-Email":           "ceo@example.com",
	"X-Jwt-Assertion":        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJldmUifQ.",
}

// Headers a client sends to make the backend run another method than the
// one Tollgate checked.
var methodOverrides = map[string]string{
	"X-HTTP-Method-Override": "DELETE",
	"X-HTTP-Method":          "DELETE",
	"X-Method-Override":      "DELETE",
}

// Headers a client sends to make Tollgate check another request than the
// one the proxy forwards (the public operation, with GET).
var spoofedTargets = map[string]map[string][]string{
	"X-Original-*": {
		"X-Original-URI":    {"/petstore/v1/health"},
		"X-Original-Method": {"GET"},
	},
	"X-Original-* twice": {
		"X-Original-URI":    {"/petstore/v1/health", "/petstore/v1/health"},
		"X-Original-Method": {"GET", "GET"},
	},
	"X-Forwarded-*": {
		"X-Forwarded-Uri":    {"/petstore/v1/health"},
		"X-Forwarded-Method": {"GET"},
		"X-Forwarded-Host":   {"spoofed.example"},
		"X-Forwarded-Proto":  {"https"},
	},
}

// testProxyExample runs the checks every proxy example must pass: the
// proxy at base, with Tollgate tg deciding, in front of backend.
func testProxyExample(t *testing.T, tg *proxyTollgate, backend *recordingBackend, base string) {
	do := func(t *testing.T, method, path string, headers map[string][]string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, nil)
		must(t, err)
		for k, vs := range headers {
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	with := func(maps ...map[string]string) map[string][]string {
		out := map[string][]string{}
		for _, m := range maps {
			for k, v := range m {
				out[k] = []string{v}
			}
		}
		return out
	}
	aliceToken := token(t, tg.signer, nil)
	billingToken := token(t, tg.signer, func(c jwt.MapClaims) { c["aud"] = "billing" })

	allowed := []struct {
		name    string
		path    string
		headers map[string][]string
		// want is what the backend must see of spoofedIdentity's headers;
		// a name left out must not reach it at all.
		want map[string]string
		// claims the backend JWT must carry; nil: no backend JWT.
		claims map[string]string
	}{
		{
			name:    "API key",
			path:    "/petstore/v1/pets",
			headers: with(map[string]string{"apikey": keyMobile}, spoofedIdentity, methodOverrides),
			want: map[string]string{"X-Consumer-Id": "mobile", "X-Consumer-Name": "Mobile app",
				"X-Authenticated-Userid": "alice", "X-Authenticated-Scope": "pets:write", "X-Credential-Type": "apiKey"},
			claims: map[string]string{"application": "mobile", "api": "petstore-v1", "credential_type": "apiKey"},
		},
		{
			name:    "JWT",
			path:    "/jwt/v1/pets",
			headers: with(map[string]string{"Authorization": "Bearer " + aliceToken}, spoofedIdentity, methodOverrides),
			want: map[string]string{"X-Consumer-Id": "mobile", "X-Consumer-Name": "Mobile app",
				"X-Authenticated-Userid": "alice", "X-Authenticated-Scope": "pets:read", "X-Credential-Type": "jwt",
				"X-User-Email": "alice@example.com"},
			claims: map[string]string{"sub": "alice", "application": "mobile", "api": "petstore-jwt", "credential_type": "jwt"},
		},
		{
			name:    "public operation",
			path:    "/petstore/v1/health",
			headers: with(spoofedIdentity, methodOverrides),
			want:    map[string]string{},
		},
	}
	for _, tc := range allowed {
		t.Run("allowed: "+tc.name, func(t *testing.T) {
			before := backend.Count()
			resp, body := do(t, "GET", tc.path, tc.headers)
			if resp.StatusCode != 200 || body != `{"pets":[]}` || backend.Count() != before+1 {
				t.Fatalf("status %d body %q, backend calls %d", resp.StatusCode, body, backend.Count()-before)
			}
			got := backend.Last()
			if got.Method != "GET" || got.URI != tc.path {
				t.Errorf("backend got %s %s, want GET %s", got.Method, got.URI, tc.path)
			}
			for _, name := range []string{"Authorization", "Apikey", "X-Http-Method-Override", "X-Http-Method", "X-Method-Override"} {
				if vs := got.Header.Values(name); vs != nil {
					t.Errorf("backend received %s: %q", name, vs)
				}
			}
			for name := range spoofedIdentity {
				if name == "X-Jwt-Assertion" {
					continue
				}
				want, set := tc.want[name]
				if vs := got.Header.Values(name); set && (len(vs) != 1 || vs[0] != want) {
					t.Errorf("backend saw %s = %q, want %q", name, vs, want)
				} else if !set && vs != nil {
					t.Errorf("backend saw %s = %q, which Tollgate did not set", name, vs)
				}
			}
			assertions := got.Header.Values("X-Jwt-Assertion")
			switch {
			case tc.claims == nil && assertions != nil:
				t.Errorf("backend saw X-Jwt-Assertion %q, which Tollgate did not set", assertions)
			case tc.claims != nil && len(assertions) != 1:
				t.Errorf("backend saw X-Jwt-Assertion %q, want Tollgate's one", assertions)
			case tc.claims != nil:
				claims := tg.backendClaims(t, assertions[0])
				for k, v := range tc.claims {
					if claims[k] != v {
						t.Errorf("backend JWT claim %s = %v, want %s", k, claims[k], v)
					}
				}
			}
		})
	}

	denials := []proxyDenial{
		{name: "no key", method: "GET", path: "/petstore/v1/pets", status: 401, code: "900902", challenge: "APIKey"},
		{name: "wrong key", method: "GET", path: "/petstore/v1/pets", headers: with(map[string]string{"apikey": "tgk_wrong"}),
			status: 401, code: "900901", challenge: "APIKey"},
		{name: "blocked subscription", method: "GET", path: "/petstore/v1/pets", headers: with(map[string]string{"apikey": keyPartner}),
			status: 401, code: "900907", challenge: "APIKey"},
		{name: "not subscribed", method: "GET", path: "/petstore/v1/pets", headers: with(map[string]string{"apikey": keyNoSub}),
			status: 403, code: "900908"},
		{name: "missing scope", method: "DELETE", path: "/petstore/v1/pets/1", headers: with(map[string]string{"apikey": keyRO}),
			status: 403, code: "900910"},
		{name: "no such API", method: "GET", path: "/unknown", headers: with(map[string]string{"apikey": keyMobile}),
			status: 404, code: "404"},
		{name: "no token", method: "GET", path: "/jwt/v1/pets", status: 401, code: "900902", challenge: "Bearer"},
		{name: "token for another audience", method: "GET", path: "/jwt/v1/pets", headers: with(map[string]string{"Authorization": "Bearer " + billingToken}),
			status: 401, code: "900901", challenge: "Bearer"},
		{name: "rate limited", method: "GET", path: "/limited/pets", headers: with(map[string]string{"apikey": keyLimited}),
			warmUp: 1, status: 429, code: "900804"},
		// The proxy must pass the client address it sees, never the
		// client's own claim.
		{name: "key outside its CIDRs, client claims to be inside", method: "GET", path: "/petstore/v1/pets", headers: with(map[string]string{
			"apikey": keyOffice, "X-Forwarded-For": "10.1.2.3", "X-Real-IP": "10.1.2.3",
		}), status: 403, code: "900908"},
	}
	// The proxy, not the client, tells Tollgate which request to check.
	for _, family := range []string{"X-Original-*", "X-Original-* twice", "X-Forwarded-*"} {
		spoof := spoofedTargets[family]
		denials = append(denials,
			proxyDenial{name: "no key, client sends " + family + " of the public operation", method: "DELETE", path: "/petstore/v1/pets/1",
				headers: spoof, status: 401, code: "900902", challenge: "APIKey"},
			proxyDenial{name: "read-only key, client sends " + family + " of a GET", method: "DELETE", path: "/petstore/v1/pets/1",
				headers: merge(spoof, with(map[string]string{"apikey": keyRO})), status: 403, code: "900910"},
		)
	}
	for _, tc := range denials {
		t.Run("denied: "+tc.name, func(t *testing.T) {
			for range tc.warmUp {
				if resp, body := do(t, tc.method, tc.path, tc.headers); resp.StatusCode != 200 {
					t.Fatalf("warm-up request: %d %s", resp.StatusCode, body)
				}
			}
			before := backend.Count()
			resp, body := do(t, tc.method, tc.path, tc.headers)
			if backend.Count() != before {
				t.Fatalf("a denied request reached the backend (%d %q): %+v", resp.StatusCode, body, backend.Last())
			}
			var parsed map[string]string
			if err := json.Unmarshal([]byte(body), &parsed); err != nil {
				t.Fatalf("status %d, body %q is not JSON: %v", resp.StatusCode, body, err)
			}
			if resp.StatusCode != tc.status || parsed["code"] != tc.code || parsed["error_message"] == "" || parsed["error_description"] == "" {
				t.Fatalf("got %d %q, want %d code %s", resp.StatusCode, body, tc.status, tc.code)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content-type %q", ct)
			}
			challenges := resp.Header.Values("WWW-Authenticate")
			switch {
			case tc.challenge == "" && challenges != nil:
				t.Errorf("WWW-Authenticate %q on a %d", challenges, tc.status)
			case tc.challenge != "" && (len(challenges) != 1 || !strings.HasPrefix(challenges[0], tc.challenge)):
				t.Errorf("WWW-Authenticate %q, want one starting %s", challenges, tc.challenge)
			}
			if retry := resp.Header.Values("Retry-After"); (tc.status == 429) != (len(retry) == 1) {
				t.Errorf("Retry-After %q on a %d", retry, tc.status)
			}
			if v := resp.Header.Get("X-Tollgate-Error"); v != "" {
				t.Errorf("the client got X-Tollgate-Error %q", v)
			}
		})
	}

	// Every allowed request above, and the rate-limit warm-up, and no
	// other: none of the spoofed targets was let through.
	allows := 0.0
	for _, api := range []string{"petstore-v1", "petstore-jwt", "limited"} {
		allows += max(tg.Metric("tollgate_decisions_total", "api", api, "decision", "allow"), 0)
	}
	if want := float64(len(allowed) + 1); allows != want {
		t.Errorf("allow decisions = %v, want %v", allows, want)
	}
}

// proxyDenial is a request the proxy must refuse with Tollgate's answer.
type proxyDenial struct {
	name      string
	method    string
	path      string
	headers   map[string][]string
	warmUp    int // allowed requests to send first
	status    int
	code      string
	challenge string // WWW-Authenticate prefix; "" for none
}

func merge(maps ...map[string][]string) map[string][]string {
	out := map[string][]string{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func TestNginxAuthRequest(t *testing.T) {
	tg := startProxyTollgate(t, "nginx", "x-real-ip")
	backend := newRecordingBackend(t)
	base := startNginx(t, tg.addrs["http"], backend.Addr())
	testProxyExample(t, tg, backend, base)
}
