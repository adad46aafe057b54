package e2e

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// caddyBin finds caddy; the test set-up (scripts/test-deps.sh) installs it.
func caddyBin(t *testing.T) string {
	t.Helper()
	if path, err := exec.LookPath("caddy"); err == nil {
		return path
	}
	t.Fatal("caddy not found: run scripts/test-deps.sh (installs caddy from Debian)")
	return ""
}

// traefikBin finds traefik on PATH or where scripts/traefik.sh builds it.
func traefikBin(t *testing.T) string {
	t.Helper()
	if path, err := exec.LookPath("traefik"); err == nil {
		return path
	}
	cached, err := filepath.Abs("../.cache/bin/traefik")
	must(t, err)
	if _, err := os.Stat(cached); err == nil {
		return cached
	}
	t.Fatal("traefik not found on PATH or in .cache/bin: run scripts/test-deps.sh (builds it with scripts/traefik.sh)")
	return ""
}

// proxyEnv keeps a proxy's home, data and config directories in dir.
func proxyEnv(dir string) []string {
	return append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
}

// startCaddy runs caddy with the shipped site block (examples/caddy/
// Caddyfile), pointed at the given Tollgate HTTP front end and backend, on a
// free port. It returns caddy's base URL.
func startCaddy(t *testing.T, tollgateAddr, backendAddr string) string {
	t.Helper()
	bin := caddyBin(t)
	dir := t.TempDir()
	listen := freePort(t)
	_, port, _ := strings.Cut(listen, ":")
	site := fillExample(t, "../examples/caddy/Caddyfile",
		"127.0.0.1:8082", tollgateAddr,
		"127.0.0.1:9000", backendAddr,
		"\n:8080 {", "\n:"+port+" {",
	)
	// No admin endpoint: it would listen on a fixed port.
	conf := "{\n\tadmin off\n}\n\n" + site
	path := filepath.Join(dir, "Caddyfile")
	must(t, os.WriteFile(path, []byte(conf), 0o600))
	cmd := exec.Command(bin, "run", "--config", path, "--adapter", "caddyfile")
	cmd.Dir, cmd.Env = dir, proxyEnv(dir)
	runProxy(t, "caddy", cmd, dir, func() bool { return listening(listen) })
	return "http://" + listen
}

// startTraefik runs traefik with the shipped static and dynamic configs
// (examples/traefik), pointed at the given Tollgate HTTP front end and
// backend, on a free port. It returns traefik's base URL.
func startTraefik(t *testing.T, tollgateAddr, backendAddr string) string {
	t.Helper()
	bin := traefikBin(t)
	dir := t.TempDir()
	listen := freePort(t)
	static := fillExample(t, "../examples/traefik/traefik.yml",
		`address: "127.0.0.1:8080"`, `address: "`+listen+`"`,
	)
	dynamic := fillExample(t, "../examples/traefik/dynamic.yml",
		`address: "http://127.0.0.1:8082/"`, `address: "http://`+tollgateAddr+`/"`,
		`url: "http://127.0.0.1:9000"`, `url: "http://`+backendAddr+`"`,
	)
	must(t, os.WriteFile(filepath.Join(dir, "dynamic.yml"), []byte(dynamic), 0o600))
	path := filepath.Join(dir, "traefik.yml")
	must(t, os.WriteFile(path, []byte(static), 0o600))
	cmd := exec.Command(bin, "--configFile="+path)
	// As the example says: run from the directory with dynamic.yml.
	cmd.Dir, cmd.Env = dir, proxyEnv(dir)
	// Traefik listens before it has read the dynamic config; until then it
	// answers 404 itself, in plain text. Tollgate's answer is JSON.
	runProxy(t, "traefik", cmd, dir, func() bool {
		resp, err := http.Get("http://" + listen + "/.tollgate-ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.Header.Get("Content-Type") == "application/json"
	})
	return "http://" + listen
}

func TestCaddyForwardAuth(t *testing.T) {
	tg := startProxyTollgate(t, "forwardAuth", "x-forwarded-for")
	backend := newRecordingBackend(t)
	base := startCaddy(t, tg.addrs["http"], backend.Addr())
	testProxyExample(t, tg, backend, base)
}

func TestTraefikForwardAuth(t *testing.T) {
	tg := startProxyTollgate(t, "forwardAuth", "x-forwarded-for")
	backend := newRecordingBackend(t)
	base := startTraefik(t, tg.addrs["http"], backend.Addr())
	testProxyExample(t, tg, backend, base)
}
