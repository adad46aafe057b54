package portal

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"

	"github.com/tollgate/tollgate/internal/admin"
	"github.com/tollgate/tollgate/internal/config"
)

// safeNext keeps a post-login destination inside the portal.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/portal/") || strings.HasPrefix(next, "/portal//") || strings.ContainsAny(next, "\\\r\n") {
		return "/portal/"
	}
	return next
}

func (p *Portal) loginPage(rq *request) error {
	if rq.s.signedIn() {
		return &redirectError{"/portal/"}
	}
	data := map[string]any{
		"Local": len(p.set.Accounts) > 0,
		"OIDC":  p.oidc != nil,
		"Next":  safeNext(rq.r.URL.Query().Get("next")),
	}
	if p.oidc != nil {
		data["OIDCName"] = p.oidc.name
	}
	return p.render(rq, "login", "Sign in", data)
}

// dummyHash is compared against when the account does not exist, so the
// answer takes as long either way.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("no such account"), bcrypt.DefaultCost)

const maxPasswordBytes = 72 // bcrypt reads no more

// HashPassword makes a local account's passwordHash.
func HashPassword(password string) (string, error) {
	if len(password) < 8 || len(password) > maxPasswordBytes {
		return "", fmt.Errorf("a password has 8 to %d bytes", maxPasswordBytes)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	return string(h), err
}

func (p *Portal) localLogin(rq *request) error {
	name, password := rq.r.PostForm.Get("username"), rq.r.PostForm.Get("password")
	next := safeNext(rq.r.PostForm.Get("next"))
	var acct *config.PortalAccount
	for i := range p.set.Accounts {
		if subtle.ConstantTimeCompare([]byte(p.set.Accounts[i].Name), []byte(name)) == 1 {
			acct = &p.set.Accounts[i]
		}
	}
	hash := dummyHash
	if acct != nil {
		hash = []byte(acct.PasswordHash)
	}
	ok := len(password) <= maxPasswordBytes && bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
	if !ok || acct == nil {
		p.log.Info("portal: sign-in refused", "method", "local")
		rq.w.Header().Set("Cache-Control", "no-store")
		p.renderBody(rq, http.StatusUnauthorized, "login", map[string]any{
			"Local": true, "OIDC": p.oidc != nil, "OIDCName": p.oidcName(), "Next": next,
			"Error": "The name or the password is wrong.",
		}, "Sign in")
		return nil
	}
	p.signIn(rq, acct.Name, acct.Role, acct.Name)
	p.log.Info("portal: signed in", "user", acct.Name, "role", acct.Role, "method", "local")
	return p.redirect(rq, next)
}

func (p *Portal) oidcName() string {
	if p.oidc == nil {
		return ""
	}
	return p.oidc.name
}

func (p *Portal) logout(rq *request) error {
	if rq.s.signedIn() {
		p.log.Info("portal: signed out", "user", rq.s.User)
	}
	rq.s = p.newSession()
	rq.dirty = true
	return p.redirect(rq, "/portal/")
}

// oidcClient signs users in with the authorization code flow and PKCE.
// What must survive the round trip through the provider (state, nonce,
// the PKCE verifier, where to go next) is sealed into a short-lived
// cookie, so nothing is kept on the server.
type oidcClient struct {
	cfg      config.PortalOIDC
	name     string
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
	client   *http.Client
	flows    *sealer
}

type oidcFlow struct {
	State    string    `json:"s"`
	Nonce    string    `json:"n"`
	Verifier string    `json:"v"`
	Next     string    `json:"x"`
	Expires  time.Time `json:"e"`
}

// flowLifetime is how long a sign-in at the provider may take.
const flowLifetime = 10 * time.Minute

func newOIDCClient(ctx context.Context, cfg config.PortalOIDC, key []byte) (*oidcClient, error) {
	client := &http.Client{Timeout: 10 * time.Second}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("caFile %s: no certificate", cfg.CAFile)
		}
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	pctx := oidc.ClientContext(ctx, client)
	provider, err := oidc.NewProvider(pctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("discovering %s: %w", cfg.Issuer, err)
	}
	flows, err := newSealer(key, "oidc flow")
	if err != nil {
		return nil, err
	}
	return &oidcClient{
		cfg: cfg, name: cfg.Name, client: client, flows: flows,
		oauth: oauth2.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Endpoint: provider.Endpoint(),
			RedirectURL: cfg.RedirectURL, Scopes: cfg.Scopes},
		verifier: provider.Verifier(&oidc.Config{ClientID: cfg.ClientID}),
	}, nil
}

func (p *Portal) oidcStart(rq *request) error {
	if p.oidc == nil {
		return errNotFound
	}
	flow := oidcFlow{State: randomToken(), Nonce: randomToken(), Verifier: oauth2.GenerateVerifier(),
		Next: safeNext(rq.r.URL.Query().Get("next")), Expires: p.now().Add(flowLifetime)}
	sealed, err := p.oidc.flows.seal(flow)
	if err != nil {
		return err
	}
	p.cookies.set(rq.w, "tollgate_oidc", sealed, flowLifetime)
	to := p.oidc.oauth.AuthCodeURL(flow.State, oauth2.S256ChallengeOption(flow.Verifier), oidc.Nonce(flow.Nonce))
	p.saveSession(rq)
	http.Redirect(rq.w, rq.r, to, http.StatusFound)
	return nil
}

var errSignIn = &pageError{http.StatusUnauthorized, "Signing in with the identity provider did not work. Try again."}

func (p *Portal) oidcCallback(rq *request) error {
	if p.oidc == nil {
		return errNotFound
	}
	var flow oidcFlow
	sealed := p.cookies.get(rq.r, "tollgate_oidc")
	p.cookies.clear(rq.w, "tollgate_oidc")
	q := rq.r.URL.Query()
	if sealed == "" || p.oidc.flows.open(sealed, &flow) != nil || !p.now().Before(flow.Expires) ||
		subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(flow.State)) != 1 {
		p.log.Info("portal: sign-in refused", "method", "oidc", "reason", "state")
		return errSignIn
	}
	if e := q.Get("error"); e != "" {
		p.log.Info("portal: sign-in refused by the provider", "method", "oidc")
		return errSignIn
	}
	user, role, display, err := p.oidc.exchange(rq.ctx(), q.Get("code"), flow)
	if err != nil {
		p.log.Info("portal: sign-in refused", "method", "oidc", "reason", err.Error())
		return errSignIn
	}
	p.signIn(rq, user, role, display)
	p.log.Info("portal: signed in", "user", user, "role", role, "method", "oidc")
	return p.redirect(rq, flow.Next)
}

// exchange trades the code (with the PKCE verifier) for tokens and reads
// who signed in from the verified ID token.
func (o *oidcClient) exchange(ctx context.Context, code string, flow oidcFlow) (user, role, display string, err error) {
	if code == "" || len(code) > 4096 {
		return "", "", "", errors.New("no code")
	}
	ctx = oidc.ClientContext(ctx, o.client)
	tok, err := o.oauth.Exchange(ctx, code, oauth2.VerifierOption(flow.Verifier))
	if err != nil {
		return "", "", "", fmt.Errorf("token exchange: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return "", "", "", errors.New("no id_token")
	}
	idt, err := o.verifier.Verify(ctx, raw)
	if err != nil {
		return "", "", "", fmt.Errorf("id_token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(flow.Nonce)) != 1 {
		return "", "", "", errors.New("nonce")
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		return "", "", "", err
	}
	user, _ = claims[o.cfg.SubjectClaim].(string)
	if !admin.ValidOwner(user) {
		return "", "", "", fmt.Errorf("claim %s must name the user in printable characters without spaces", o.cfg.SubjectClaim)
	}
	role = admin.HighestRole(claims[o.cfg.RolesClaim])
	if role == "" {
		role = o.cfg.DefaultRole
	}
	display = user
	for _, c := range []string{"name", "preferred_username", "email"} {
		if v, ok := claims[c].(string); ok && v != "" && len(v) <= 128 {
			display = v
			break
		}
	}
	return user, role, display, nil
}
