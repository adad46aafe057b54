package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/internal/keys"
)

const keyNew = "tgk_e2e_added_later"

// withNewKey is petstoreConfig with one more key for the mobile app.
var withNewKey = petstoreConfig + "  - {application: mobile, name: later, sha256: " + sha(keyNew) + "}\n"

// httpStatus calls the HTTP front end (Envoy shape) and returns the status.
func httpStatus(t *testing.T, e *enforcer, key string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", e.HTTPURL()+"/petstore/v1/pets", nil)
	req.Header.Set("apikey", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	// Write and rename, as editors and config management tools do.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestReloadOnFileChange(t *testing.T) {
	e := startEnforcer(t, petstoreConfig)
	if got := httpStatus(t, e, keyNew); got != 401 {
		t.Fatalf("new key before reload: %d", got)
	}

	writeFile(t, e.ConfigPath, listenAnyPort+withNewKey)
	waitFor(t, "the new key to work", 10*time.Second, func() bool { return httpStatus(t, e, keyNew) == 200 })
	if v := e.Metric("tollgate_config_reloads_total", "result", "success"); v != 1 {
		t.Errorf("successful reloads = %v, want 1", v)
	}

	// A broken file is rejected and the running config stays.
	writeFile(t, e.ConfigPath, listenAnyPort+withNewKey+"\nunexpected: key\n")
	waitFor(t, "the failed reload to be counted", 10*time.Second, func() bool {
		return e.Metric("tollgate_config_reloads_total", "result", "failure") == 1
	})
	if got := httpStatus(t, e, keyNew); got != 200 {
		t.Errorf("after a failed reload the new key gets %d, want 200", got)
	}
	if !e.hasLog("config reload failed; keeping the running config") {
		t.Error("the failed reload was not logged")
	}
	if !strings.Contains(e.Logs(), `unexpected (line`) {
		t.Error("the log does not say which key was wrong")
	}
}

func TestReloadOnSIGHUP(t *testing.T) {
	e := startEnforcer(t, petstoreConfig)
	for i := 1; i <= 2; i++ {
		if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		// SIGHUP reloads even an unchanged file; the file watch would not.
		waitFor(t, "the SIGHUP reload", 10*time.Second, func() bool {
			return e.Metric("tollgate_config_reloads_total", "result", "success") == float64(i)
		})
	}
	if got := httpStatus(t, e, keyMobile); got != 200 {
		t.Fatalf("after SIGHUP: %d", got)
	}
}

// TestReloadConfigMapSwap performs the update a Kubernetes ConfigMap
// volume makes: the file is a symlink through ..data, and an update points
// ..data at a new timestamped directory with one atomic rename.
func TestReloadConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	version := func(name, content string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "config.yaml"), []byte(listenAnyPort+content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	version("..2026_11_25_10_00_00.000000001", petstoreConfig)
	must(t, os.Symlink("..2026_11_25_10_00_00.000000001", filepath.Join(dir, "..data")))
	must(t, os.Symlink("..data/config.yaml", filepath.Join(dir, "config.yaml")))

	e := startEnforcerAt(t, filepath.Join(dir, "config.yaml"))
	if got := httpStatus(t, e, keyNew); got != 401 {
		t.Fatalf("new key before the update: %d", got)
	}

	version("..2026_11_25_10_05_00.000000002", withNewKey)
	must(t, os.Symlink("..2026_11_25_10_05_00.000000002", filepath.Join(dir, "..data_tmp")))
	must(t, os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
	must(t, os.RemoveAll(filepath.Join(dir, "..2026_11_25_10_00_00.000000001")))

	waitFor(t, "the ConfigMap update to apply", 10*time.Second, func() bool { return httpStatus(t, e, keyNew) == 200 })
	if v := e.Metric("tollgate_config_reloads_total", "result", "success"); v != 1 {
		t.Errorf("successful reloads = %v, want 1", v)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestGracefulShutdown holds a gRPC check in flight across SIGTERM: the
// request's headers and half its message are sent, then SIGTERM; the
// enforcer reports not-ready, still answers the check once the rest
// arrives, and then exits 0. The check is driven frame by frame over
// HTTP/2 so that it is genuinely unfinished when the signal lands.
func TestGracefulShutdown(t *testing.T) {
	e := startEnforcer(t, petstoreConfig)
	msg, err := proto.Marshal(check("GET", "/petstore/v1/pets", map[string]string{"apikey": keyMobile}, nil))
	if err != nil {
		t.Fatal(err)
	}
	// gRPC message framing: uncompressed flag, 4-byte length, message.
	body := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(msg)))
	body = append(body, msg...)
	half := len(body) / 2

	c := dialH2(t, e.addrs["grpc"])
	c.headers(1, ":method", "POST", ":scheme", "http", ":path", "/envoy.service.auth.v3.Authorization/Check",
		":authority", e.addrs["grpc"], "content-type", "application/grpc", "te", "trailers")
	c.write(func() error { return c.fr.WriteData(1, false, body[:half]) })
	// The server reads frames in order: once it answers a ping sent after
	// them, the stream exists on its side and counts as in flight.
	c.ping()

	must(t, e.cmd.Process.Signal(syscall.SIGTERM))
	waitFor(t, "readyz to report not ready", 10*time.Second, func() bool {
		resp, err := http.Get(e.AdminURL() + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	select {
	case <-e.done:
		t.Fatal("the enforcer exited with a check in flight")
	default:
	}

	c.write(func() error { return c.fr.WriteData(1, true, body[half:]) })
	status, data := c.response(1)
	if status != "0" {
		t.Fatalf("in-flight check ended with grpc-status %q", status)
	}
	var resp authv3.CheckResponse
	if len(data) < 5 || proto.Unmarshal(data[5:], &resp) != nil || resp.GetOkResponse() == nil {
		t.Fatalf("in-flight check answered %v", &resp)
	}

	select {
	case <-e.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the enforcer did not exit after draining")
	}
	if e.err != nil {
		t.Fatalf("exit: %v", e.err)
	}
	if !e.hasLog("stopped") {
		t.Error("no 'stopped' log line")
	}
}

// h2conn is a bare HTTP/2 client connection, for driving a gRPC call one
// frame at a time.
type h2conn struct {
	t      *testing.T
	mu     sync.Mutex // the framer's writes are not safe for concurrent use
	fr     *http2.Framer
	frames chan h2frame
	enc    *hpack.Encoder
	encBuf bytes.Buffer
}

func dialH2(t *testing.T, addr string) *h2conn {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_, err = io.WriteString(conn, http2.ClientPreface)
	must(t, err)
	c := &h2conn{t: t, fr: http2.NewFramer(conn, conn), frames: make(chan h2frame, 64)}
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.enc = hpack.NewEncoder(&c.encBuf)
	c.write(func() error { return c.fr.WriteSettings() })
	go func() {
		defer close(c.frames)
		for {
			f, err := c.fr.ReadFrame()
			if err != nil {
				return
			}
			if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
				c.mu.Lock()
				_ = c.fr.WriteSettingsAck()
				c.mu.Unlock()
				continue
			}
			if p, ok := f.(*http2.PingFrame); ok && !p.IsAck() {
				c.mu.Lock()
				_ = c.fr.WritePing(true, p.Data)
				c.mu.Unlock()
				continue
			}
			c.frames <- copyFrame(f)
		}
	}()
	return c
}

func (c *h2conn) headers(stream uint32, kv ...string) {
	c.encBuf.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		must(c.t, c.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]}))
	}
	c.write(func() error {
		return c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: c.encBuf.Bytes(), EndHeaders: true})
	})
}

// write runs one framer write under the lock.
func (c *h2conn) write(fn func() error) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	must(c.t, fn())
}

// h2frame is what the test needs of a received frame; the framer reuses
// its frames, so they are copied out.
type h2frame struct {
	stream     uint32
	endStream  bool
	status     string // :status
	grpcStatus string
	data       []byte
	reset      bool
	pingAck    bool
}

func copyFrame(f http2.Frame) h2frame {
	out := h2frame{stream: f.Header().StreamID, endStream: f.Header().Flags.Has(http2.FlagDataEndStream)}
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		out.status = f.PseudoValue("status")
		for _, hf := range f.RegularFields() {
			if hf.Name == "grpc-status" {
				out.grpcStatus = hf.Value
			}
		}
	case *http2.DataFrame:
		out.data = bytes.Clone(f.Data())
	case *http2.RSTStreamFrame:
		out.reset = true
	case *http2.PingFrame:
		out.pingAck = f.IsAck()
	}
	return out
}

// ping sends a PING and waits for its acknowledgement.
func (c *h2conn) ping() {
	c.t.Helper()
	c.write(func() error { return c.fr.WritePing(false, [8]byte{'t', 'o', 'l', 'l', 'g', 'a', 't', 'e'}) })
	timeout := time.After(10 * time.Second)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				c.t.Fatal("connection closed before the ping was answered")
			}
			if f.pingAck {
				return
			}
		case <-timeout:
			c.t.Fatal("ping not answered")
		}
	}
}

// response reads the stream's frames until it ends and returns grpc-status
// and the response body.
func (c *h2conn) response(stream uint32) (status string, data []byte) {
	timeout := time.After(20 * time.Second)
	for {
		select {
		case f, ok := <-c.frames:
			switch {
			case !ok:
				c.t.Fatalf("connection closed before the response ended (status %q)", status)
			case f.stream != stream:
				continue
			case f.reset:
				c.t.Fatal("stream reset")
			case f.status != "" && f.status != "200":
				c.t.Fatalf(":status %s", f.status)
			}
			if f.grpcStatus != "" {
				status = f.grpcStatus
			}
			data = append(data, f.data...)
			if f.endStream {
				return status, data
			}
		case <-timeout:
			c.t.Fatal("no response")
		}
	}
}

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	must(t, os.WriteFile(good, []byte(petstoreConfig), 0o600))
	must(t, os.WriteFile(bad, []byte(`
apis:
  - id: a
    basePath: /a
    security: [apiKey]
    operations: [{path: "/x/{id", methods: [GET]}]
    colour: blue
subscriptions: [{application: ghost, api: a, state: active}]
`), 0o600))

	t.Run("validate accepts a good file", func(t *testing.T) {
		code, out, _ := runCommand(t, nil, "validate", "--config", good)
		if code != 0 || !strings.Contains(out, "ok (1 API, 3 applications, 4 API keys, 0 issuers)") {
			t.Fatalf("exit %d, %q", code, out)
		}
	})
	t.Run("validate reports every problem with its path", func(t *testing.T) {
		code, _, errOut := runCommand(t, nil, "validate", "--config", bad)
		if code != 1 {
			t.Fatalf("exit %d", code)
		}
		for _, want := range []string{
			"apis[0].operations[0].path (line 6)", "unbalanced",
			"apis[0].colour (line 7)", "unknown key",
			"subscriptions[0].application", `unknown application "ghost"`,
		} {
			if !strings.Contains(errOut, want) {
				t.Errorf("output lacks %q:\n%s", want, errOut)
			}
		}
	})
	t.Run("TOLLGATE_CONFIG is the default", func(t *testing.T) {
		code, out, _ := runCommand(t, []string{"TOLLGATE_CONFIG=" + good}, "validate")
		if code != 0 || !strings.Contains(out, "ok") {
			t.Fatalf("exit %d, %q", code, out)
		}
	})
	t.Run("serve refuses an invalid file", func(t *testing.T) {
		code, _, errOut := runCommand(t, nil, "serve", "--config", bad)
		if code != 1 || !strings.Contains(errOut, "unknown key") {
			t.Fatalf("exit %d, %q", code, errOut)
		}
	})
	t.Run("keys new", func(t *testing.T) {
		code, out, _ := runCommand(t, nil, "keys", "new")
		m := regexp.MustCompile(`^id:\s+([0-9a-z]{12})\nkey:\s+(tg_[0-9a-z]{12}_[0-9A-Za-z]{38})\nsha256: ([0-9a-f]{64})\n`).FindStringSubmatch(out)
		if code != 0 || m == nil {
			t.Fatalf("exit %d, output %q", code, out)
		}
		id, key, hash := m[1], m[2], m[3]
		if parsed, _, ok := keys.ParseKey(key); !ok || parsed != id {
			t.Fatalf("key %q does not parse, or not as id %q", key, id)
		}
		sum := sha256.Sum256([]byte(key))
		if hex.EncodeToString(sum[:]) != hash {
			t.Fatalf("printed hash does not match the key")
		}
		if hint := "{application: <app-id>, name: <label>, id: " + id + ", sha256: " + hash + "}"; !strings.Contains(out, hint) {
			t.Errorf("output lacks the config line %q:\n%s", hint, out)
		}
		_, again, _ := runCommand(t, nil, "keys", "new")
		if strings.Contains(again, key) || strings.Contains(again, id) {
			t.Fatal("two keys share a key or an id")
		}
	})
	t.Run("keys jwks publishes the bundled test key's public half", func(t *testing.T) {
		code, out, errOut := runCommand(t, nil, "keys", "jwks", "--key", "../examples/keys/test-issuer.key")
		bundled, err := os.ReadFile("../examples/keys/test-issuer.jwks.json")
		must(t, err)
		if code != 0 || out != string(bundled) {
			t.Fatalf("exit %d (%s): %q, want the bundled %q", code, errOut, out, bundled)
		}
	})
	t.Run("token needs a key and an issuer", func(t *testing.T) {
		if code, _, _ := runCommand(t, nil, "token", "--issuer", "x"); code != 2 {
			t.Fatalf("exit %d, want 2", code)
		}
	})
	t.Run("version", func(t *testing.T) {
		code, out, _ := runCommand(t, nil, "version")
		if code != 0 || !strings.HasPrefix(out, "tollgate enforcer ") {
			t.Fatalf("exit %d, %q", code, out)
		}
	})
	t.Run("unknown command", func(t *testing.T) {
		if code, _, _ := runCommand(t, nil, "frobnicate"); code != 2 {
			t.Fatalf("exit %d, want 2", code)
		}
	})
}

// TestSIGTERMDuringReload sends SIGTERM while a SIGHUP reload of a large
// config is compiling: draining must start at once, not after the reload
// (Kubernetes kills a pod that ignores SIGTERM for its grace period).
func TestSIGTERMDuringReload(t *testing.T) {
	var b strings.Builder
	b.WriteString(petstoreConfig)
	for i := range 150_000 {
		sum := sha256.Sum256([]byte("tgk_bulk_" + strconv.Itoa(i)))
		b.WriteString("  - {application: mobile, sha256: " + hex.EncodeToString(sum[:]) + "}\n")
	}
	e := startEnforcer(t, b.String())
	must(t, e.cmd.Process.Signal(syscall.SIGHUP))
	waitFor(t, "the SIGHUP reload to start", 10*time.Second, func() bool { return e.hasLog("SIGHUP: reloading config") })
	must(t, e.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-e.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the enforcer did not exit after SIGTERM")
	}
	order := e.logOrder("shutting down", "config reloaded")
	if order["shutting down"] < 0 {
		t.Fatal("no 'shutting down' log line")
	}
	if r := order["config reloaded"]; r >= 0 && r < order["shutting down"] {
		t.Errorf("the reload finished before draining began: SIGTERM waited for it")
	}
}
