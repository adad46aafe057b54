package portal

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/config"
)

// Pages are html/template files: every value is escaped for where it
// lands (text, attribute, URL), so a name or an OpenAPI description
// holding markup is shown as text. No template writes raw HTML.
func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"when":  when,
		"join":  strings.Join,
		"lower": strings.ToLower,
		"has":   slices.Contains[[]string],
		"pathEscape": func(s string) string {
			return strings.ReplaceAll(template.URLQueryEscaper(s), "+", "%20")
		},
	}
	layout, err := fs.ReadFile(templateFiles, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(path.Base(n), ".html")
		if name == "layout" {
			continue
		}
		body, err := fs.ReadFile(templateFiles, n)
		if err != nil {
			return nil, err
		}
		t, err := template.New(name).Funcs(funcs).Parse(string(layout))
		if err == nil {
			_, err = t.Parse(string(body))
		}
		if err != nil {
			return nil, fmt.Errorf("page %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// when shows an RFC 3339 time as a short UTC date and time.
func when(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// view is what the layout reads beside a page's own data.
type view struct {
	Title     string
	Portal    string
	User      string
	Role      string
	CSRF      string
	Flash     string
	Publisher bool
	Developer bool
	SignedIn  bool
	Page      any
}

// render writes a page with 200.
func (p *Portal) render(rq *request, name, title string, data any) error {
	p.renderBody(rq, http.StatusOK, name, data, title)
	return nil
}

func (p *Portal) renderBody(rq *request, status int, name string, data any, title ...string) {
	t, ok := p.pages[name]
	if !ok {
		http.Error(rq.w, "no such page", http.StatusInternalServerError)
		return
	}
	v := view{Portal: p.set.Title, User: rq.s.Display, Role: rq.s.Role, CSRF: rq.s.CSRF, Flash: rq.s.Flash,
		SignedIn: rq.s.signedIn(), Page: data}
	if len(title) > 0 {
		v.Title = title[0]
	}
	v.Publisher = v.SignedIn && (v.Role == config.RoleAdmin || v.Role == config.RolePublisher)
	v.Developer = v.SignedIn && (v.Role == config.RoleAdmin || v.Role == config.RoleDeveloper)
	if rq.s.Flash != "" {
		rq.s.Flash = ""
		rq.dirty = true
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		p.log.Error("portal: rendering", "page", name, "error", err)
		http.Error(rq.w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	p.saveSession(rq)
	rq.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	rq.w.WriteHeader(status)
	_, _ = rq.w.Write(buf.Bytes())
}
