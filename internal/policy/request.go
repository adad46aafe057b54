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

// Upstream is what the request policies change, rendered for the proxy.
// The lists are disjoint: a header is either set or removed, so that the
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

// ApplyRequest runs ops in order on r. Each header's last change wins:
// set after remove sets it, remove after set removes it, and a rename
// moves the value the header has at that point (the client's or one an
// earlier policy set).
func ApplyRequest(ops []RequestOp, r Request) Upstream {
	var u Upstream
	if len(ops) == 0 {
		return u
	}
	var buf [4]headerChange // for the usual few
	headers := headerState{read: r.Headers, changes: buf[:0]}
	var query queryState
	rewrite := false
	for i := range ops {
		op := &ops[i]
		switch op.Kind {
		case SetHeader:
			headers.set(op.Name, op.Value)
		case RemoveHeader:
			headers.remove(op.Name)
		case RenameHeader:
			if v, ok := headers.get(op.Name); ok {
				headers.remove(op.Name)
				headers.set(op.Value, v)
			}
		case AddQuery:
			query.set(op.Name, op.Value)
		case RemoveQuery:
			query.remove(op.Name)
		case RewritePath:
			u.Path = op.Path.Expand(r.Vars, r.Path)
			rewrite = true
		case RewriteMethod:
			u.Method = op.Value
		}
	}
	u.SetHeaders, u.RemoveHeaders = headers.render()
	if !rewrite {
		u.SetQuery, u.RemoveQuery = query.render()
		return u
	}
	_, rawQuery, _ := strings.Cut(r.Target, "?")
	if q := query.applyTo(rawQuery, r.RemoveQuery); q != "" {
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

// headerState is the headers' state as the policies run: a change per
// name, in the order first changed.
type headerState struct {
	read    HeaderReader
	changes []headerChange
}

type headerChange struct {
	name, value string
	removed     bool
}

func (h *headerState) find(name string) *headerChange {
	for i := range h.changes {
		if h.changes[i].name == name {
			return &h.changes[i]
		}
	}
	return nil
}

func (h *headerState) get(name string) (string, bool) {
	if c := h.find(name); c != nil {
		return c.value, !c.removed
	}
	if h.read == nil {
		return "", false
	}
	return h.read.Get(name)
}

func (h *headerState) set(name, value string) {
	if c := h.find(name); c != nil {
		c.value, c.removed = value, false
		return
	}
	h.changes = append(h.changes, headerChange{name: name, value: value})
}

func (h *headerState) remove(name string) {
	if c := h.find(name); c != nil {
		c.value, c.removed = "", true
		return
	}
	h.changes = append(h.changes, headerChange{name: name, removed: true})
}

// render lists the changes: the headers set and the headers removed.
func (h *headerState) render() (set []Header, removed []string) {
	nRemoved := 0
	for _, c := range h.changes {
		if c.removed {
			nRemoved++
		}
	}
	if n := len(h.changes) - nRemoved; n > 0 {
		set = make([]Header, 0, n)
	}
	if nRemoved > 0 {
		removed = make([]string, 0, nRemoved)
	}
	for _, c := range h.changes {
		if c.removed {
			removed = append(removed, c.name)
		} else {
			set = append(set, Header{c.name, c.value})
		}
	}
	return set, removed
}

// queryState is the query parameters' changes, as headerState.
type queryState struct{ changes []headerChange }

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
