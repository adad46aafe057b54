package testoidc

import (
	"context"
	"crypto/rand"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/tollgate/tollgate/internal/testbrowser"
)

var alice = Account{Subject: "u-1001", Login: "alice", Password: "correct horse", Email: "alice@example.com",
	Name: "Alice Example", Roles: []string{"portal-admin", "developer"}}

// idClaims are the claims the relying party reads from a verified ID token.
type idClaims struct {
	Subject           string   `json:"sub"`
	Email             string   `json:"email"`
	EmailVerified     bool     `json:"email_verified"`
	Name              string   `json:"name"`
	PreferredUsername string   `json:"preferred_username"`
	Roles             []string `json:"roles"`
	Nonce             string   `json:"nonce"`
}

// relyingParty is a minimal web application that signs users in with the
// provider: authorization code flow with PKCE, state and nonce in
// short-lived cookies, the ID token verified with go-oidc.
type relyingParty struct {
	srv        *httptest.Server
	oauth      oauth2.Config
	verifier   *oidc.IDTokenVerifier
	endSession string

	mu       sync.Mutex
	sessions map[string]idClaims
	verified []idClaims // every ID token the callback verified, for the test
}

// newRelyingParty listens before the provider starts (the provider needs its
// redirect URI) and serves once connect is called with the issuer.
func newRelyingParty(t *testing.T) *relyingParty {
	rp := &relyingParty{sessions: map[string]idClaims{}}
	rp.srv = httptest.NewUnstartedServer(http.HandlerFunc(rp.serve))
	t.Cleanup(rp.srv.Close)
	return rp
}

func (rp *relyingParty) url() string { return "http://" + rp.srv.Listener.Addr().String() }

func (rp *relyingParty) connect(t *testing.T, issuer string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	provider, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatal(err)
	}
	rp.oauth = oauth2.Config{ClientID: "portal", ClientSecret: "portal-secret", Endpoint: provider.Endpoint(),
		RedirectURL: rp.url() + "/callback", Scopes: Scopes}
	rp.verifier = provider.Verifier(&oidc.Config{ClientID: "portal"})
	var doc struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := provider.Claims(&doc); err != nil || doc.EndSession == "" {
		t.Fatalf("discovery has no end_session_endpoint (%v)", err)
	}
	rp.endSession = doc.EndSession
	rp.srv.Start()
}

func (rp *relyingParty) serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/login":
		state, nonce, verifier := rand.Text(), rand.Text(), oauth2.GenerateVerifier()
		for name, value := range map[string]string{"rp_state": state, "rp_nonce": nonce, "rp_verifier": verifier} {
			http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true,
				SameSite: http.SameSiteLaxMode, MaxAge: 300})
		}
		http.Redirect(w, r, rp.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)), http.StatusFound)
	case "/callback":
		claims, err := rp.callback(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		session := rand.Text()
		rp.mu.Lock()
		rp.sessions[session] = claims
		rp.verified = append(rp.verified, claims)
		rp.mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: "rp_session", Value: session, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		http.Redirect(w, r, "/", http.StatusFound)
	case "/logout":
		if c, err := r.Cookie("rp_session"); err == nil {
			rp.mu.Lock()
			delete(rp.sessions, c.Value)
			rp.mu.Unlock()
		}
		http.SetCookie(w, &http.Cookie{Name: "rp_session", Path: "/", MaxAge: -1})
		q := url.Values{"client_id": {"portal"}, "post_logout_redirect_uri": {rp.url() + "/signed-out"}}
		http.Redirect(w, r, rp.endSession+"?"+q.Encode(), http.StatusFound)
	case "/signed-out":
		fmt.Fprint(w, `<!doctype html><p id="bye">Signed out</p><a id="sign-in" href="/login">Sign in</a>`)
	case "/":
		c, err := r.Cookie("rp_session")
		rp.mu.Lock()
		claims, ok := rp.sessions[valueOf(c, err)]
		rp.mu.Unlock()
		if !ok {
			fmt.Fprint(w, `<!doctype html><a id="sign-in" href="/login">Sign in</a>`)
			return
		}
		fmt.Fprintf(w, `<!doctype html><p id="whoami">%s</p>`, html.EscapeString(claims.Name+" <"+claims.Email+"> "+strings.Join(claims.Roles, ",")))
	default:
		http.NotFound(w, r)
	}
}

func valueOf(c *http.Cookie, err error) string {
	if err != nil {
		return ""
	}
	return c.Value
}

func (rp *relyingParty) callback(r *http.Request) (idClaims, error) {
	var claims idClaims
	if e := r.FormValue("error"); e != "" {
		return claims, fmt.Errorf("the provider answered %s: %s", e, r.FormValue("error_description"))
	}
	state, err := r.Cookie("rp_state")
	if err != nil || r.FormValue("state") != state.Value {
		return claims, fmt.Errorf("state does not match")
	}
	verifier, err := r.Cookie("rp_verifier")
	if err != nil {
		return claims, err
	}
	token, err := rp.oauth.Exchange(r.Context(), r.FormValue("code"), oauth2.VerifierOption(verifier.Value))
	if err != nil {
		return claims, fmt.Errorf("exchange: %w", err)
	}
	raw, ok := token.Extra("id_token").(string)
	if !ok {
		return claims, fmt.Errorf("no id_token in the token response")
	}
	idToken, err := rp.verifier.Verify(r.Context(), raw)
	if err != nil {
		return claims, fmt.Errorf("verify: %w", err)
	}
	if err := idToken.Claims(&claims); err != nil {
		return claims, err
	}
	if nonce, err := r.Cookie("rp_nonce"); err != nil || claims.Nonce != nonce.Value {
		return claims, fmt.Errorf("nonce does not match")
	}
	return claims, nil
}

// A user signs in through the provider's login form in Chromium: a wrong
// password is refused on the form, the right one leads back to the relying
// party with a verified ID token that carries the account's claims; signing
// out ends the provider's session.
func TestSignInThroughTheLoginForm(t *testing.T) {
	rp := newRelyingParty(t)
	p := Start(t, Options{
		Clients: []Client{{ID: "portal", Secret: "portal-secret", RedirectURIs: []string{rp.url() + "/callback"},
			PostLogoutRedirectURIs: []string{rp.url() + "/signed-out"}}},
		Accounts: []Account{alice, {Subject: "u-1002", Login: "bob", Password: "bob's password"}},
	})
	rp.connect(t, p.Issuer)
	tab := testbrowser.New(t).NewTab(t)

	tab.Navigate(rp.url() + "/")
	tab.ClickNavigate("#sign-in")
	tab.WaitVisible(LoginField)
	if loc := tab.Location(); !strings.HasPrefix(loc, p.Issuer+"/interaction/") {
		t.Fatalf("at %s: want the provider's login page", loc)
	}
	if got := tab.Text("#client"); got != "portal" {
		t.Errorf("the login page names client %q", got)
	}
	tab.Screenshot("login-page")

	for _, wrong := range []struct{ login, password string }{
		{"alice", "wrong horse"},
		{"alice", "bob's password"}, // another account's password
		{"mallory", "correct horse"},
	} {
		SignIn(tab, wrong.login, wrong.password)
		if got := tab.Text(ErrorMessage); got != "Invalid login or password." {
			t.Errorf("%s/%s: error %q", wrong.login, wrong.password, got)
		}
		if loc := tab.Location(); !strings.HasPrefix(loc, p.Issuer+"/interaction/") {
			t.Errorf("%s/%s: at %s, not on the login page", wrong.login, wrong.password, loc)
		}
	}
	tab.Screenshot("wrong-password")
	rp.mu.Lock()
	if len(rp.verified) != 0 {
		t.Errorf("a wrong password signed in: %+v", rp.verified)
	}
	rp.mu.Unlock()

	SignIn(tab, "alice", "correct horse")
	tab.WaitLocation(rp.url() + "/")
	if got, want := tab.Text("#whoami"), "Alice Example <alice@example.com> portal-admin,developer"; got != want {
		t.Errorf("signed in as %q, want %q", got, want)
	}
	tab.Screenshot("signed-in")

	rp.mu.Lock()
	verified := rp.verified
	rp.mu.Unlock()
	if len(verified) != 1 {
		t.Fatalf("%d ID tokens verified, want 1", len(verified))
	}
	got := verified[0]
	if got.Subject != alice.Subject || got.Email != alice.Email || !got.EmailVerified || got.Name != alice.Name ||
		got.PreferredUsername != alice.Login || !slices.Equal(got.Roles, alice.Roles) {
		t.Errorf("ID token claims %+v, want those of %+v", got, alice)
	}
	// The provider's session cookie is on its own host, not on the
	// relying party's.
	for _, c := range tab.Cookies() {
		if !strings.HasPrefix(c.Name, "rp_") {
			t.Errorf("cookie %s=%s is sent to the relying party", c.Name, c.Value)
		}
	}

	// Signing out ends the provider's session too: the next sign-in asks
	// for the password again.
	tab.Navigate(rp.url() + "/logout")
	tab.WaitVisible(LogoutButton)
	tab.ClickNavigate(LogoutButton)
	tab.WaitLocation(rp.url() + "/signed-out")
	tab.ClickNavigate("#sign-in")
	tab.WaitVisible(LoginField)
	tab.AssertNoErrors()
}

// The provider refuses an authorization request without PKCE, or with the
// plain method (S256 is the only one).
func TestPKCEIsRequired(t *testing.T) {
	const redirect = "http://127.0.0.1:1/callback"
	p := Start(t, Options{Clients: []Client{{ID: "portal", Secret: "portal-secret", RedirectURIs: []string{redirect}}}})
	noRedirects := &http.Client{Timeout: 5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	for _, tc := range []struct {
		name  string
		extra url.Values
		want  string
	}{
		{"no challenge", url.Values{}, "PKCE"},
		{"plain", url.Values{"code_challenge": {"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrs"}, "code_challenge_method": {"plain"}}, "code_challenge_method"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := url.Values{"client_id": {"portal"}, "response_type": {"code"}, "redirect_uri": {redirect},
				"scope": {"openid"}, "state": {"s"}}
			for k, v := range tc.extra {
				q[k] = v
			}
			resp, err := noRedirects.Get(p.Issuer + "/auth?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			loc, err := url.Parse(resp.Header.Get("Location"))
			if err != nil || resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound {
				t.Fatalf("status %d, location %q", resp.StatusCode, resp.Header.Get("Location"))
			}
			if got := loc.Query().Get("error"); got != "invalid_request" || !strings.Contains(loc.Query().Get("error_description"), tc.want) {
				t.Errorf("redirected with error %q (%s), want invalid_request about %s", got, loc.Query().Get("error_description"), tc.want)
			}
		})
	}
}

// Stop ends the provider: its port no longer answers.
func TestStop(t *testing.T) {
	p := Start(t, Options{})
	p.Stop()
	client := &http.Client{Timeout: time.Second}
	if err := p.discover(client); err == nil {
		t.Fatal("the provider still answers after Stop")
	}
	p.Stop() // again, as cleanup does
}
