// Package testoidc runs a real OpenID provider for tests: node-oidc-provider,
// a certified OpenID Connect provider, with the clients and accounts of one
// test and a login form that checks passwords, on a free loopback port.
// The portal's sign-in tests use it with internal/testbrowser.
//
// The provider is provider/provider.mjs, run by Node.js (20.18 or later)
// with the npm packages that provider/package-lock.json pins;
// scripts/test-deps.sh installs them (npm ci) into provider/node_modules.
// Missing Node.js or packages are a test failure that says what to run; the
// test is skipped instead only when TOLLGATE_SKIP_OIDC is set.
//
// What the provider does:
//   - the authorization code flow only, with PKCE (S256) required of every
//     client; a client with a secret authenticates with HTTP Basic
//     (client_secret_basic) unless its AuthMethod says otherwise;
//   - the scopes of Scopes; the claims of the granted scopes (sub, name,
//     preferred_username, email, email_verified, roles) are in the ID token,
//     not only at the userinfo endpoint;
//   - a login page with the fields LoginField and PasswordField and the
//     button SubmitButton; a wrong login or password shows it again with
//     ErrorMessage; consent is given without asking;
//   - RP-initiated logout at the end_session_endpoint of its discovery
//     document: a page with LogoutButton ends the provider's session and
//     sends the browser to the client's post_logout_redirect_uri.
//
// State (sessions, codes, tokens) is in the provider's memory, and its
// signing key is made at each start.
//
// # Use
//
// The client's redirect URI names the relying party's address, so the
// relying party's port is chosen first (a listener, or a free port):
//
//	p := testoidc.Start(t, testoidc.Options{
//		Clients: []testoidc.Client{{ID: "portal", Secret: "portal-secret",
//			RedirectURIs: []string{portalURL + "/portal/auth/callback"}}},
//		Accounts: []testoidc.Account{{Subject: "u-1", Login: "alice", Password: "pw",
//			Email: "alice@example.com", Name: "Alice", Roles: []string{"portal-admin"}}},
//	})
//	// start the portal with issuer p.Issuer, client portal/portal-secret,
//	// scopes testoidc.Scopes
//	tab := testbrowser.New(t).NewTab(t)
//	tab.Navigate(portalURL + "/portal/")
//	tab.ClickNavigate("#sign-in")     // to the provider's login page
//	testoidc.SignIn(tab, "alice", "pw") // and back to the portal
//	tab.WaitLocation(portalURL + "/portal/")
package testoidc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testbrowser"
)

// Scopes are the scopes the provider supports; a relying party that asks for
// all of them gets every claim in the ID token.
var Scopes = []string{"openid", "profile", "email", "roles"}

// The login page's elements, as CSS selectors.
const (
	LoginField    = "#login"
	PasswordField = "#password"
	SubmitButton  = "button[type=submit]"
	ErrorMessage  = "#error"  // shown after a wrong login or password
	LogoutButton  = "#logout" // on the page of the end_session_endpoint
)

// Client is a relying party registered with the provider.
type Client struct {
	ID     string
	Secret string // empty: a public client (token_endpoint_auth_method "none")
	// AuthMethod is its token_endpoint_auth_method when it has a secret:
	// "client_secret_basic" (the default) or "client_secret_post".
	AuthMethod             string
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
}

// Account is a user who can sign in.
type Account struct {
	Subject  string // the sub claim
	Login    string // what the login form takes; also preferred_username
	Password string
	Email    string
	Name     string
	Roles    []string // the roles claim
}

// Options are what Start gives the provider.
type Options struct {
	Clients  []Client
	Accounts []Account
	// Host is the host name of the issuer URL, a name of 127.0.0.1 where
	// the provider listens: "localhost" by default. A relying party on
	// 127.0.0.1 is then another site to the browser, as it is in
	// production: cookies are not shared (they ignore ports) and
	// SameSite rules apply to the redirects between the two.
	Host string
}

// Provider is a running provider.
type Provider struct {
	// Issuer is the provider's issuer URL, http://HOST:PORT; its discovery
	// document is at Issuer + "/.well-known/openid-configuration".
	Issuer string

	cmd    *exec.Cmd
	stdin  io.Closer
	exited chan struct{}
	output *tail
	once   sync.Once
}

const startTimeout = 30 * time.Second

// Start runs a provider for the test, stopped at cleanup.
func Start(t testing.TB, opts Options) *Provider {
	t.Helper()
	if os.Getenv("TOLLGATE_SKIP_OIDC") != "" {
		t.Skip("TOLLGATE_SKIP_OIDC is set: skipping a test that needs the OpenID provider")
	}
	node, dir, err := installation()
	if err != nil {
		t.Fatal(err)
	}
	configPath := filepath.Join(t.TempDir(), "provider.json")
	if err := os.WriteFile(configPath, providerConfig(opts), 0o600); err != nil {
		t.Fatal(err)
	}

	p := &Provider{exited: make(chan struct{}), output: &tail{max: 16 << 10}}
	p.cmd = exec.Command(node, filepath.Join(dir, "provider.mjs"), configPath)
	p.cmd.Dir = dir
	p.cmd.Stderr = p.output
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := p.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdin = stdin
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("testoidc: starting the provider: %v", err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("testoidc: the provider's output:\n%s", p.output)
		}
	})

	// A line {"issuer": ...} says where it listens; the rest is its log.
	issuer := make(chan string, 1)
	go func() {
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			var ready struct{ Issuer string }
			if json.Unmarshal(scanner.Bytes(), &ready) == nil && ready.Issuer != "" {
				issuer <- ready.Issuer
				break
			}
			fmt.Fprintf(p.output, "%s\n", scanner.Bytes())
		}
		_, _ = io.Copy(p.output, stdout)
	}()
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	select {
	case p.Issuer = <-issuer:
	case <-p.exited:
		t.Fatalf("testoidc: the provider exited during its start:\n%s", p.output)
	case <-deadline.C:
		t.Fatalf("testoidc: the provider did not start within %v:\n%s", startTimeout, p.output)
	}
	if err := p.waitReady(deadline.C); err != nil {
		t.Fatalf("testoidc: %v\n%s", err, p.output)
	}
	return p
}

// waitReady polls the discovery document until it names the issuer.
func (p *Provider) waitReady(deadline <-chan time.Time) error {
	client := &http.Client{Timeout: time.Second}
	var last error
	for {
		last = p.discover(client)
		if last == nil {
			return nil
		}
		select {
		case <-p.exited:
			return errors.New("the provider exited during its start")
		case <-deadline:
			return fmt.Errorf("the provider at %s did not answer within %v: %v", p.Issuer, startTimeout, last)
		case <-time.After(20 * time.Millisecond): // polling, bounded by the deadline
		}
	}
}

func (p *Provider) discover(client *http.Client) error {
	resp, err := client.Get(p.Issuer + "/.well-known/openid-configuration")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var doc struct{ Issuer string }
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return fmt.Errorf("discovery: status %d: %v", resp.StatusCode, err)
	}
	if doc.Issuer != p.Issuer {
		return fmt.Errorf("discovery names issuer %q", doc.Issuer)
	}
	return nil
}

// Stop ends the provider and waits for it; it runs at cleanup, and a test
// calls it to see a relying party cope without its provider.
func (p *Provider) Stop() {
	p.once.Do(func() {
		// Closing its standard input ends it; killing it is for a
		// provider that does not.
		_ = p.stdin.Close()
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
}

// SignIn fills in the provider's login page, which the tab shows, and
// submits it; it returns when the page that follows (the relying party's, or
// the login page again with ErrorMessage) has loaded.
func SignIn(tab *testbrowser.Tab, login, password string) {
	tab.WaitVisible(LoginField)
	tab.SetValue(LoginField, login)
	tab.SetValue(PasswordField, password)
	tab.ClickNavigate(SubmitButton)
}

// providerConfig is provider.mjs's configuration file.
func providerConfig(opts Options) []byte {
	type client struct {
		ID                     string   `json:"client_id"`
		Secret                 string   `json:"client_secret,omitempty"`
		AuthMethod             string   `json:"token_endpoint_auth_method,omitempty"`
		RedirectURIs           []string `json:"redirect_uris"`
		PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris"`
	}
	type account struct {
		Subject  string   `json:"subject"`
		Login    string   `json:"login"`
		Password string   `json:"password"`
		Email    string   `json:"email"`
		Name     string   `json:"name"`
		Roles    []string `json:"roles"`
	}
	cfg := struct {
		Host     string    `json:"host"`
		Clients  []client  `json:"clients"`
		Accounts []account `json:"accounts"`
	}{Host: opts.Host, Clients: []client{}, Accounts: []account{}}
	if cfg.Host == "" {
		cfg.Host = "localhost"
	}
	for _, c := range opts.Clients {
		cfg.Clients = append(cfg.Clients, client{c.ID, c.Secret, c.AuthMethod,
			nonNil(c.RedirectURIs), nonNil(c.PostLogoutRedirectURIs)})
	}
	for _, a := range opts.Accounts {
		cfg.Accounts = append(cfg.Accounts, account{a.Subject, a.Login, a.Password, a.Email, a.Name, nonNil(a.Roles)})
	}
	b, _ := json.Marshal(cfg) // strings and slices only: it cannot fail
	return b
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// installation finds node and the provider's directory, and checks that
// the pinned packages are installed.
func installation() (node, dir string, err error) {
	node, err = exec.LookPath("node")
	if err != nil {
		return "", "", errors.New("testoidc: node not found: the OpenID provider of the tests needs Node.js 20.18 or later " +
			"(set TOLLGATE_SKIP_OIDC=1 to skip these tests)")
	}
	if err := checkNodeVersion(node); err != nil {
		return "", "", err
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", "", errors.New("testoidc: cannot find the package's directory")
	}
	dir = filepath.Join(filepath.Dir(file), "provider")
	want, err := pinnedVersion(filepath.Join(dir, "package.json"))
	if err != nil {
		return "", "", err
	}
	installed, err := pinnedVersion(filepath.Join(dir, "node_modules", "oidc-provider", "package.json"))
	if err != nil || installed != want {
		return "", "", fmt.Errorf("testoidc: oidc-provider %s is not installed in %s (found %q): run scripts/test-deps.sh", want, dir, installed)
	}
	return node, dir, nil
}

// pinnedVersion reads the version of oidc-provider from the provider's
// package.json (its dependency) or from the installed package's.
func pinnedVersion(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var pkg struct {
		Version      string
		Dependencies map[string]string
	}
	if err := json.Unmarshal(b, &pkg); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if v, ok := pkg.Dependencies["oidc-provider"]; ok {
		return v, nil
	}
	return pkg.Version, nil
}

// checkNodeVersion wants 20.18 or later: oidc-provider 9 uses URL.parse.
func checkNodeVersion(node string) error {
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		return fmt.Errorf("testoidc: %s --version: %v", node, err)
	}
	v := strings.TrimSpace(string(out))
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) < 2 {
		return fmt.Errorf("testoidc: node version %q", v)
	}
	major, _ := strconv.Atoi(parts[0])
	minor, _ := strconv.Atoi(parts[1])
	if major < 20 || major == 20 && minor < 18 {
		return fmt.Errorf("testoidc: node %s is too old: the OpenID provider of the tests needs 20.18 or later", v)
	}
	return nil
}

// tail keeps the last max bytes of the provider's output.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (w *tail) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	if over := len(w.buf) - w.max; over > 0 {
		w.buf = w.buf[over:]
	}
	return len(b), nil
}

func (w *tail) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(bytes.TrimSpace(w.buf))
}
