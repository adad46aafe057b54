package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tollgate/tollgate/internal/testbrowser"
	"github.com/tollgate/tollgate/internal/testoidc"
	"github.com/tollgate/tollgate/internal/testredis"
)

// portalSetup is a control plane with the portal on SQLite, an enforcer
// taking its resources from it, nginx in front of the enforcer and an
// upstream behind, and an OpenID provider.
type portalSetup struct {
	cp       *controlPlane
	replica  *enforcer
	gateway  string
	backend  *recordingBackend
	portal   string // http://127.0.0.1:PORT
	provider *testoidc.Provider
}

func hashPassword(t *testing.T, pw string) string {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func startPortalSetup(t *testing.T) *portalSetup {
	t.Helper()
	dir := t.TempDir()
	s := &portalSetup{backend: newRecordingBackend(t)}
	xdsAddr := fmt.Sprintf("127.0.0.1:%d", testredis.FreePort(t))
	apiAddr := fmt.Sprintf("127.0.0.1:%d", testredis.FreePort(t))
	s.portal = "http://" + apiAddr

	// The replica first (it waits for its control plane), then the
	// gateway in front of it, then the control plane that names both.
	replicaCfg := filepath.Join(t.TempDir(), "replica.yaml")
	cfg := listenAnyPort + fmt.Sprintf(`controlPlane: {address: %q, node: portal-replica, stateDir: %q, usage: {interval: 200ms}}
httpFrontEnd: {shape: nginx}
clientIp: {header: x-real-ip, trustedProxies: [127.0.0.1]}
`, xdsAddr, t.TempDir())
	if err := os.WriteFile(replicaCfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s.replica = startProcess(t, replicaCfg, []string{"serve", "--config", replicaCfg, "--log-level", "debug"}, "grpc", "http", "admin")
	s.gateway = startNginx(t, s.replica.addrs["http"], s.backend.Addr())

	s.provider = testoidc.Start(t, testoidc.Options{
		Clients: []testoidc.Client{{ID: "tollgate-portal", Secret: "portal-client-secret", RedirectURIs: []string{s.portal + "/portal/callback"}}},
		Accounts: []testoidc.Account{{Subject: "carol", Login: "carol", Password: "carol-idp-password", Email: "carol@example.com",
			Name: "Carol Example", Roles: []string{"developer"}}},
	})

	sum := sha256.Sum256([]byte(storeAdminToken))
	cpYAML := fmt.Sprintf(`listen: {xds: %q, api: %q}
source: {store: {sqlite: tollgate.db}}
auth: {tokens: [{name: ops, sha256: %s, role: admin}]}
portal:
  gatewayUrl: %q
  accounts:
    - {name: alice, role: developer, passwordHash: %q}
    - {name: pat, role: publisher, passwordHash: %q}
  oidc:
    issuer: %q
    clientId: tollgate-portal
    clientSecret: "${PORTAL_CLIENT_SECRET}"
    redirectUrl: %q
    scopes: [%s]
    name: Test IdP
`, xdsAddr, apiAddr, hex.EncodeToString(sum[:]), s.gateway, hashPassword(t, "alice-password"), hashPassword(t, "pat-password"),
		s.provider.Issuer, s.portal+"/portal/callback", strings.Join(testoidc.Scopes, ", "))
	path := filepath.Join(dir, "cp.yaml")
	if err := os.WriteFile(path, []byte(cpYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PORTAL_CLIENT_SECRET", "portal-client-secret")
	p := startProcess(t, path, []string{"controlplane", "--config", path, "--log-level", "debug"}, "xds", "api")
	p.waitReady("/readyz")
	s.cp = &controlPlane{enforcer: p, dir: dir, xdsAddr: xdsAddr}
	s.replica.waitReady("/readyz")

	admin(t, s.cp, "apis", "import", "--file", "../examples/store/petstore.openapi.yaml", "--publish")
	orders := filepath.Join(dir, "orders.yaml")
	if err := os.WriteFile(orders, []byte(`{id: orders, name: Orders, basePath: /orders, security: [apiKey], state: published, requiresApproval: true,
  description: "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\">Orders of the shop",
  operations: [{path: /orders, methods: [GET]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	admin(t, s.cp, "apis", "create", "--file", orders)
	return s
}

// signInLocal signs in on the portal's own form.
func signInLocal(tab *testbrowser.Tab, portal, name, password string) {
	tab.Navigate(portal + "/portal/login")
	tab.SetValue("#username", name)
	tab.SetValue("#password", password)
	tab.ClickNavigate("#login-submit")
}

// acceptConfirms answers yes to the portal's confirmation of destructive
// buttons on the page now shown.
func acceptConfirms(tab *testbrowser.Tab) { tab.Evaluate("window.confirm = () => true", nil) }

func noScriptRan(t *testing.T, tab *testbrowser.Tab) {
	t.Helper()
	var pwned any
	tab.Evaluate("window.__pwned === undefined ? null : window.__pwned", &pwned)
	if pwned != nil {
		t.Fatalf("markup from a name or description ran: %v", pwned)
	}
}

// allLabelled fails the test if a form field of the portal's own (not
// the API reference's) has no label.
func allLabelled(t *testing.T, tab *testbrowser.Tab, page string) {
	t.Helper()
	var unlabelled []string
	tab.Evaluate(`[...document.querySelectorAll("input:not([type=hidden]), select, textarea")]
		.filter(e => !e.closest("#reference") && !(e.labels && e.labels.length) && !e.getAttribute("aria-label"))
		.map(e => e.id || e.name)`, &unlabelled)
	if len(unlabelled) > 0 {
		t.Errorf("%s: fields without a label: %v", page, unlabelled)
	}
}

// fitsTheScreen fails the test if the page is wider than the window (a
// phone's): tables scroll inside themselves instead.
func fitsTheScreen(t *testing.T, tab *testbrowser.Tab, page string) {
	t.Helper()
	var wider bool
	tab.Evaluate("document.documentElement.scrollWidth > window.innerWidth + 1", &wider)
	if wider {
		t.Errorf("%s is wider than a phone's screen", page)
	}
}

// The developer portal in Chromium, against the real binaries: sign in
// with a local account and through OpenID Connect, create an
// application, subscribe, get a key, call the API with it through the
// gateway and see the call in the usage chart, revoke and see the call
// refused; a publisher approves a pending subscription. Markup in names
// and descriptions stays text, a cross-site form is refused, the cookie
// has its flags, and one developer never sees another's application.
func TestPortalInBrowser(t *testing.T) {
	s := startPortalSetup(t)
	alice := testbrowser.New(t).NewTab(t)

	// The catalog without signing in.
	alice.Navigate(s.portal + "/portal/")
	alice.WaitVisible(`[data-api="petstore-v1"]`)
	alice.Screenshot("catalog")
	if txt := alice.Text("#catalog"); !strings.Contains(txt, "Orders of the shop") || !strings.Contains(txt, "<script>") {
		t.Fatalf("the catalog does not show the description as text: %q", txt)
	}
	noScriptRan(t, alice)

	alice.Navigate(s.portal + "/portal/login")
	alice.Screenshot("login")
	signInLocal(alice, s.portal, "alice", "alice-password")
	if who := alice.Text("#signed-in-as"); who != "alice" {
		t.Fatalf("signed in as %q", who)
	}
	c, ok := alice.Cookie("tollgate_portal")
	if !ok || !c.HTTPOnly || c.SameSite != "Lax" || c.Secure {
		t.Fatalf("session cookie on plain loopback: %+v (want HttpOnly, SameSite=Lax, not Secure)", c)
	}

	// An application whose name holds script.
	alice.Navigate(s.portal + "/portal/applications")
	evilName := `<script>window.__pwned = 3</script>Shop`
	alice.SetValue("#app-name", evilName)
	alice.ClickNavigate("#create-app")
	if got := alice.Text("#app-title"); got != evilName {
		t.Fatalf("application title %q, want the name as text", got)
	}
	noScriptRan(t, alice)
	appURL := alice.Location()

	// The API page: reference rendered by Swagger UI, subscribe.
	alice.Navigate(s.portal + "/portal/apis/petstore-v1")
	alice.WaitVisible("#reference .opblock")
	alice.Screenshot("api")
	alice.ClickNavigate("#subscribe")
	if f := alice.Text("#flash"); f != "Subscribed." {
		t.Fatalf("subscribing: %q", f)
	}

	// A key, shown once.
	alice.SetValue("#key-name", "laptop")
	alice.ClickNavigate("#create-key")
	var key string
	alice.Evaluate(`document.getElementById("new-key-value").value`, &key)
	if !printedKey.MatchString("key: " + key) {
		t.Fatalf("new key %q", key)
	}
	alice.Click("#copy-key")
	waitFor(t, "the copy button's answer", 5*time.Second, func() bool { return alice.Text("#copy-status") == "Copied." })
	alice.Screenshot("key")
	alice.Navigate(appURL)
	if strings.Contains(alice.Text("main"), key) {
		t.Fatal("the application page shows the key's secret")
	}
	alice.Screenshot("application")
	allLabelled(t, alice, "application")

	// Try-it through the gateway, with the key.
	tryIt := func(want string) {
		t.Helper()
		alice.Navigate(s.portal + "/portal/apis/petstore-v1")
		alice.SetValue("#try-path", "/petstore/v1/pets")
		alice.SetValue("#try-key", key)
		alice.ClickNavigate("#try-send")
		if got := alice.Text("#try-status"); !strings.HasPrefix(got, want) {
			t.Fatalf("try-it answered %q, want %s", got, want)
		}
	}
	before := s.backend.Count()
	waitFor(t, "the key reaching the replica", 5*time.Second, func() bool {
		return keyStatusAt(t, s.gateway+"/petstore/v1/pets", key) == http.StatusOK
	})
	tryIt("200")
	alice.Screenshot("try")
	if s.backend.Count() <= before || s.backend.Last().URI != "/petstore/v1/pets" {
		t.Fatal("the try-it call did not reach the upstream")
	}

	// The calls show in the usage chart (the replica reports every 200ms).
	waitFor(t, "the calls in the usage chart", 15*time.Second, func() bool {
		alice.Navigate(appURL)
		n, _ := strconv.Atoi(alice.Text("#usage-requests"))
		return n >= 2
	})
	alice.WaitVisible("figure.chart svg rect.bar")
	alice.Screenshot("usage")

	// Revoked: refused.
	alice.Navigate(appURL)
	acceptConfirms(alice)
	alice.ClickNavigate("button.revoke")
	if f := alice.Text("#flash"); !strings.Contains(f, "revoked") {
		t.Fatalf("revoking: %q", f)
	}
	waitFor(t, "the revoked key refused", 5*time.Second, func() bool {
		return keyStatusAt(t, s.gateway+"/petstore/v1/pets", key) == http.StatusUnauthorized
	})
	tryIt("401")

	alice.AssertNoErrors()
	// A form posted to the portal from another site is refused (the 403s
	// are the browser's console errors this once).
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `<!doctype html><form id=f method=post action="%s/portal/applications"><input name=name value=csrf-attack></form>
<script>document.getElementById("f").submit()</script>`, s.portal)
	}))
	defer attacker.Close()
	for _, origin := range []string{attacker.URL, strings.Replace(attacker.URL, "127.0.0.1", "localhost", 1)} {
		alice.Navigate(origin)
		alice.WaitLocation(s.portal + "/portal/applications")
		alice.WaitVisible("#error-message")
		if got := alice.Text("h1"); got != "403" {
			t.Fatalf("a cross-site form from %s: %q", origin, got)
		}
	}
	if out := admin(t, s.cp, "apps", "list"); strings.Contains(out, "csrf-attack") {
		t.Fatalf("a cross-site form created an application:\n%s", out)
	}
	alice.ClearErrors()

	// Carol signs in through the OpenID provider and subscribes to an API
	// that needs approval.
	carol := testbrowser.New(t).NewTab(t)
	carol.Navigate(s.portal + "/portal/login")
	carol.ClickNavigate("#oidc-login")
	carol.Screenshot("provider-login")
	testoidc.SignIn(carol, "carol", "carol-idp-password")
	carol.WaitLocation(s.portal + "/portal/")
	if who := carol.Text("#signed-in-as"); who != "Carol Example" {
		t.Fatalf("signed in through OIDC as %q", who)
	}
	carol.Navigate(s.portal + "/portal/applications")
	if strings.Contains(carol.Text("main"), "Shop") {
		t.Fatal("carol sees alice's application")
	}
	if status := carol.Navigate(appURL); status != http.StatusNotFound {
		t.Fatalf("alice's application page for carol: %d", status)
	}
	carol.Screenshot("not-found")
	carol.ClearErrors() // the 404 just asked for
	carol.Navigate(s.portal + "/portal/applications")
	carol.SetValue("#app-name", "Carol's app")
	carol.ClickNavigate("#create-app")
	carolApp := carol.Location()
	carol.Navigate(s.portal + "/portal/apis/orders")
	if got := carol.Text("#api-description"); !strings.HasPrefix(got, "<script>") {
		t.Fatalf("the API description is not shown as text: %q", got)
	}
	noScriptRan(t, carol)
	carol.ClickNavigate("#subscribe")
	if !strings.Contains(carol.Text("#subscriptions"), "pending") {
		t.Fatal("an approval-held subscription is not shown pending")
	}
	carol.Screenshot("applications")

	// Pat, a publisher, on a phone and with the keyboard only, approves it.
	pat := testbrowser.New(t, testbrowser.WindowSize(390, 844)).NewTab(t)
	pat.Navigate(s.portal + "/portal/login")
	pat.SendKeys("#username", "pat\tpat-password\r")
	pat.WaitLocation(s.portal + "/portal/")
	pat.WaitVisible("#signed-in-as")
	fitsTheScreen(t, pat, "catalog")
	pat.Screenshot("catalog-phone")
	pat.Navigate(s.portal + "/portal/manage")
	fitsTheScreen(t, pat, "manage")
	allLabelled(t, pat, "manage")
	carolID := strings.TrimPrefix(carolApp, s.portal+"/portal/applications/")
	row := fmt.Sprintf(`#pending tr[data-sub="%s/orders"] button.approve`, carolID)
	pat.WaitVisible(row)
	pat.Screenshot("manage")
	pat.ClickNavigate(row)
	if f := pat.Text("#flash"); !strings.HasPrefix(f, "Done: approve") {
		t.Fatalf("approving: %q", f)
	}
	carol.Navigate(carolApp)
	if !strings.Contains(carol.Text("#subscriptions"), "active") {
		t.Fatal("the approved subscription is not active")
	}
	for _, tab := range []*testbrowser.Tab{carol, pat} {
		tab.AssertNoErrors()
	}
}

// keyStatusAt is a gateway's answer for a request with an API key.
func keyStatusAt(t *testing.T, url, key string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("apikey", key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}
