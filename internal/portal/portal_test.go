package portal

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/tollgate/tollgate/internal/admin"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/store"
)

// testPortal is a portal over an admin API over a fresh SQLite store,
// with the accounts alice and bob (developers) and pat (publisher), each
// with the password "<name>-password".
type testPortal struct {
	url   string
	st    *store.Store
	admin *admin.Server
}

func startPortal(t *testing.T, edit ...func(*config.PortalSettings)) *testPortal {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{SQLite: filepath.Join(t.TempDir(), "portal.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	auth, err := admin.NewAuthenticator(ctx, config.AdminAuth{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	api := admin.New(admin.Options{Store: st, Auth: auth})
	set := config.PortalSettings{Enabled: true, AnonymousCatalog: true, Title: "Test portal", SessionKey: []byte("0123456789abcdef0123456789abcdef"),
		SessionLifetime: 3600e9}
	for _, a := range []struct{ name, role string }{{"alice", "developer"}, {"bob", "developer"}, {"pat", "publisher"}} {
		h, err := bcrypt.GenerateFromPassword([]byte(a.name+"-password"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		set.Accounts = append(set.Accounts, config.PortalAccount{Name: a.name, Role: a.role, PasswordHash: string(h)})
	}
	for _, e := range edit {
		e(&set)
	}
	p, err := New(ctx, Options{Settings: set, Admin: api})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/portal/", p)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &testPortal{url: srv.URL, st: st, admin: api}
}

// as calls the admin API directly, as a named caller.
func (tp *testPortal) as(t *testing.T, who admin.Caller, method, path, body string) int {
	t.Helper()
	req := httptest.NewRequestWithContext(admin.AsCaller(context.Background(), who), method, "/api/v1"+path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	tp.admin.ServeHTTP(rec, req)
	if rec.Code >= 300 {
		t.Fatalf("%s %s as %s: %d %s", method, path, who.Name, rec.Code, rec.Body)
	}
	return rec.Code
}

var publisher = admin.Caller{Name: "pat", Role: "publisher"}

// publishAPI makes a published API with a document holding markup.
func (tp *testPortal) publishAPI(t *testing.T, id, description string, approval bool) {
	t.Helper()
	approve := "false"
	if approval {
		approve = "true"
	}
	tp.as(t, publisher, "POST", "/apis", `{"id": "`+id+`", "name": "API `+id+`", "basePath": "/`+id+`", "security": ["apiKey"], "state": "published",
		"requiresApproval": `+approve+`, "description": `+quote(description)+`, "operations": [{"path": "/items", "methods": ["GET"]}]}`)
}

func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// browser is a cookie-keeping client that reads each page's CSRF token.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
	csrf string
	last *http.Response
}

func (tp *testPortal) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: tp.url, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) do(req *http.Request) (int, string) {
	b.t.Helper()
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if m := csrfField.FindSubmatch(body); m != nil {
		b.csrf = string(m[1])
	}
	b.last = res
	return res.StatusCode, string(body)
}

func (b *browser) get(path string) (int, string) {
	req, _ := http.NewRequest(http.MethodGet, b.base+path, nil)
	return b.do(req)
}

// post sends a form with the page's CSRF token unless the form has one.
func (b *browser) post(path string, form url.Values, headers ...string) (int, string) {
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", b.csrf)
	}
	req, _ := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return b.do(req)
}

func (b *browser) signIn(name string) {
	b.t.Helper()
	b.get("/portal/login")
	if status, body := b.post("/portal/login", url.Values{"username": {name}, "password": {name + "-password"}}); status != http.StatusSeeOther {
		b.t.Fatalf("signing in as %s: %d %s", name, status, body)
	}
	b.get("/portal/")
}

func (b *browser) location() string { return b.last.Header.Get("Location") }

func TestLocalSignIn(t *testing.T) {
	tp := startPortal(t)
	b := tp.browser(t)
	b.get("/portal/login")
	for _, tt := range []struct{ name, password string }{{"alice", "wrong"}, {"nobody", "alice-password"}, {"alice", strings.Repeat("x", 100)}} {
		if status, body := b.post("/portal/login", url.Values{"username": {tt.name}, "password": {tt.password}}); status != http.StatusUnauthorized || !strings.Contains(body, "login-error") {
			t.Errorf("%s/%s: %d", tt.name, tt.password, status)
		}
	}
	status, _ := b.post("/portal/login", url.Values{"username": {"alice"}, "password": {"alice-password"}, "next": {"https://evil.example/"}})
	if status != http.StatusSeeOther || b.location() != "/portal/" {
		t.Fatalf("signed in: %d to %q (an outside next must not be followed)", status, b.location())
	}
	var session *http.Cookie
	for _, c := range b.last.Cookies() {
		if c.Name == "tollgate_portal" {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Secure {
		t.Fatalf("session cookie on plain loopback: %+v", session)
	}
	if _, body := b.get("/portal/"); !strings.Contains(body, `id="signed-in-as">alice<`) {
		t.Fatal("not signed in after the redirect")
	}
	b.post("/portal/logout", url.Values{})
	if _, body := b.get("/portal/"); strings.Contains(body, "signed-in-as") {
		t.Fatal("still signed in after signing out")
	}
}

// Beyond loopback (or behind TLS) the cookie is Secure and __Host-.
func TestSecureCookies(t *testing.T) {
	tp := startPortal(t)
	p, _ := New(context.Background(), Options{Settings: config.PortalSettings{Enabled: true, AnonymousCatalog: true, SessionKey: make([]byte, 32), SessionLifetime: 3600e9}, Admin: tp.admin, Secure: true})
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/portal/login", nil))
	c := rec.Result().Cookies()
	if len(c) != 1 || c[0].Name != "__Host-tollgate_portal" || !c[0].Secure || !c[0].HttpOnly || c[0].Path != "/" || c[0].Domain != "" {
		t.Fatalf("cookies: %+v", c)
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self';") || strings.Contains(csp, "unsafe") {
		t.Fatalf("policy: %s", csp)
	}
}

// A form without the session's token, or sent from another origin, is
// refused and changes nothing.
func TestCrossSiteFormsRefused(t *testing.T) {
	tp := startPortal(t)
	b := tp.browser(t)
	b.signIn("alice")
	for _, tt := range []struct {
		name    string
		form    url.Values
		headers []string
	}{
		{"no token", url.Values{"name": {"x"}, "csrf": {""}}, nil},
		{"another session's token", url.Values{"name": {"x"}, "csrf": {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}, nil},
		{"other origin", url.Values{"name": {"x"}}, []string{"Origin", "http://evil.example"}},
		{"cross-site fetch", url.Values{"name": {"x"}}, []string{"Sec-Fetch-Site", "cross-site"}},
		{"same-site but another origin", url.Values{"name": {"x"}}, []string{"Sec-Fetch-Site", "same-site"}},
	} {
		if status, _ := b.post("/portal/applications", tt.form, tt.headers...); status != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", tt.name, status)
		}
	}
	if recs, total, _ := tp.st.List(context.Background(), store.KindApplication, store.Filter{}); total != 0 {
		t.Fatalf("a refused form created %v", recs)
	}
	if status, _ := b.post("/portal/applications", url.Values{"name": {"mine"}}); status != http.StatusSeeOther {
		t.Fatalf("with the token: %d", status)
	}
}

// Names and descriptions holding markup reach the page as text.
func TestMarkupIsShownAsText(t *testing.T) {
	tp := startPortal(t)
	evil := `<script>window.pwned=1</script><img src=x onerror="alert(1)">`
	tp.publishAPI(t, "orders", evil, false)
	b := tp.browser(t)
	b.signIn("alice")
	b.post("/portal/applications", url.Values{"name": {evil}})
	app := b.location()
	pages := []string{"/portal/", "/portal/apis/orders", "/portal/applications", app}
	for _, path := range pages {
		status, body := b.get(path)
		if status != http.StatusOK {
			t.Fatalf("%s: %d", path, status)
		}
		if strings.Contains(body, "<script>window") || strings.Contains(body, "<img src=x") {
			t.Errorf("%s renders markup from a name or description", path)
		}
		if !strings.Contains(body, "&lt;script&gt;window.pwned=1&lt;/script&gt;") {
			t.Errorf("%s does not show the text", path)
		}
	}
}

// Developer A's applications are on no page of developer B's, and B's
// forms cannot touch them.
func TestDevelopersSeeOnlyTheirOwn(t *testing.T) {
	tp := startPortal(t)
	tp.publishAPI(t, "orders", "Orders", false)
	alice := tp.browser(t)
	alice.signIn("alice")
	alice.post("/portal/applications", url.Values{"name": {"alice-secret-app"}})
	app := alice.location()
	id := strings.TrimPrefix(app, "/portal/applications/")
	alice.post("/portal/subscriptions", url.Values{"application": {id}, "api": {"orders"}})
	_, keyPage := alice.post(app+"/keys", url.Values{"name": {"ci"}, "expires": {"30"}})
	if !regexp.MustCompile(`value="tg_[0-9a-z]{12}_[0-9A-Za-z]{38}"`).MatchString(keyPage) {
		t.Fatal("the new key is not shown")
	}

	bob := tp.browser(t)
	bob.signIn("bob")
	for _, path := range []string{"/portal/", "/portal/applications", "/portal/apis/orders", app, app + "?range=24h"} {
		_, body := bob.get(path)
		if strings.Contains(body, "alice-secret-app") || strings.Contains(body, id) {
			t.Errorf("%s shows alice's application to bob", path)
		}
	}
	if status, _ := bob.get(app); status != http.StatusNotFound {
		t.Errorf("alice's application page for bob: %d", status)
	}
	for _, form := range []struct {
		path string
		form url.Values
	}{
		{app, url.Values{"name": {"taken"}}},
		{app + "/keys", url.Values{"name": {"mine"}}},
		{app + "/delete", url.Values{}},
		{"/portal/subscriptions/" + id + "/orders/delete", url.Values{}},
		{"/portal/subscriptions", url.Values{"application": {id}, "api": {"orders"}}},
	} {
		bob.post(form.path, form.form)
	}
	if _, body := alice.get(app); !strings.Contains(body, "alice-secret-app") || !strings.Contains(body, `data-api="orders"`) || strings.Count(body, `data-key="`) != 1 {
		t.Fatal("bob's forms changed alice's application")
	}
	// And a key is shown once: never again on the application's page.
	if _, body := alice.get(app); strings.Contains(body, "tg_") && regexp.MustCompile(`tg_[0-9a-z]{12}_[0-9A-Za-z]{38}`).MatchString(body) {
		t.Fatal("the application page shows a key's secret")
	}
}

// The catalog is public by default; portal.anonymousCatalog: false
// sends visitors to sign in. Unpublished APIs are in no catalog.
func TestAnonymousCatalog(t *testing.T) {
	tp := startPortal(t)
	tp.publishAPI(t, "orders", "Orders", false)
	tp.as(t, publisher, "POST", "/apis", `{"id": "draft", "security": ["apiKey"], "operations": [{"path": "/", "methods": ["GET"]}]}`)
	b := tp.browser(t)
	if status, body := b.get("/portal/"); status != http.StatusOK || !strings.Contains(body, `data-api="orders"`) || strings.Contains(body, "draft") {
		t.Fatalf("anonymous catalog: %d", status)
	}
	if status, _ := b.get("/portal/apis/draft"); status != http.StatusNotFound {
		t.Fatalf("a created API's page: %d", status)
	}
	if status, _ := b.get("/portal/applications"); status != http.StatusSeeOther || !strings.HasPrefix(b.location(), "/portal/login?next=") {
		t.Fatalf("applications without signing in: %d %s", status, b.location())
	}
	closed := startPortal(t, func(s *config.PortalSettings) { s.AnonymousCatalog = false })
	if status, _ := closed.browser(t).get("/portal/"); status != http.StatusSeeOther {
		t.Fatalf("closed catalog: %d", status)
	}
}

// A publisher approves a pending subscription and blocks an application;
// developers cannot reach the manage page.
func TestPublisherPages(t *testing.T) {
	tp := startPortal(t)
	tp.publishAPI(t, "orders", "Orders", true)
	alice := tp.browser(t)
	alice.signIn("alice")
	alice.post("/portal/applications", url.Values{"name": {"shop"}})
	app := alice.location()
	id := strings.TrimPrefix(app, "/portal/applications/")
	alice.post("/portal/subscriptions", url.Values{"application": {id}, "api": {"orders"}})
	if _, body := alice.get(app); !strings.Contains(body, "state-pending") {
		t.Fatal("an approval-held subscription is not shown pending")
	}
	if status, _ := alice.get("/portal/manage"); status != http.StatusForbidden {
		t.Fatalf("manage page for a developer: %d", status)
	}
	pat := tp.browser(t)
	pat.signIn("pat")
	if _, body := pat.get("/portal/manage"); !strings.Contains(body, `data-sub="`+id+`/orders"`) {
		t.Fatal("the pending subscription is not on the manage page")
	}
	if status, _ := pat.post("/portal/manage/subscriptions/"+id+"/orders/approve", url.Values{}); status != http.StatusSeeOther {
		t.Fatalf("approve: %d", status)
	}
	if _, body := alice.get(app); !strings.Contains(body, "state-active") {
		t.Fatal("approved subscription not active")
	}
	pat.post("/portal/manage/applications/"+id+"/block", url.Values{})
	if _, body := alice.get(app); !strings.Contains(body, "app-blocked") || !strings.Contains(body, "state-blocked") {
		t.Fatal("blocked application not shown blocked")
	}
	pat.post("/portal/manage/apis/orders", url.Values{"state": {"deprecated"}})
	if _, body := alice.get("/portal/apis/orders"); !strings.Contains(body, `id="api-state">deprecated<`) {
		t.Fatal("lifecycle move not shown")
	}
}

// A session cookie that was changed, or is not one, starts a new
// anonymous session.
func TestTamperedSession(t *testing.T) {
	tp := startPortal(t)
	b := tp.browser(t)
	b.signIn("alice")
	u, _ := url.Parse(tp.url)
	cookies := b.c.Jar.Cookies(u)
	for _, c := range cookies {
		if c.Name == "tollgate_portal" {
			raw := []byte(c.Value)
			raw[len(raw)/2] ^= 1
			c.Value = string(raw)
		}
	}
	b.c.Jar.SetCookies(u, cookies)
	if _, body := b.get("/portal/"); strings.Contains(body, "signed-in-as") {
		t.Fatal("a changed cookie kept the session")
	}
}

func FuzzSessionCookie(f *testing.F) {
	s, _ := newSealer(make([]byte, 32), "session")
	good, _ := s.seal(session{User: "alice", Role: "developer", CSRF: "x"})
	f.Add(good)
	f.Add("")
	f.Add("AAAA")
	f.Fuzz(func(t *testing.T, v string) {
		var out session
		if s.open(v, &out) == nil && v != good && out.User == "alice" {
			// Another valid sealing of the same value is fine; a
			// forgery is not possible without the key.
			if _, err := s.seal(out); err != nil {
				t.Fatal(err)
			}
		}
	})
}
