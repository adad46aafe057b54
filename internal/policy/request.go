package policy

import (
	"net/url"
	"strings"
)

// RequestKind says what one request policy does.
type RequestKind uint8

const (
	SetHeader RequestKind = iota
	RemoveHeader
	RenameHeader
	AddQuery
	RemoveQuery
	RewritePath
	RewriteMethod
)

var requestKindNames = [...]string{
	SetHeader: "setHeader", RemoveHeader: "removeHeader", RenameHeader: "renameHeader",
	AddQuery: "addQuery", RemoveQuery: "removeQuery", RewritePath: "rewritePath", RewriteMethod: "rewriteMethod",
}

func (k RequestKind) String() string { return requestKindNames[k] }

// RequestOp is one compiled request policy.
type RequestOp struct {
	Kind RequestKind
	// Name is the header (lower case) or query parameter; for a rename,
	// the header renamed.
	Name string
	// Value is the value set or added, the new name of a renamed header,
	// or the method.
	Value string
	// Path is the rewritePath template.
	Path PathTemplate
}

// VarSource gives the value of a template variable in a matched path
// (catalog.Template).
type VarSource interface {
	ParamValue(path, name string) string
}

// PathTemplate is a rewritePath value: literal text and the names of the
// matched operation's variables, in turn.
type PathTemplate struct {
	Parts []PathPart
}

// PathPart is literal text, or (Var set) a variable of the match.
type PathPart struct {
	Text string
	Var  string
}

// Expand writes the template with the variables' values in path.
func (t PathTemplate) Expand(vars VarSource, path string) string {
	var buf [256]byte
	b := buf[:0]
	for _, p := range t.Parts {
		if p.Var != "" {
			b = append(b, vars.ParamValue(path, p.Var)...)
			continue
		}
		b = append(b, p.Text...)
	}
	return string(b)
}

// HeaderReader reads the request's headers; names are lower case. ok is
// false when the header is absent.
type HeaderReader interface {
	Get(name string) (value string, ok bool)
}

// Upstream is what the request policies change, rendered for the proxy;
// its slices may be shared with the plan, and are never modified. The
// lists are disjoint: a header is either set or removed, so that the
// order in which a proxy applies them does not matter.
type Upstream struct {
	SetHeaders    []Header // name lower case
	RemoveHeaders []string
	SetQuery      []Header
	RemoveQuery   []string
	// Path is the new path, with its query, when the path was rewritten;
	// the query changes are then already in it and SetQuery and
	// RemoveQuery are empty.
	Path   string
	Method string // "" unchanged
}

// Header is a name and a value.
type Header struct{ Name, Value string }

// Changed reports whether the policies change anything.
func (u *Upstream) Changed() bool {
	return len(u.SetHeaders)+len(u.RemoveHeaders)+len(u.SetQuery)+len(u.RemoveQuery) > 0 || u.Path != "" || u.Method != ""
}

// Request is what the policies read from the request being changed.
type Request struct {
	Headers HeaderReader
	// Target is the request's path and query as sent.
	Target string
	// Vars gives the matched template's variables, read from Path.
	Vars VarSource
	Path string
	// RemoveQuery are parameters removed whatever the policies say (the
	// credential, _method), applied to a rewritten path's query too.
	RemoveQuery []string
}

// ApplyRequest runs ops in order on r (PlanRequest, then Apply).
func ApplyRequest(ops []RequestOp, r Request) Upstream { return PlanRequest(ops).Apply(r) }

// RequestPlan is a list of request policies worked out at load: what
// every request gets (headers set to the config's values and removed,
// query parameters, the method) and what depends on the request (a
// renamed header's value, the path's variables). Its slices are shared
// by every request's Upstream.
type RequestPlan struct {
	sets      []plannedHeader
	constSets []Header // the sets, when none depends on the request
	removes   []string
	query     queryState
	setQuery  []Header
	rmQuery   []string
	path      *PathTemplate
	method    string
}

// plannedHeader is a header the plan sets: from the request's header
// from when it has one, else to value when has, else not at all.
type plannedHeader struct {
	name, value, from string
	has               bool
}

// headerPlan is one header's state as the policies run, for PlanRequest.
type headerPlan struct {
	plannedHeader
	removed bool
}

// PlanRequest works out ops, run in order. Each header's last change
// wins: set after remove sets it, remove after set removes it, and a
// rename moves the value the header has at that point (the client's or
// one an earlier policy set); a rename of a header the request lacks
// does nothing.
func PlanRequest(ops []RequestOp) *RequestPlan {
	p := &RequestPlan{}
	var headers []headerPlan
	find := func(name string) *headerPlan {
		for i := range headers {
			if headers[i].name == name {
				return &headers[i]
			}
		}
		headers = append(headers, headerPlan{plannedHeader: plannedHeader{name: name}})
		return &headers[len(headers)-1]
	}
	untouched := func(name string) bool {
		for i := range headers {
			if headers[i].name == name {
				return false
			}
		}
		return true
	}
	for i := range ops {
		op := &ops[i]
		switch op.Kind {
		case SetHeader:
			*find(op.Name) = headerPlan{plannedHeader: plannedHeader{name: op.Name, value: op.Value, has: true}}
		case RemoveHeader:
			*find(op.Name) = headerPlan{plannedHeader: plannedHeader{name: op.Name}, removed: true}
		case RenameHeader:
			var src plannedHeader
			if untouched(op.Name) {
				src = plannedHeader{from: op.Name} // the client's, if sent
			} else if h := find(op.Name); !h.removed {
				src = h.plannedHeader
			} else {
				continue // removed before: nothing to move
			}
			to := find(op.Value)
			moved := headerPlan{plannedHeader: plannedHeader{name: op.Value, from: src.from, value: src.value, has: src.has}}
			if src.from != "" && !to.removed && to.has && to.from == "" {
				moved.value, moved.has = to.value, true // the client lacks it: the value set before stays
			}
			*to = moved
			*find(op.Name) = headerPlan{plannedHeader: plannedHeader{name: op.Name}, removed: true}
		case AddQuery:
			p.query.set(op.Name, op.Value)
		case RemoveQuery:
			p.query.remove(op.Name)
		case RewritePath:
			path := op.Path
			p.path = &path
		case RewriteMethod:
			p.method = op.Value
		}
	}
	dynamic := false
	for _, h := range headers {
		switch {
		case h.removed:
			p.removes = append(p.removes, h.name)
		case h.from != "" || h.has:
			p.sets = append(p.sets, h.plannedHeader)
			dynamic = dynamic || h.from != ""
		}
	}
	if !dynamic {
		for _, h := range p.sets {
			p.constSets = append(p.constSets, Header{h.name, h.value})
		}
	}
	p.setQuery, p.rmQuery = p.query.render()
	return p
}

// Apply is what the plan changes in r.
func (p *RequestPlan) Apply(r Request) Upstream {
	u := Upstream{RemoveHeaders: p.removes, Method: p.method}
	switch {
	case p.constSets != nil:
		u.SetHeaders = p.constSets
	case len(p.sets) > 0:
		u.SetHeaders = make([]Header, 0, len(p.sets))
		for _, h := range p.sets {
			if h.from != "" {
				if v, ok := r.Headers.Get(h.from); ok {
					u.SetHeaders = append(u.SetHeaders, Header{h.name, v})
					continue
				}
			}
			if h.has {
				u.SetHeaders = append(u.SetHeaders, Header{h.name, h.value})
			}
		}
	}
	if p.path == nil {
		u.SetQuery, u.RemoveQuery = p.setQuery, p.rmQuery
		return u
	}
	u.Path = p.path.Expand(r.Vars, r.Path)
	_, rawQuery, _ := strings.Cut(r.Target, "?")
	if q := p.query.applyTo(rawQuery, r.RemoveQuery); q != "" {
		u.Path += "?" + q
	}
	return u
}

// RewriteQuery is target's path with its query changed: set parameters
// replaced, removed ones dropped in every spelling, the rest as sent.
func RewriteQuery(target string, set []Header, remove []string) string {
	path, raw, _ := strings.Cut(target, "?")
	var q queryState
	for _, h := range set {
		q.set(h.Name, h.Value)
	}
	if out := q.applyTo(raw, remove); out != "" {
		return path + "?" + out
	}
	return path
}

// queryState is the query parameters' changes, a change per name in the
// order first changed, the last change of a name winning.
type queryState struct{ changes []headerChange }

type headerChange struct {
	name, value string
	removed     bool
}

func (q *queryState) set(name, value string) {
	for i := range q.changes {
		if q.changes[i].name == name {
			q.changes[i] = headerChange{name: name, value: value}
			return
		}
	}
	q.changes = append(q.changes, headerChange{name: name, value: value})
}

func (q *queryState) remove(name string) {
	for i := range q.changes {
		if q.changes[i].name == name {
			q.changes[i] = headerChange{name: name, removed: true}
			return
		}
	}
	q.changes = append(q.changes, headerChange{name: name, removed: true})
}

func (q *queryState) render() (set []Header, removed []string) {
	for _, c := range q.changes {
		if c.removed {
			removed = append(removed, c.name)
		} else {
			set = append(set, Header{c.name, c.value})
		}
	}
	return set, removed
}

// applyTo rewrites a raw query: parameters removed (by the policies or
// always) or set are dropped wherever they occur, in every spelling that
// decodes to their name, and the set ones appended. The rest keep their
// bytes as sent.
func (q *queryState) applyTo(raw string, alwaysRemoved []string) string {
	drop := func(name string) bool {
		for _, c := range q.changes {
			if c.name == name {
				return true
			}
		}
		for _, n := range alwaysRemoved {
			if n == name {
				return true
			}
		}
		return false
	}
	var out []string
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		key, _, _ := strings.Cut(part, "=")
		name, err := url.QueryUnescape(key)
		if err != nil || drop(name) || drop(key) {
			continue
		}
		out = append(out, part)
	}
	for _, c := range q.changes {
		if !c.removed {
			out = append(out, url.QueryEscape(c.name)+"="+url.QueryEscape(c.value))
		}
	}
	return strings.Join(out, "&")
}
