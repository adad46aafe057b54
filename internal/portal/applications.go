package portal

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

func (p *Portal) applications(rq *request) error {
	apps, err := listAll[applicationRecord](p, rq, "/applications", ownerQuery(rq))
	if err != nil {
		return err
	}
	return p.render(rq, "applications", "My applications", map[string]any{"Applications": apps})
}

func (p *Portal) createApplication(rq *request) error {
	name := strings.TrimSpace(rq.r.PostForm.Get("name"))
	var app applicationRecord
	if err := p.api.do(rq.ctx(), rq.who, http.MethodPost, "/applications", nil, map[string]any{"name": name}, &app); err != nil {
		p.flash(rq, "The application was not created: "+err.Error())
		return p.redirect(rq, "/portal/applications")
	}
	p.flash(rq, "Application created.")
	return p.redirect(rq, "/portal/applications/"+url.PathEscape(app.ID))
}

// appPath is an application's admin API path.
func appPath(id string) string { return "/applications/" + url.PathEscape(id) }

func (p *Portal) application(rq *request) error {
	id := rq.r.PathValue("id")
	var app applicationRecord
	if err := p.api.do(rq.ctx(), rq.who, http.MethodGet, appPath(id), nil, nil, &app); err != nil {
		return err
	}
	if app.Owner != rq.who.Name {
		return errNotFound // "my applications": an admin manages others' on the manage page
	}
	subs, err := listAll[subscriptionRecord](p, rq, "/subscriptions", url.Values{"application": {id}})
	if err != nil {
		return err
	}
	keys, err := listAll[keyRecord](p, rq, appPath(id)+"/keys", nil)
	if err != nil {
		return err
	}
	names := map[string]string{}
	if apis, err := listAll[apiRecord](p, rq, "/apis", nil); err == nil {
		for _, a := range apis {
			names[a.ID] = a.title()
		}
	}
	data := map[string]any{"App": app, "Subscriptions": subs, "Keys": keys, "APINames": names}
	data["Usage"] = p.usage(rq, id, rq.r.URL.Query().Get("api"), rq.r.URL.Query().Get("range"), subs)
	return p.render(rq, "application", app.Name, data)
}

func (p *Portal) back(rq *request, id, msg string) error {
	p.flash(rq, msg)
	return p.redirect(rq, "/portal/applications/"+url.PathEscape(id))
}

func (p *Portal) editApplication(rq *request) error {
	id := rq.r.PathValue("id")
	name := strings.TrimSpace(rq.r.PostForm.Get("name"))
	if err := p.api.do(rq.ctx(), rq.who, http.MethodPatch, appPath(id), nil, map[string]any{"name": name}, nil); err != nil {
		return p.back(rq, id, "Not saved: "+err.Error())
	}
	return p.back(rq, id, "Saved.")
}

func (p *Portal) deleteApplication(rq *request) error {
	id := rq.r.PathValue("id")
	if err := p.api.do(rq.ctx(), rq.who, http.MethodDelete, appPath(id), nil, nil, nil); err != nil {
		return p.back(rq, id, "Not deleted: "+err.Error())
	}
	p.flash(rq, "Application deleted: its keys and subscriptions stopped working.")
	return p.redirect(rq, "/portal/applications")
}

// expiryChoices are what the key form offers, in days (0: never).
var expiryChoices = map[string]int{"": 0, "0": 0, "7": 7, "30": 30, "90": 90, "365": 365}

func (p *Portal) createKey(rq *request) error {
	id := rq.r.PathValue("id")
	body := map[string]any{}
	if name := strings.TrimSpace(rq.r.PostForm.Get("name")); name != "" {
		body["name"] = name
	}
	days, ok := expiryChoices[rq.r.PostForm.Get("expires")]
	if !ok {
		return p.back(rq, id, "Choose when the key expires.")
	}
	if days > 0 {
		body["expiresAt"] = p.now().Add(time.Duration(days) * 24 * time.Hour).UTC().Format(time.RFC3339)
	}
	var k newKey
	if err := p.api.do(rq.ctx(), rq.who, http.MethodPost, appPath(id)+"/keys", nil, body, &k); err != nil {
		return p.back(rq, id, "No key created: "+err.Error())
	}
	return p.showKey(rq, id, k, "")
}

// showKey is the one time a key's secret is shown. The page is not
// stored (Cache-Control: no-store) and the secret is nowhere else.
func (p *Portal) showKey(rq *request, app string, k newKey, note string) error {
	p.log.Info("portal: key issued", "user", rq.who.Name, "application", app, "key_id", k.ID)
	return p.render(rq, "key", "Your new key", map[string]any{"AppID": app, "Key": k, "Note": note})
}

// graceChoices are how long a regenerated key's predecessor keeps working.
var graceChoices = map[string]string{"0": "0s", "1h": "1h", "24h": "24h", "168h": "168h"}

func (p *Portal) regenerateKey(rq *request) error {
	id, key := rq.r.PathValue("id"), rq.r.PathValue("key")
	grace, ok := graceChoices[rq.r.PostForm.Get("grace")]
	if !ok {
		return p.back(rq, id, "Choose how long the old key keeps working.")
	}
	var k newKey
	if err := p.api.do(rq.ctx(), rq.who, http.MethodPost, appPath(id)+"/keys/"+url.PathEscape(key)+"/regenerate", nil,
		map[string]any{"grace": grace}, &k); err != nil {
		return p.back(rq, id, "Not regenerated: "+err.Error())
	}
	note := "The key it replaces stops working now."
	if grace != "0s" {
		d, _ := time.ParseDuration(grace)
		note = "The key it replaces keeps working for " + strconv.Itoa(int(d.Hours())) + " hours."
	}
	return p.showKey(rq, id, k, note)
}

func (p *Portal) revokeKey(rq *request) error {
	id, key := rq.r.PathValue("id"), rq.r.PathValue("key")
	if err := p.api.do(rq.ctx(), rq.who, http.MethodPost, appPath(id)+"/keys/"+url.PathEscape(key)+"/revoke", nil, nil, nil); err != nil {
		return p.back(rq, id, "Not revoked: "+err.Error())
	}
	return p.back(rq, id, "Key revoked: calls with it are refused.")
}

func (p *Portal) subscribe(rq *request) error {
	app, api := rq.r.PostForm.Get("application"), rq.r.PostForm.Get("api")
	body := map[string]any{"application": app, "api": api}
	if tier := rq.r.PostForm.Get("tier"); tier != "" {
		body["tier"] = tier
	}
	var sub subscriptionRecord
	if err := p.api.do(rq.ctx(), rq.who, http.MethodPost, "/subscriptions", nil, body, &sub); err != nil {
		p.flash(rq, "Not subscribed: "+err.Error())
		return p.redirect(rq, "/portal/apis/"+url.PathEscape(api))
	}
	msg := "Subscribed."
	if sub.State == "pending" {
		msg = "Subscription requested: it is pending until a publisher approves it."
	}
	return p.back(rq, app, msg)
}

func (p *Portal) unsubscribe(rq *request) error {
	app, api := rq.r.PathValue("app"), rq.r.PathValue("api")
	if err := p.api.do(rq.ctx(), rq.who, http.MethodDelete, "/subscriptions/"+url.PathEscape(app)+"/"+url.PathEscape(api), nil, nil, nil); err != nil {
		return p.back(rq, app, "Not unsubscribed: "+err.Error())
	}
	return p.back(rq, app, "Unsubscribed.")
}
