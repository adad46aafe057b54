package openapi

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	yaml "github.com/pb33f/go-yaml"

	"github.com/tollgate/tollgate/internal/catalog"
	"github.com/tollgate/tollgate/internal/keys"
	"github.com/tollgate/tollgate/internal/model"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// importer holds one import's problems and warnings.
type importer struct {
	opts     Options
	problems problems
	warnings []string
	warned   map[string]bool
	// opLocs is where each operation of the API was written, for
	// problems the data plane's validation finds.
	opLocs []string
	sec    *secMapper
	// rootSecurity is the document's top-level security as mapped, once
	// an operation uses it.
	rootSecurity []string
}

func (im *importer) warnf(format string, args ...any) {
	w := fmt.Sprintf(format, args...)
	if im.warned == nil {
		im.warned = map[string]bool{}
	}
	if !im.warned[w] {
		im.warned[w] = true
		im.warnings = append(im.warnings, w)
	}
}

func (im *importer) run(doc []byte) *Result {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		im.problems.addf("", "neither JSON nor YAML: %v", err)
		return nil
	}
	p := newPruner(&im.problems, len(doc))
	pruned := p.prune(&root)
	if im.problems.any() {
		return nil
	}
	out, err := yaml.Marshal(pruned)
	if err != nil {
		im.problems.addf("", "the document could not be read: %v", err)
		return nil
	}
	s := im.read(out, p.kind)
	if s == nil || im.problems.any() {
		return nil
	}
	res := im.build(s)
	if im.problems.any() {
		return nil
	}
	im.validate(res.API)
	res.Warnings = im.warnings
	return res
}

// tollgateMethods are the methods Tollgate matches, in the order an
// operation lists them.
var tollgateMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}

func methodRank(m string) int { return slices.Index(tollgateMethods, m) }

// built is one method of one path, mapped.
type built struct {
	docPath  string
	loc      string
	tmpl     template
	method   string
	security []string
	scopes   []string
	rate     string
	// unsecured: no security requirement applies to it in the document;
	// it takes the API's security, as in the data plane.
	unsecured bool
}

// settings are what an operation enforces: methods with equal settings
// on one path become one operation. (A scope may hold a comma, never a
// control character.)
func (b *built) settings() string {
	return strings.Join(b.security, "\x01") + "\x00" + strings.Join(b.scopes, "\x01") + "\x00" + b.rate
}

func (im *importer) build(s *spec) *Result {
	x := s.ext
	im.checkNames(x, rootExtensions, "at the top of the document")
	api := &tollgatev1.Api{
		Name:    im.text("info.title", s.title),
		Version: im.text("info.version", s.apiVersion),
	}
	api.Id = im.apiID(s)
	api.BasePath = im.basePath(s)
	if hosts, ok := im.extList(x, "x-tollgate-hosts"); ok {
		api.Hosts = hosts
	}
	if auds, ok := im.extList(x, "x-tollgate-audiences"); ok {
		for i, a := range auds {
			if a == "" {
				im.problems.addf(index("x-tollgate-audiences", i), "an audience cannot be empty")
			}
		}
		api.Audiences = auds
	}
	api.RateLimit = im.extPolicy(x, "x-tollgate-rate-limit")
	api.AnonymousRateLimit = im.extPolicy(x, "x-tollgate-anonymous-rate-limit")
	res := &Result{
		API:              api,
		SpecVersion:      s.version,
		Title:            s.title,
		Description:      s.description,
		Tags:             s.tags,
		RequiresApproval: im.extBool(x, "x-tollgate-subscription-approval"),
	}
	base, err := catalog.ParseTemplate(cmp.Or(api.BasePath, "/"))
	if err != nil {
		return res // reported with the base path
	}
	ops := im.operations(s, base)
	if im.problems.any() {
		return res
	}
	api.Security = im.apiSecurity(s, ops)
	if im.problems.any() {
		return res
	}
	im.assemble(api, ops)
	if usesAPIKey(api) {
		if im.sec.keyIn == "query" {
			api.ApiKey = &tollgatev1.ApiKeyLocation{Query: im.sec.keyName}
		} else {
			api.ApiKey = &tollgatev1.ApiKeyLocation{Header: strings.ToLower(im.sec.keyName)}
		}
	}
	return res
}

func usesAPIKey(api *tollgatev1.Api) bool {
	uses := func(security []string) bool {
		return slices.ContainsFunc(security, func(s string) bool { return slices.Contains(strings.Split(s, "+"), "apiKey") })
	}
	if uses(api.Security) {
		return true
	}
	return slices.ContainsFunc(api.Operations, func(o *tollgatev1.Operation) bool { return uses(o.Security) })
}

// operations maps every method of every path.
func (im *importer) operations(s *spec, base catalog.Template) []*built {
	rootPublic := im.extBool(s.ext, "x-tollgate-public")
	if rootPublic && s.security != nil && len(s.security.reqs) > 0 {
		im.warnf("security: x-tollgate-public: true at the top makes operations without their own security public; the top-level security is not used")
	}
	declared := rootPublic || s.security != nil && len(s.security.reqs) > 0
	for _, p := range s.paths {
		for _, o := range p.ops {
			declared = declared || o.security != nil || o.ext.values["x-tollgate-public"] != nil
		}
	}
	if !declared {
		im.problems.addf("security", "the document sets no security anywhere, and Tollgate does not make an API public by omission: add security requirements, or x-tollgate-public: true at the top to import it as a public API")
		return nil
	}
	sec := newSecMapper(im, s)
	im.sec = sec
	var out []*built
	for _, p := range s.paths {
		if len(p.ops) == 0 {
			continue
		}
		tmpl, tmplErr := pathTemplate(p.path, base)
		for _, o := range p.ops {
			b := im.operation(s, sec, p, o, rootPublic)
			if b == nil {
				continue
			}
			label := o.method + " " + p.path
			why := ""
			switch {
			case tmplErr != nil:
				why = tmplErr.Error()
			case methodRank(o.method) < 0:
				why = fmt.Sprintf("Tollgate does not match the method %s", o.method)
			case o.servers != nil && trimBase(*o.servers) != trimBase(s.basePath):
				why = fmt.Sprintf("its servers put it under %q, not under the API's base path", *o.servers)
			}
			if why != "" {
				if slices.Equal(b.security, []string{"none"}) {
					im.warnf("%s: not imported, it is public and %s; requests to it match no operation of the API", label, why)
				} else {
					im.problems.addf(o.loc, "cannot be imported: %s", why)
				}
				continue
			}
			for _, n := range tmpl.notes {
				im.warnf("%s: %s", label, n)
			}
			b.tmpl = tmpl
			out = append(out, b)
		}
	}
	sec.finish()
	if len(out) == 0 && !im.problems.any() {
		im.problems.addf("paths", "the document has no operation to import")
	}
	return out
}

// operation maps one method of a path: its security, scopes and rate limit.
func (im *importer) operation(s *spec, sec *secMapper, p pathSpec, o opSpec, rootPublic bool) *built {
	label := o.method + " " + p.path
	im.checkNames(o.ext, operationExtensions, "on an operation")
	b := &built{docPath: p.path, loc: o.loc, method: o.method, rate: im.extPolicy(o.ext, "x-tollgate-rate-limit")}
	public := im.extBool(o.ext, "x-tollgate-public")
	var list *securityList
	switch {
	case public:
		if o.security != nil && len(o.security.reqs) > 0 {
			im.warnf("%s: x-tollgate-public: true makes it public; its security is not used", label)
		}
	case o.security != nil:
		list = o.security
	case rootPublic:
	case s.security != nil && len(s.security.reqs) > 0:
		list = s.security
	default:
		b.unsecured = true
	}
	switch {
	case b.unsecured:
	case list == nil || len(list.reqs) == 0:
		b.security = []string{"none"}
	default:
		sec.uses(list, label)
		alts, ok := sec.alternatives(list)
		if !ok {
			return nil
		}
		// With x-tollgate-scopes the document's scopes are not used.
		quiet := o.ext.values["x-tollgate-scopes"] != nil
		b.security, b.scopes = sec.resolve(label, list.loc, alts, quiet)
		if list == s.security {
			im.rootSecurity = b.security
		}
	}
	if override, ok := im.extList(o.ext, "x-tollgate-scopes"); ok {
		b.scopes = im.scopeOverride(join(o.loc, "x-tollgate-scopes"), override)
	} else if o.ext.values["x-tollgate-scopes"] != nil {
		return nil
	}
	if slices.Equal(b.security, []string{"none"}) {
		if len(b.scopes) > 0 {
			im.warnf("%s: its scopes are not used: it is public", label)
		}
		b.scopes = nil
	}
	return b
}

// apiSecurity chooses the API's security and gives it to the operations
// that have none. It is the document's top-level security where
// operations use it; otherwise every alternative the operations accept,
// so that an operation the document leaves without security needs one of
// the API's credentials: Tollgate never makes an operation public by
// omission, as the data plane never does (an operation without security
// takes its API's, and an API must list some).
func (im *importer) apiSecurity(s *spec, ops []*built) []string {
	security := im.rootSecurity
	if security == nil {
		for _, b := range ops {
			for _, alt := range b.security {
				if alt != "none" && !slices.Contains(security, alt) {
					security = append(security, alt)
				}
			}
		}
	}
	for _, b := range ops {
		if !b.unsecured {
			continue
		}
		label := b.method + " " + b.docPath
		if security == nil {
			im.problems.addf(b.loc, "no security requirement applies to it, and the document has no security Tollgate could require instead; Tollgate does not make an operation public by omission: add security, or x-tollgate-public: true")
			continue
		}
		b.security = security
		im.warnf("%s: no security requirement applies to it; Tollgate does not make an operation public by omission, so it needs the API's security %s (x-tollgate-public: true makes it public)",
			label, formatList(security))
	}
	if security == nil {
		return []string{"none"}
	}
	return security
}

// scopeOverride reads x-tollgate-scopes: each entry one scope, or several
// separated by spaces, all of which are needed.
func (im *importer) scopeOverride(loc string, entries []string) []string {
	out := []string{}
	for i, e := range entries {
		words := strings.Fields(e)
		if len(words) == 0 {
			im.problems.addf(index(loc, i), "an entry names at least one scope")
			continue
		}
		for _, w := range words {
			if !keys.ValidScope(w) {
				im.problems.addf(index(loc, i), "a scope is printable ASCII without spaces, quotes or backslashes (RFC 6749), got %q", w)
			}
		}
		if entry := strings.Join(words, " "); !slices.Contains(out, entry) {
			out = append(out, entry)
		}
	}
	return out
}

// assemble groups the mapped methods into operations. An operation whose
// security is the API's leaves it to the API (an operation's own security
// replaces the API's in the data plane).
func (im *importer) assemble(api *tollgatev1.Api, ops []*built) {
	type group struct {
		path    string
		docPath string
		methods map[string]*built
	}
	groups := map[string]*group{}
	var order []string
	for _, b := range ops {
		g := groups[b.tmpl.canonical]
		if g == nil {
			g = &group{path: b.tmpl.path, docPath: b.docPath, methods: map[string]*built{}}
			groups[b.tmpl.canonical] = g
			order = append(order, b.tmpl.canonical)
		} else if b.docPath != g.docPath {
			im.warnf("paths %s and %s match the same requests; both are imported as %s", g.docPath, b.docPath, g.path)
		}
		if have := g.methods[b.method]; have != nil {
			if have.settings() != b.settings() {
				im.problems.addf(b.loc, "matches the same requests as %s, with other security, scopes or rate limit", have.loc)
			}
			continue
		}
		g.methods[b.method] = b
	}
	if im.problems.any() {
		return
	}
	type op struct {
		o   *tollgatev1.Operation
		loc string
	}
	var result []op
	for _, canon := range order {
		g := groups[canon]
		methods := slices.SortedFunc(maps.Keys(g.methods), func(a, b string) int { return methodRank(a) - methodRank(b) })
		bySettings := map[string]*op{}
		var seen []string
		for _, m := range methods {
			b := g.methods[m]
			k := b.settings()
			if o := bySettings[k]; o != nil {
				o.o.Methods = append(o.o.Methods, m)
				continue
			}
			bySettings[k] = &op{o: &tollgatev1.Operation{Path: g.path, Methods: []string{m}, Scopes: slices.Clone(b.scopes), Security: slices.Clone(b.security), RateLimit: b.rate}, loc: b.loc}
			seen = append(seen, k)
		}
		for _, k := range seen {
			result = append(result, *bySettings[k])
		}
	}
	slices.SortStableFunc(result, func(a, b op) int {
		return cmp.Or(strings.Compare(a.o.Path, b.o.Path), methodRank(a.o.Methods[0])-methodRank(b.o.Methods[0]))
	})
	best := strings.Join(api.Security, ",")
	for _, r := range result {
		if strings.Join(r.o.Security, ",") == best {
			r.o.Security = nil
		}
		api.Operations = append(api.Operations, r.o)
		im.opLocs = append(im.opLocs, r.loc)
	}
}

func (im *importer) apiID(s *spec) string {
	if im.opts.ID != "" {
		if !model.ValidID(im.opts.ID) {
			im.problems.addf("", "the API id %q is not an id: up to 128 letters, digits, '-', '_' or '.', starting with a letter or digit", im.opts.ID)
		}
		return im.opts.ID
	}
	if id, ok := im.extString(s.ext, "x-tollgate-id"); ok {
		if !model.ValidID(id) {
			im.problems.addf("x-tollgate-id", "want up to 128 letters, digits, '-', '_' or '.', starting with a letter or digit; got %q", id)
		}
		return id
	}
	return slugID(s.title, s.apiVersion)
}

// slugID is title-version in lower-case letters, digits and '-', at most
// 63 characters (a DNS label, so that it fits wherever an id goes).
func slugID(title, version string) string {
	id := slug(title)
	if v := slug(version); v != "" {
		id = strings.Trim(id+"-"+v, "-")
	}
	if len(id) > 63 {
		id = strings.TrimRight(id[:63], "-")
	}
	if id == "" {
		return "api"
	}
	return id
}

func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if 'a' <= r && r <= 'z' || '0' <= r && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimRight(b.String(), "-")
}

// text makes s a name the data plane accepts: printable, at most 256
// bytes. Names are only shown, so a long or odd one is fixed, not refused.
func (im *importer) text(loc, s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			r = ' '
		}
		b.WriteRune(r)
	}
	out := strings.TrimSpace(b.String())
	for len(out) > 256 {
		_, size := utf8.DecodeLastRuneInString(out)
		out = out[:len(out)-size]
	}
	if out != strings.TrimSpace(s) {
		im.warnf("%s: shortened to printable text of at most 256 bytes", loc)
	}
	return out
}

func (im *importer) basePath(s *spec) string {
	if _, ok := s.ext.values["x-tollgate-base-path"]; ok {
		p, ok := im.extString(s.ext, "x-tollgate-base-path")
		if !ok {
			return ""
		}
		return im.checkBase(p, "x-tollgate-base-path")
	}
	if s.baseErr != "" {
		im.problems.addf(s.baseLoc, "%s; x-tollgate-base-path can say where the API is served", s.baseErr)
		return ""
	}
	return im.checkBase(s.basePath, s.baseLoc)
}

func (im *importer) checkBase(p, loc string) string {
	p = trimBase(p)
	if p == "" {
		return ""
	}
	if !strings.HasPrefix(p, "/") {
		im.problems.addf(loc, "a base path starts with /, got %q", p)
		return ""
	}
	t, err := catalog.ParseTemplate(p)
	if err != nil {
		im.problems.addf(loc, "not a base path Tollgate can match: %v", err)
		return ""
	}
	return t.String()
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
