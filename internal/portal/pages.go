package portal

import (
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// listLimit is the admin API's largest page; the portal reads lists
// whole up to maxListed records and says so when there are more.
const (
	listLimit = 1000
	maxListed = 10 * listLimit
)

// listAll reads every page of a list, up to maxListed records.
func listAll[T any](p *Portal, rq *request, path string, q url.Values) ([]T, error) {
	if q == nil {
		q = url.Values{}
	}
	var out []T
	for offset := 0; offset < maxListed; offset += listLimit {
		q.Set("offset", itoa(offset))
		q.Set("limit", itoa(listLimit))
		var pg page[T]
		if err := p.api.do(rq.ctx(), rq.who, http.MethodGet, path, q, nil, &pg); err != nil {
			return nil, err
		}
		out = append(out, pg.Items...)
		if len(pg.Items) < listLimit || len(out) >= pg.Total {
			break
		}
	}
	return out, nil
}

func itoa(i int) string { return strconv.Itoa(i) }

// catalog is the landing page: published and deprecated APIs, searched
// by words and filtered by tag.
func (p *Portal) catalog(rq *request) error {
	apis, err := listAll[apiRecord](p, rq, "/apis", nil)
	if err != nil {
		return err
	}
	q := strings.TrimSpace(rq.r.URL.Query().Get("q"))
	tag := rq.r.URL.Query().Get("tag")
	tags := map[string]bool{}
	var shown []apiRecord
	for _, a := range apis {
		if a.State != "published" && a.State != "deprecated" {
			continue // the catalog is what developers can use
		}
		for _, t := range a.Tags {
			tags[t] = true
		}
		if tag != "" && !slices.Contains(a.Tags, tag) {
			continue
		}
		if q != "" && !matches(a, q) {
			continue
		}
		shown = append(shown, a)
	}
	sort.Slice(shown, func(i, j int) bool {
		if shown[i].title() != shown[j].title() {
			return strings.ToLower(shown[i].title()) < strings.ToLower(shown[j].title())
		}
		return shown[i].Version < shown[j].Version
	})
	var tagList []string
	for t := range tags {
		tagList = append(tagList, t)
	}
	sort.Strings(tagList)
	return p.render(rq, "catalog", "APIs", map[string]any{"APIs": shown, "Query": q, "Tag": tag, "Tags": tagList})
}

// matches says whether every word of q is in the API's name, id,
// version, description or tags.
func matches(a apiRecord, q string) bool {
	hay := strings.ToLower(strings.Join(append([]string{a.ID, a.Name, a.Version, a.Description, a.BasePath}, a.Tags...), " "))
	for _, w := range strings.Fields(strings.ToLower(q)) {
		if !strings.Contains(hay, w) {
			return false
		}
	}
	return true
}

// tierView is a tier as the API page shows it.
type tierView struct {
	Name   string
	Limits []string
}

func (p *Portal) tiers(rq *request, names []string) []tierView {
	var out []tierView
	policies, err := listAll[policyRecord](p, rq, "/policies", nil)
	if err != nil {
		return nil
	}
	for _, pol := range policies {
		if len(names) > 0 && !slices.Contains(names, pol.Name) {
			continue
		}
		tv := tierView{Name: pol.Name}
		for _, l := range pol.Limits {
			s := l.Requests.String() + " per " + humanDuration(l.Per)
			if l.Burst != "" {
				s += " (burst " + l.Burst.String() + ")"
			}
			tv.Limits = append(tv.Limits, s)
		}
		out = append(out, tv)
	}
	if len(names) > 0 { // in the API's order: the first is the default
		sort.SliceStable(out, func(i, j int) bool { return slices.Index(names, out[i].Name) < slices.Index(names, out[j].Name) })
	}
	return out
}

func humanDuration(s string) string {
	d, err := time.ParseDuration(s)
	if err != nil {
		return s
	}
	switch {
	case d == time.Second:
		return "second"
	case d == time.Minute:
		return "minute"
	case d == time.Hour:
		return "hour"
	case d == 24*time.Hour:
		return "day"
	}
	return d.String()
}

// apiPage is an API's reference: what the store knows of it, its
// OpenAPI document rendered by the vendored Swagger UI, subscribing and
// a try-it.
func (p *Portal) apiPage(rq *request) error {
	id := rq.r.PathValue("id")
	var a apiRecord
	if err := p.api.do(rq.ctx(), rq.who, http.MethodGet, "/apis/"+url.PathEscape(id), nil, nil, &a); err != nil {
		return err
	}
	if rq.who.Role == "developer" && a.State != "published" && a.State != "deprecated" {
		return errNotFound
	}
	data := map[string]any{"API": a, "TryIt": p.tryIt != nil && rq.s.signedIn()}
	var doc []byte
	data["Document"] = p.api.do(rq.ctx(), rq.who, http.MethodGet, "/apis/"+url.PathEscape(id)+"/openapi", nil, nil, &doc) == nil
	if rq.s.signedIn() {
		data["Tiers"] = p.tiers(rq, a.Tiers)
		apps, err := listAll[applicationRecord](p, rq, "/applications", ownerQuery(rq))
		if err != nil {
			return err
		}
		subs, err := listAll[subscriptionRecord](p, rq, "/subscriptions", url.Values{"api": {a.ID}})
		if err != nil {
			return err
		}
		var mine []subscriptionRecord
		subscribed := map[string]bool{}
		for _, s := range subs {
			for _, app := range apps {
				if app.ID == s.Application {
					mine = append(mine, s)
					subscribed[app.ID] = true
				}
			}
		}
		var free []applicationRecord
		for _, app := range apps {
			if !subscribed[app.ID] {
				free = append(free, app)
			}
		}
		data["Subscriptions"], data["Unsubscribed"] = mine, free
		data["CanSubscribe"] = a.State == "published" && rq.who.Role != "publisher"
	}
	rq.w.Header().Set("Content-Security-Policy", cspReference)
	return p.render(rq, "api", a.title(), data)
}

// ownerQuery limits an admin's application lists to their own: the
// portal's "my applications" are the signed-in user's for every role.
func ownerQuery(rq *request) url.Values {
	return url.Values{"owner": {rq.who.Name}}
}

// apiDocument serves the stored OpenAPI document to the reference's
// renderer, as data: never rendered by the browser itself.
func (p *Portal) apiDocument(rq *request) error {
	var doc []byte
	if err := p.api.do(rq.ctx(), rq.who, http.MethodGet, "/apis/"+url.PathEscape(rq.r.PathValue("id"))+"/openapi", nil, nil, &doc); err != nil {
		return err
	}
	ct := "application/yaml"
	if len(doc) > 0 && (doc[0] == '{' || doc[0] == '[') {
		ct = "application/json"
	}
	rq.w.Header().Set("Content-Type", ct)
	rq.w.Header().Set("Content-Disposition", "attachment")
	p.saveSession(rq)
	_, _ = rq.w.Write(doc)
	return nil
}
