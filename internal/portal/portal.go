package portal

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/admin"
	"github.com/tollgate/tollgate/internal/config"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed assets
var assetFiles embed.FS

// Options configure the portal.
type Options struct {
	Settings config.PortalSettings
	// Admin is the admin API's handler, which the portal calls in-process
	// as the signed-in user.
	Admin http.Handler
	// Secure says the portal is reached over HTTPS or beyond loopback:
	// cookies are then Secure and __Host- prefixed.
	Secure bool
	Log    *slog.Logger
	Now    func() time.Time
}

// Portal serves /portal/.
type Portal struct {
	o        Options
	set      config.PortalSettings
	api      backend
	log      *slog.Logger
	now      func() time.Time
	mux      *http.ServeMux
	pages    map[string]*template.Template
	sessions *sealer
	cookies  cookies
	oidc     *oidcClient // nil without portal.oidc
	tryIt    *tryIt      // nil without portal.gatewayUrl
}

// New builds the portal; with OIDC configured it first reads the
// provider's discovery document (within ctx).
func New(ctx context.Context, o Options) (*Portal, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	p := &Portal{o: o, set: o.Settings, api: backend{api: o.Admin}, log: o.Log, now: o.Now,
		mux: http.NewServeMux(), cookies: cookies{secure: o.Secure}}
	var err error
	if p.sessions, err = newSealer(o.Settings.SessionKey, "session"); err != nil {
		return nil, err
	}
	if p.pages, err = parsePages(); err != nil {
		return nil, err
	}
	if o.Settings.OIDC != nil {
		if p.oidc, err = newOIDCClient(ctx, *o.Settings.OIDC, o.Settings.SessionKey); err != nil {
			return nil, fmt.Errorf("portal.oidc: %w", err)
		}
	}
	if o.Settings.GatewayURL != "" {
		if p.tryIt, err = newTryIt(o.Settings.GatewayURL, o.Settings.GatewayCAFile); err != nil {
			return nil, fmt.Errorf("portal.gatewayUrl: %w", err)
		}
	}
	p.routes()
	return p, nil
}

func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.mux.ServeHTTP(w, r) }

func (p *Portal) routes() {
	assets, _ := fs.Sub(assetFiles, "assets")
	files := http.StripPrefix("/portal/assets/", http.FileServerFS(assets))
	p.mux.Handle("GET /portal/assets/", secureHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})))
	p.mux.Handle("GET /portal/{$}", p.page(catalogAccess, p.catalog))
	p.mux.Handle("GET /portal/apis/{id}", p.page(catalogAccess, p.apiPage))
	p.mux.Handle("GET /portal/apis/{id}/openapi", p.page(catalogAccess, p.apiDocument))
	p.mux.Handle("POST /portal/apis/{id}/try", p.page(signedIn, p.tryAPI))

	p.mux.Handle("GET /portal/login", p.page(anyone, p.loginPage))
	p.mux.Handle("POST /portal/login", p.page(anyone, p.localLogin))
	p.mux.Handle("GET /portal/login/oidc", p.page(anyone, p.oidcStart))
	p.mux.Handle("GET /portal/callback", p.page(anyone, p.oidcCallback))
	p.mux.Handle("POST /portal/logout", p.page(anyone, p.logout))

	p.mux.Handle("GET /portal/applications", p.page(signedIn, p.applications))
	p.mux.Handle("POST /portal/applications", p.page(signedIn, p.createApplication))
	p.mux.Handle("GET /portal/applications/{id}", p.page(signedIn, p.application))
	p.mux.Handle("POST /portal/applications/{id}", p.page(signedIn, p.editApplication))
	p.mux.Handle("POST /portal/applications/{id}/delete", p.page(signedIn, p.deleteApplication))
	p.mux.Handle("POST /portal/applications/{id}/keys", p.page(signedIn, p.createKey))
	p.mux.Handle("POST /portal/applications/{id}/keys/{key}/regenerate", p.page(signedIn, p.regenerateKey))
	p.mux.Handle("POST /portal/applications/{id}/keys/{key}/revoke", p.page(signedIn, p.revokeKey))
	p.mux.Handle("POST /portal/subscriptions", p.page(signedIn, p.subscribe))
	p.mux.Handle("POST /portal/subscriptions/{app}/{api}/delete", p.page(signedIn, p.unsubscribe))

	p.mux.Handle("GET /portal/manage", p.page(publishers, p.manage))
	p.mux.Handle("POST /portal/manage/subscriptions/{app}/{api}/{action}", p.page(publishers, p.manageSubscription))
	p.mux.Handle("POST /portal/manage/applications/{id}/{action}", p.page(publishers, p.manageApplication))
	p.mux.Handle("POST /portal/manage/apis/{id}", p.page(publishers, p.manageAPI))
	p.mux.Handle("POST /portal/manage/tiers", p.page(publishers, p.saveTier))

	p.mux.Handle("/portal/", p.page(anyone, func(*request) error { return errNotFound }))
}

// access says who may open a page.
type access int

const (
	anyone        access = iota
	catalogAccess        // anyone when portal.anonymousCatalog, else signed in
	signedIn
	publishers // admins and publishers
)

// request is one page request with its session.
type request struct {
	w     http.ResponseWriter
	r     *http.Request
	s     *session
	who   admin.Caller
	dirty bool // the session changed and is written back
}

func (rq *request) ctx() context.Context { return rq.r.Context() }

// pageError is an answer other than a page: a status and what to say.
type pageError struct {
	status int
	msg    string
}

func (e *pageError) Error() string { return e.msg }

var errNotFound = &pageError{http.StatusNotFound, "There is nothing here."}

// maxFormBytes bounds a form; an OpenAPI document is not uploaded here.
const maxFormBytes = 256 << 10

// page wraps a handler in what every portal page needs: security
// headers, the session, CSRF checks on every POST, and access rules.
func (p *Portal) page(a access, h func(*request) error) http.Handler {
	return secureHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rq := &request{w: w, r: r, s: p.loadSession(r)}
		if rq.s == nil {
			rq.s = p.newSession()
			rq.dirty = true
		}
		rq.who = anonymous
		if rq.s.signedIn() {
			rq.who = admin.Caller{Name: rq.s.User, Role: rq.s.Role}
		}
		// A POST proves where it comes from before anything else: a
		// cross-site form is refused the same way signed in or not.
		var err error
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			err = p.checkCSRF(rq)
		}
		if err == nil {
			err = p.allowed(rq, a)
		}
		if err == nil {
			err = h(rq)
		}
		if err != nil {
			p.fail(rq, err)
		}
	}))
}

// redirectError sends the browser elsewhere (a 303 after a form).
type redirectError struct{ to string }

func (e *redirectError) Error() string { return "redirect to " + e.to }

func (p *Portal) allowed(rq *request, a access) error {
	switch {
	case a == anyone:
		return nil
	case a == catalogAccess && p.set.AnonymousCatalog:
		return nil
	case !rq.s.signedIn():
		if rq.r.Method == http.MethodGet {
			return &redirectError{"/portal/login?next=" + url.QueryEscape(rq.r.URL.RequestURI())}
		}
		return &pageError{http.StatusUnauthorized, "Sign in first."}
	case a == publishers && rq.who.Role != config.RoleAdmin && rq.who.Role != config.RolePublisher:
		return &pageError{http.StatusForbidden, "This page is for publishers and admins."}
	}
	return nil
}

// checkCSRF refuses a POST that does not carry the session's token, or
// that a browser says comes from another site. The token is what
// decides; the Origin and Sec-Fetch-Site checks refuse earlier and also
// cover a token that leaked.
func (p *Portal) checkCSRF(rq *request) error {
	refused := &pageError{http.StatusForbidden, "This form expired or was sent from another site. Reload the page and try again."}
	if site := rq.r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return refused
	}
	if origin := rq.r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || u.Host != rq.r.Host {
			return refused
		}
	}
	token := rq.r.Header.Get("X-CSRF-Token")
	if token == "" {
		if err := rq.r.ParseForm(); err != nil {
			return &pageError{http.StatusBadRequest, "The form could not be read."}
		}
		token = rq.r.PostForm.Get("csrf")
	}
	if rq.dirty || subtle.ConstantTimeCompare([]byte(token), []byte(rq.s.CSRF)) != 1 {
		return refused
	}
	return nil
}

func (p *Portal) newSession() *session {
	return &session{CSRF: randomToken(), Expires: p.now().Add(p.set.SessionLifetime)}
}

func (p *Portal) loadSession(r *http.Request) *session {
	v := p.cookies.get(r, "tollgate_portal")
	if v == "" {
		return nil
	}
	var s session
	if p.sessions.open(v, &s) != nil || !p.now().Before(s.Expires) || s.CSRF == "" {
		return nil
	}
	return &s
}

func (p *Portal) saveSession(rq *request) {
	if !rq.dirty {
		return
	}
	v, err := p.sessions.seal(rq.s)
	if err != nil {
		p.log.Error("portal: sealing a session", "error", err)
		return
	}
	p.cookies.set(rq.w, "tollgate_portal", v, rq.s.Expires.Sub(p.now()))
	rq.dirty = false
}

// signIn starts a new session for a user: a new CSRF token too, so
// nothing from before signing in carries over.
func (p *Portal) signIn(rq *request, user, role, display string) {
	rq.s = &session{User: user, Role: role, Display: display, CSRF: randomToken(), Expires: p.now().Add(p.set.SessionLifetime)}
	rq.who = admin.Caller{Name: user, Role: role}
	rq.dirty = true
}

// maxFlash keeps the session cookie well under the browser's limit.
const maxFlash = 300

func (p *Portal) flash(rq *request, msg string) {
	if len(msg) > maxFlash {
		msg = strings.ToValidUTF8(msg[:maxFlash], "") + "…"
	}
	rq.s.Flash = msg
	rq.dirty = true
}

// redirect answers a form with 303 to a portal page.
func (p *Portal) redirect(rq *request, to string) error {
	p.saveSession(rq)
	http.Redirect(rq.w, rq.r, to, http.StatusSeeOther)
	return nil
}

func (p *Portal) fail(rq *request, err error) {
	var re *redirectError
	if errors.As(err, &re) {
		_ = p.redirect(rq, re.to)
		return
	}
	status, msg := http.StatusInternalServerError, "Something went wrong; it has been logged."
	var pe *pageError
	var ae *apiError
	switch {
	case errors.As(err, &pe):
		status, msg = pe.status, pe.msg
	case errors.As(err, &ae):
		status, msg = ae.Status, ae.Error()
		if status == http.StatusNotFound {
			msg = errNotFound.msg
		}
	default:
		p.log.Error("portal: a page failed", "path", rq.r.URL.Path, "error", err)
	}
	p.renderBody(rq, status, "error", map[string]any{"Status": status, "Message": msg}, http.StatusText(status))
}

// secureHeaders are on every portal answer. The policy allows scripts
// and styles from the portal's own files only: no inline script, no
// eval, nothing from elsewhere; the API reference's renderer sets
// inline styles, hence style attributes on that page only (see
// apiPage).
func secureHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", cspStrict)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

const (
	cspStrict = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; " +
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	// cspReference is the API page's: the renderer writes style
	// attributes. Scripts stay the portal's own.
	cspReference = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; " +
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

// hasPrefixFold reports whether s starts with prefix, ignoring case.
func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
