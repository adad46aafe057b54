package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"
)

// Keys of the policy tests besides keyMobile.
const keyItemsAdmin = "tgk_e2e_items_admin_key" // scope admin

// startPolicyTollgate runs Tollgate in the nginx shape with an API whose
// request and response policies use the header names of the nginx
// example (x-env, x-debug, x-old to x-new, x-served-by), and CORS for
// origin: items allows it without credentials, accounts with them.
func startPolicyTollgate(t *testing.T, origin string) *enforcer {
	t.Helper()
	return startEnforcer(t, `
httpFrontEnd: {shape: nginx}
clientIp: {header: x-real-ip, trustedProxies: [127.0.0.1]}
apis:
  - id: items
    basePath: /items/v1
    security: [apiKey]
    apiKey: {header: apikey, query: apikey}
    policies:
      request: [{setHeader: {name: x-env, value: prod}}, {removeHeader: {name: x-debug}}]
      response: [{setHeader: {name: x-served-by, value: tollgate}}]
      rules: [{expr: "request.method != 'DELETE' || 'admin' in identity.scopes"}]
    cors: {allowOrigins: [`+origin+`], allowMethods: [GET, POST, DELETE], allowHeaders: [apikey, content-type],
      allowCredentials: false, maxAge: 10m, exposeHeaders: [x-served-by]}
    operations:
      - {path: /items, methods: [GET, POST, DELETE]}
      - path: "/items/{id}"
        methods: [GET]
        policies:
          request: [{renameHeader: {from: x-old, to: x-new}}, {addQuery: {name: src, value: gw}}, {removeQuery: {name: debug}},
            {rewritePath: "/v2/things/{id}"}, {rewriteMethod: POST}]
  - id: accounts
    basePath: /accounts/v1
    security: [apiKey]
    policies:
      response: [{setHeader: {name: x-served-by, value: tollgate}}]
    cors: {allowOrigins: [`+origin+`], allowMethods: [GET], allowHeaders: [apikey], allowCredentials: true, exposeHeaders: [x-served-by]}
    operations:
      - {path: /me, methods: [GET]}
applications:
  - {id: mobile, name: Mobile app, owner: alice}
subscriptions:
  - {application: mobile, api: items, state: active}
  - {application: mobile, api: accounts, state: active}
apiKeys:
  - {application: mobile, name: ci, sha256: `+sha(keyMobile)+`}
  - {application: mobile, name: admin, sha256: `+sha(keyItemsAdmin)+`, scopes: [admin]}
`)
}

// send makes one request through the proxy at base and returns the
// response with its body read.
func send(t *testing.T, method, url string, headers map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	must(t, err)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// TestNginxPolicies: behind the shipped nginx example, the request
// policies' changes arrive at the backend (headers set, removed and
// renamed, query parameters added and removed with the API key's among
// them, the path rewritten with the operation's variable, the method
// rewritten), the response policies' and CORS headers reach the client,
// a rule's denial carries the CORS headers, and preflights are answered by
// nginx on Tollgate's word without reaching the backend.
func TestNginxPolicies(t *testing.T) {
	const origin = "http://app.example"
	tg := startPolicyTollgate(t, origin)
	backend := newRecordingBackend(t)
	base := startNginx(t, tg.addrs["http"], backend.Addr())

	allowed := []struct {
		name    string
		method  string
		path    string
		headers map[string]string
		// What the backend must get; absent: headers it must not get.
		wantMethod, wantURI string
		wantHeaders         map[string]string
		absent              []string
	}{
		{
			name:   "every request policy",
			method: "GET", path: "/items/v1/items/42?apikey=" + keyMobile + "&debug=1&keep=a%20b",
			headers:    map[string]string{"X-Old": "old-value", "X-Debug": "1", "X-Env": "client", "X-New": "client", "Origin": origin},
			wantMethod: "POST", wantURI: "/v2/things/42?keep=a%20b&src=gw",
			wantHeaders: map[string]string{"X-Env": "prod", "X-New": "old-value", "X-Consumer-Id": "mobile"},
			absent:      []string{"X-Old", "X-Debug", "Apikey"},
		},
		{
			name:   "the API key's query parameter, without query policies",
			method: "GET", path: "/items/v1/items?keep=1&apikey=" + keyMobile,
			headers:    map[string]string{"X-Debug": "1", "Origin": origin},
			wantMethod: "GET", wantURI: "/items/v1/items?keep=1",
			wantHeaders: map[string]string{"X-Env": "prod", "X-Consumer-Id": "mobile"},
			absent:      []string{"X-Debug", "Apikey", "X-New"},
		},
		{
			name:   "nothing to rewrite: the client's URI and method",
			method: "DELETE", path: "/items/v1/items?keep=%2Fa",
			headers:    map[string]string{"apikey": keyItemsAdmin, "X-Old": "old-value", "Origin": origin},
			wantMethod: "DELETE", wantURI: "/items/v1/items?keep=%2Fa",
			wantHeaders: map[string]string{"X-Env": "prod", "X-Authenticated-Scope": "admin"},
			// The example removes x-old for every API and operation.
			absent: []string{"X-Old", "X-New", "Apikey"},
		},
	}
	for _, tc := range allowed {
		t.Run("allowed: "+tc.name, func(t *testing.T) {
			before := backend.Count()
			resp, body := send(t, tc.method, base+tc.path, tc.headers)
			if resp.StatusCode != 200 || body != `{"pets":[]}` || backend.Count() != before+1 {
				t.Fatalf("status %d body %q, backend calls %d", resp.StatusCode, body, backend.Count()-before)
			}
			got := backend.Last()
			if got.Method != tc.wantMethod || got.URI != tc.wantURI {
				t.Errorf("backend got %s %s, want %s %s", got.Method, got.URI, tc.wantMethod, tc.wantURI)
			}
			for name, want := range tc.wantHeaders {
				if vs := got.Header.Values(name); len(vs) != 1 || vs[0] != want {
					t.Errorf("backend saw %s = %q, want %q", name, vs, want)
				}
			}
			for _, name := range tc.absent {
				if vs := got.Header.Values(name); vs != nil {
					t.Errorf("backend saw %s = %q", name, vs)
				}
			}
			for _, name := range []string{"X-Tollgate-Upstream-Uri", "X-Tollgate-Upstream-Method"} {
				if vs := got.Header.Values(name); vs != nil {
					t.Errorf("backend saw %s = %q", name, vs)
				}
			}
			// The client's response: the response policy and CORS.
			for name, want := range map[string]string{
				"X-Served-By": "tollgate", "Access-Control-Allow-Origin": origin,
				"Access-Control-Expose-Headers": "x-served-by", "Vary": "Origin",
			} {
				if vs := resp.Header.Values(name); len(vs) != 1 || vs[0] != want {
					t.Errorf("client got %s = %q, want %q", name, vs, want)
				}
			}
			for _, name := range []string{"Access-Control-Allow-Credentials", "Access-Control-Allow-Methods", "X-Tollgate-Upstream-Uri", "X-Env"} {
				if vs := resp.Header.Values(name); vs != nil {
					t.Errorf("client got %s = %q", name, vs)
				}
			}
		})
	}

	t.Run("no origin, no CORS headers", func(t *testing.T) {
		resp, _ := send(t, "GET", base+"/items/v1/items", map[string]string{"apikey": keyMobile})
		if resp.StatusCode != 200 || resp.Header.Get("X-Served-By") != "tollgate" {
			t.Fatalf("%d %v", resp.StatusCode, resp.Header)
		}
		for _, name := range []string{"Access-Control-Allow-Origin", "Access-Control-Expose-Headers", "Vary"} {
			if vs := resp.Header.Values(name); vs != nil {
				t.Errorf("client got %s = %q", name, vs)
			}
		}
	})

	denials := []struct {
		name    string
		method  string
		path    string
		headers map[string]string
		status  int
		code    string
		acao    string // Access-Control-Allow-Origin the client must get
	}{
		{"a rule: DELETE needs the admin scope", "DELETE", "/items/v1/items", map[string]string{"apikey": keyMobile, "Origin": origin}, 403, "900910", origin},
		{"no key, from the allowed origin", "GET", "/items/v1/items/1", map[string]string{"Origin": origin}, 401, "900902", origin},
		{"no key, from another origin", "GET", "/items/v1/items/1", map[string]string{"Origin": "http://evil.example"}, 401, "900902", ""},
		{"preflight from another origin", "OPTIONS", "/items/v1/items", map[string]string{
			"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}, 403, "900920", ""},
		{"preflight asking for a header not allowed", "OPTIONS", "/items/v1/items", map[string]string{
			"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-secret"}, 403, "900920", ""},
	}
	for _, tc := range denials {
		t.Run("denied: "+tc.name, func(t *testing.T) {
			before := backend.Count()
			resp, body := send(t, tc.method, base+tc.path, tc.headers)
			if backend.Count() != before {
				t.Fatalf("a denied request reached the backend: %+v", backend.Last())
			}
			var parsed map[string]string
			if err := json.Unmarshal([]byte(body), &parsed); err != nil || resp.StatusCode != tc.status || parsed["code"] != tc.code {
				t.Fatalf("got %d %q, want %d code %s", resp.StatusCode, body, tc.status, tc.code)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tc.acao {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", got, tc.acao)
			}
			if v := resp.Header.Get("X-Tollgate-Preflight"); v != "" {
				t.Errorf("the client got X-Tollgate-Preflight %q", v)
			}
		})
	}

	preflights := []struct {
		name, path, origin, method, headers string
		want                                map[string]string
	}{
		{"without credentials", "/items/v1/items", origin, "POST", "apikey, content-type", map[string]string{
			"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Methods": "GET, POST, DELETE",
			"Access-Control-Allow-Headers": "apikey, content-type", "Access-Control-Max-Age": "600",
			"Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
		}},
		{"of an operation with a rewrite", "/items/v1/items/42", origin, "GET", "apikey", map[string]string{
			"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Methods": "GET, POST, DELETE",
		}},
		{"with credentials", "/accounts/v1/me", origin, "GET", "apikey", map[string]string{
			"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true",
			"Access-Control-Allow-Methods": "GET", "Access-Control-Allow-Headers": "apikey",
		}},
	}
	for _, tc := range preflights {
		t.Run("preflight "+tc.name, func(t *testing.T) {
			before := backend.Count()
			resp, body := send(t, "OPTIONS", base+tc.path, map[string]string{
				"Origin": tc.origin, "Access-Control-Request-Method": tc.method, "Access-Control-Request-Headers": tc.headers,
			})
			if resp.StatusCode != 204 || body != "" || backend.Count() != before {
				t.Fatalf("%d %q %v, backend calls %d", resp.StatusCode, body, resp.Header, backend.Count()-before)
			}
			for name, want := range tc.want {
				if vs := resp.Header.Values(name); len(vs) != 1 || vs[0] != want {
					t.Errorf("%s = %q, want %q", name, vs, want)
				}
			}
			if tc.want["Access-Control-Allow-Credentials"] == "" && resp.Header.Get("Access-Control-Allow-Credentials") != "" {
				t.Errorf("Access-Control-Allow-Credentials on a preflight of an API without credentials")
			}
			for _, name := range []string{"X-Tollgate-Preflight", "X-Tollgate-Error", "Content-Type"} {
				if vs := resp.Header.Values(name); vs != nil {
					t.Errorf("the client got %s %q", name, vs)
				}
			}
		})
	}
	// Each preflight was Tollgate's decision, made without a credential.
	waitFor(t, "the preflight decisions in the log", 10*time.Second, func() bool {
		return tg.countLogs("decision", "method", "OPTIONS", "code", "preflight", "credential", "") == len(preflights)
	})
	if n := tg.countLogs("decision", "method", "OPTIONS", "allowed", "true"); n != 0 {
		t.Errorf("%d OPTIONS requests allowed", n)
	}
	for _, r := range backend.all() {
		if r.Method == "OPTIONS" {
			t.Errorf("the backend got a preflight: %+v", r)
		}
	}
}

// all is every request the backend got, in order.
func (b *recordingBackend) all() []recordedRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]recordedRequest(nil), b.requests...)
}
