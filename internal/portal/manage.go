package portal

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// lifecycle is the moves the manage page offers from each state (the
// admin API's transitions).
var lifecycle = map[string][]string{
	"created":    {"published", "retired"},
	"published":  {"deprecated", "blocked", "retired"},
	"deprecated": {"published", "blocked", "retired"},
	"blocked":    {"published", "deprecated", "retired"},
}

type manageAPI struct {
	apiRecord
	Moves []string
}

// manage is the publishers' page: subscriptions waiting for approval,
// every subscription (block, resume), applications (block as a whole),
// APIs (lifecycle, tiers) and the tiers themselves.
func (p *Portal) manage(rq *request) error {
	pending, err := listAll[subscriptionRecord](p, rq, "/subscriptions", url.Values{"state": {"pending"}})
	if err != nil {
		return err
	}
	subs, err := listAll[subscriptionRecord](p, rq, "/subscriptions", nil)
	if err != nil {
		return err
	}
	apps, err := listAll[applicationRecord](p, rq, "/applications", nil)
	if err != nil {
		return err
	}
	apis, err := listAll[apiRecord](p, rq, "/apis", nil)
	if err != nil {
		return err
	}
	var managed []manageAPI
	for _, a := range apis {
		managed = append(managed, manageAPI{apiRecord: a, Moves: lifecycle[a.State]})
	}
	var active []subscriptionRecord
	for _, s := range subs {
		if s.State != "pending" {
			active = append(active, s)
		}
	}
	return p.render(rq, "manage", "Manage", map[string]any{
		"Pending": pending, "Subscriptions": active, "Applications": apps, "APIs": managed, "Tiers": p.tiers(rq, nil),
	})
}

func (p *Portal) managed(rq *request, msg string) error {
	p.flash(rq, msg)
	return p.redirect(rq, "/portal/manage")
}

func (p *Portal) manageSubscription(rq *request) error {
	path := "/subscriptions/" + url.PathEscape(rq.r.PathValue("app")) + "/" + url.PathEscape(rq.r.PathValue("api"))
	var err error
	switch action := rq.r.PathValue("action"); action {
	case "approve":
		err = p.api.do(rq.ctx(), rq.who, http.MethodPost, path+"/approve", nil, nil, nil)
	case "reject":
		err = p.api.do(rq.ctx(), rq.who, http.MethodDelete, path, nil, nil, nil)
	case "block", "resume":
		state := map[string]string{"block": "blocked", "resume": "active"}[action]
		err = p.api.do(rq.ctx(), rq.who, http.MethodPatch, path, nil, map[string]any{"state": state}, nil)
	default:
		return errNotFound
	}
	if err != nil {
		return p.managed(rq, "Not done: "+err.Error())
	}
	return p.managed(rq, "Done: "+rq.r.PathValue("action")+" "+rq.r.PathValue("app")+" → "+rq.r.PathValue("api")+".")
}

func (p *Portal) manageApplication(rq *request) error {
	action := rq.r.PathValue("action")
	if action != "block" && action != "unblock" {
		return errNotFound
	}
	id := rq.r.PathValue("id")
	if err := p.api.do(rq.ctx(), rq.who, http.MethodPost, appPath(id)+"/"+action, nil, nil, nil); err != nil {
		return p.managed(rq, "Not done: "+err.Error())
	}
	return p.managed(rq, "Application "+id+": "+action+"ed.")
}

// manageAPI moves an API through its lifecycle or sets its tiers.
func (p *Portal) manageAPI(rq *request) error {
	id := rq.r.PathValue("id")
	body := map[string]any{}
	if st := rq.r.PostForm.Get("state"); st != "" {
		body["state"] = st
	}
	if _, ok := rq.r.PostForm["tiers"]; ok || rq.r.PostForm.Get("setTiers") != "" {
		tiers := []string{}
		for _, t := range rq.r.PostForm["tiers"] {
			if t != "" && !slices.Contains(tiers, t) {
				tiers = append(tiers, t)
			}
		}
		body["tiers"] = tiers
	}
	if v := rq.r.PostForm.Get("requiresApproval"); v != "" {
		body["requiresApproval"] = v == "true"
	}
	if len(body) == 0 {
		return p.managed(rq, "Nothing to change.")
	}
	if err := p.api.do(rq.ctx(), rq.who, http.MethodPatch, "/apis/"+url.PathEscape(id), nil, body, nil); err != nil {
		return p.managed(rq, "Not changed: "+err.Error())
	}
	return p.managed(rq, "API "+id+" changed.")
}

// saveTier creates or replaces a tier: a rate-limit policy of one limit.
func (p *Portal) saveTier(rq *request) error {
	f := rq.r.PostForm
	name := strings.TrimSpace(f.Get("name"))
	requests, err := strconv.ParseInt(f.Get("requests"), 10, 64)
	if err != nil || requests <= 0 {
		return p.managed(rq, "A tier needs a number of requests above zero.")
	}
	per := map[string]string{"second": "1s", "minute": "60s", "hour": "3600s", "day": "86400s"}[f.Get("per")]
	if per == "" {
		return p.managed(rq, "Choose per second, minute, hour or day.")
	}
	policy := map[string]any{"name": name, "limits": []any{map[string]any{"requests": requests, "per": per}}}
	err = p.api.do(rq.ctx(), rq.who, http.MethodPut, "/policies/"+url.PathEscape(name), nil, policy, nil)
	if ae, ok := err.(*apiError); ok && ae.Status == http.StatusNotFound {
		err = p.api.do(rq.ctx(), rq.who, http.MethodPost, "/policies", nil, policy, nil)
	}
	if err != nil {
		return p.managed(rq, "Tier not saved: "+err.Error())
	}
	return p.managed(rq, "Tier "+name+" saved.")
}
