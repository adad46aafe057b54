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

// startNginx runs nginx with the shipped example server block
// (examples/nginx/tollgate.conf), pointed at the given Tollgate HTTP front
// end and backend, on a free port. It returns nginx's base URL.
func startNginx(t *testing.T, tollgateAddr, backendAddr string) string {
	t.Helper()
	bin := nginxBin(t)
	dir := t.TempDir()
	example, err := os.ReadFile("../examples/nginx/tollgate.conf")
	if err != nil {
		t.Fatal(err)
	}
	listen := freePort(t)
	server := strings.NewReplacer(
		"server 127.0.0.1:8082;", "server "+tollgateAddr+";",
		"server 127.0.0.1:9000;", "server "+backendAddr+";",
		"listen 127.0.0.1:8080;", "listen "+listen+";",
	).Replace(string(example))
	for _, want := range []string{tollgateAddr, backendAddr, listen} {
		if !strings.Contains(server, want) {
			t.Fatalf("the example nginx config no longer has the address placeholders (%s)", want)
		}
	}
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
	out, err := os.Create(filepath.Join(dir, "stderr.log"))
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
	waitFor(t, "nginx to listen", 10*time.Second, func() bool {
		select {
		case <-exited:
			logs, _ := os.ReadFile(filepath.Join(dir, "stderr.log"))
			errs, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited:\n%s\n%s", logs, errs)
		default:
		}
		c, err := net.Dial("tcp", listen)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return "http://" + listen
}

// recordingBackend is the API's upstream: it records the headers of every
// request that reaches it.
type recordingBackend struct {
	mu       sync.Mutex
	requests []http.Header
	*httptest.Server
}

func newRecordingBackend(t *testing.T) *recordingBackend {
	b := &recordingBackend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.requests = append(b.requests, r.Header.Clone())
		b.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"pets":[]}`)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *recordingBackend) Count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.requests)
}

func (b *recordingBackend) Last() http.Header {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.requests[len(b.requests)-1]
}

func TestNginxAuthRequest(t *testing.T) {
	e := startEnforcer(t, petstoreConfig)
	backend := newRecordingBackend(t)
	base := startNginx(t, e.addrs["http"], strings.TrimPrefix(backend.URL, "http://"))

	do := func(method, path string, headers map[string]string) (*http.Response, string) {
		req, _ := http.NewRequest(method, base+path, nil)
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}

	t.Run("allowed requests reach the backend with identity and without the key", func(t *testing.T) {
		before := backend.Count()
		resp, body := do("GET", "/petstore/v1/pets", map[string]string{
			"apikey": keyMobile, "X-Consumer-Id": "eve", "X-Authenticated-Userid": "eve",
		})
		if resp.StatusCode != 200 || body != `{"pets":[]}` || backend.Count() != before+1 {
			t.Fatalf("status %d body %q, backend calls %d", resp.StatusCode, body, backend.Count()-before)
		}
		h := backend.Last()
		if h.Get("X-Consumer-Id") != "mobile" || h.Get("X-Consumer-Name") != "Mobile app" ||
			h.Get("X-Authenticated-Userid") != "alice" || h.Get("X-Credential-Type") != "apiKey" ||
			h.Get("X-Authenticated-Scope") != "pets:write" {
			t.Errorf("backend saw identity %v", h)
		}
		if _, ok := h["Apikey"]; ok {
			t.Errorf("backend received the API key header")
		}
	})

	t.Run("a public operation drops client-sent identity headers", func(t *testing.T) {
		resp, _ := do("GET", "/petstore/v1/health", map[string]string{"X-Consumer-Id": "eve", "X-Credential-Type": "jwt"})
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if h := backend.Last(); h.Get("X-Consumer-Id") != "" || h.Get("X-Credential-Type") != "" {
			t.Errorf("backend saw spoofed identity %v", h)
		}
	})

	denials := []struct {
		name    string
		method  string
		path    string
		headers map[string]string
		status  int
		code    string
	}{
		{"no key", "GET", "/petstore/v1/pets", nil, 401, "900902"},
		{"wrong key", "GET", "/petstore/v1/pets", map[string]string{"apikey": "tgk_wrong"}, 401, "900901"},
		{"blocked subscription", "GET", "/petstore/v1/pets", map[string]string{"apikey": keyPartner}, 401, "900907"},
		{"not subscribed", "GET", "/petstore/v1/pets", map[string]string{"apikey": keyNoSub}, 403, "900908"},
		{"missing scope", "DELETE", "/petstore/v1/pets/1", map[string]string{"apikey": keyRO}, 403, "900910"},
		{"no such API", "GET", "/unknown", map[string]string{"apikey": keyMobile}, 404, "404"},
	}
	for _, tc := range denials {
		t.Run("denied: "+tc.name, func(t *testing.T) {
			before := backend.Count()
			resp, body := do(tc.method, tc.path, tc.headers)
			var parsed map[string]string
			if err := json.Unmarshal([]byte(body), &parsed); err != nil {
				t.Fatalf("status %d, body %q is not JSON: %v", resp.StatusCode, body, err)
			}
			if resp.StatusCode != tc.status || parsed["code"] != tc.code || parsed["error_message"] == "" {
				t.Fatalf("got %d %q, want %d code %s", resp.StatusCode, body, tc.status, tc.code)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content-type %q", ct)
			}
			if tc.code == "900902" && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "APIKey") {
				t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
			}
			if backend.Count() != before {
				t.Errorf("a denied request reached the backend")
			}
		})
	}

	// nginx passed the client address in X-Real-IP and Tollgate trusted it
	// because nginx connects from 127.0.0.1 (clientIp.trustedProxies).
	if v := e.Metric("tollgate_decisions_total", "api", "petstore-v1", "decision", "allow"); v != 2 {
		t.Errorf("allow decisions = %v, want 2", v)
	}
}
