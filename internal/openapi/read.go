package openapi

import (
	"log/slog"
	"strings"

	yaml "github.com/pb33f/go-yaml"
	"github.com/pb33f/libopenapi"
	"github.com/pb33f/libopenapi/datamodel"
	"github.com/pb33f/libopenapi/datamodel/high/base"
	v2 "github.com/pb33f/libopenapi/datamodel/high/v2"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
	"github.com/pb33f/libopenapi/orderedmap"
)

// spec is what Tollgate reads of a document, the same for every version.
type spec struct {
	version     string
	title       string
	apiVersion  string
	description string
	tags        []string // the document's tag names
	ext         extensions

	// basePath is the document's own (Swagger basePath, the path of the
	// first server); baseLoc is where it was written.
	basePath string
	baseLoc  string
	baseErr  string // why the servers give no usable base path

	security *securityList // nil: not written
	schemes  map[string]scheme
	paths    []pathSpec
}

// securityList is a security field as written; an empty reqs is
// "security: []".
type securityList struct {
	loc  string
	reqs []requirement
}

// requirement is one security requirement object: scheme names, each with
// its scopes, all required together. No names is {}: anonymous access.
type requirement struct {
	loc    string
	names  []string
	scopes [][]string
}

type pathSpec struct {
	path string
	loc  string
	ops  []opSpec
}

type opSpec struct {
	method   string // upper case
	loc      string
	security *securityList
	ext      extensions
	// servers, if set, is the base path this operation's own servers (or
	// its path item's) give it.
	servers    *string
	serversLoc string
}

// extensions are the x-tollgate-* values of one object.
type extensions struct {
	loc    string
	values map[string]*yaml.Node
	order  []string
}

func readExtensions(loc string, m *orderedmap.Map[string, *yaml.Node]) extensions {
	x := extensions{loc: loc, values: map[string]*yaml.Node{}}
	if m == nil {
		return x
	}
	for k, v := range m.FromOldest() {
		if isTollgateExt(k) {
			x.values[k] = v
			x.order = append(x.order, k)
		}
	}
	return x
}

// read builds the spec with the OpenAPI library from the pruned document.
func (im *importer) read(pruned []byte, kind specKind) *spec {
	cfg := &datamodel.DocumentConfiguration{
		Logger: slog.New(slog.DiscardHandler),
		// Nothing outside the document is read: an uploaded document must
		// not make the control plane open its files or fetch URLs.
		SkipExternalRefResolution: true,
		ExcludeExtensionRefs:      true,
		// Its JSON form only serves a duplicate-key check, done while
		// pruning already; on a large document it is most of the cost.
		SkipJSONConversion: true,
	}
	doc, err := libopenapi.NewDocumentWithConfiguration(pruned, cfg)
	if err != nil {
		im.libraryErrors(err)
		return nil
	}
	defer doc.Release()
	s := &spec{version: doc.GetVersion(), schemes: map[string]scheme{}}
	switch kind {
	case swagger2:
		m, err := doc.BuildV2Model()
		if err != nil || m == nil {
			im.libraryErrors(err)
			return nil
		}
		im.readV2(s, &m.Model)
	default:
		m, err := doc.BuildV3Model()
		if err != nil || m == nil {
			im.libraryErrors(err)
			return nil
		}
		im.readV3(s, &m.Model)
	}
	return s
}

// libraryErrors reports what the library refused, one problem each.
func (im *importer) libraryErrors(err error) {
	if err == nil {
		im.problems.addf("", "the document could not be read")
		return
	}
	seen := map[string]bool{}
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				if e != nil {
					walk(e)
				}
			}
			return
		}
		if msg := strings.TrimSpace(e.Error()); !seen[msg] {
			seen[msg] = true
			im.problems.addf("", "%s", msg)
		}
	}
	walk(err)
}

func readInfo(s *spec, info *base.Info) {
	if info == nil {
		return
	}
	s.title, s.apiVersion, s.description = info.Title, info.Version, info.Description
}

// readSecurity reads a security field; written says whether the field
// is there at all (the library's high model has no other way to tell
// "security: []" from no security in Swagger 2.0).
func readSecurity(loc string, written bool, high []*base.SecurityRequirement) *securityList {
	if !written {
		return nil
	}
	l := &securityList{loc: loc}
	for i, r := range high {
		req := requirement{loc: index(loc, i)}
		if r != nil && r.Requirements != nil {
			for name, scopes := range r.Requirements.FromOldest() {
				req.names = append(req.names, name)
				req.scopes = append(req.scopes, scopes)
			}
		}
		l.reqs = append(l.reqs, req)
	}
	return l
}

// readTags keeps the names of a document's tags.
func readTags(s *spec, tags []*base.Tag) {
	for _, t := range tags {
		if t != nil && t.Name != "" {
			s.tags = append(s.tags, t.Name)
		}
	}
}

func (im *importer) readV2(s *spec, d *v2.Swagger) {
	readInfo(s, d.Info)
	readTags(s, d.Tags)
	s.ext = readExtensions("", d.Extensions)
	s.basePath, s.baseLoc = d.BasePath, "basePath"
	s.security = readSecurity("security", !d.GoLow().Security.IsEmpty(), d.Security)
	if d.SecurityDefinitions != nil && d.SecurityDefinitions.Definitions != nil {
		for name, sc := range d.SecurityDefinitions.Definitions.FromOldest() {
			if sc == nil {
				continue
			}
			s.schemes[name] = schemeOf(join("securityDefinitions", name), sc.Type, sc.In, sc.Name, "")
		}
	}
	if d.Paths == nil || d.Paths.PathItems == nil {
		return
	}
	for path, item := range d.Paths.PathItems.FromOldest() {
		ps := pathSpec{path: path, loc: join("paths", path)}
		if item == nil {
			s.paths = append(s.paths, ps)
			continue
		}
		for _, m := range []struct {
			name string
			op   *v2.Operation
		}{{"get", item.Get}, {"put", item.Put}, {"post", item.Post}, {"delete", item.Delete}, {"options", item.Options}, {"head", item.Head}, {"patch", item.Patch}} {
			if m.op == nil {
				continue
			}
			loc := join(ps.loc, m.name)
			ps.ops = append(ps.ops, opSpec{
				method:   strings.ToUpper(m.name),
				loc:      loc,
				security: readSecurity(join(loc, "security"), !m.op.GoLow().Security.IsEmpty(), m.op.Security),
				ext:      readExtensions(loc, m.op.Extensions),
			})
		}
		s.paths = append(s.paths, ps)
	}
}

func (im *importer) readV3(s *spec, d *v3.Document) {
	readInfo(s, d.Info)
	readTags(s, d.Tags)
	s.ext = readExtensions("", d.Extensions)
	if len(d.Servers) > 0 {
		s.basePath, s.baseErr = serverBasePath(d.Servers[0])
		s.baseLoc = "servers[0].url"
		for i, srv := range d.Servers[1:] {
			if p, problem := serverBasePath(srv); problem == "" && s.baseErr == "" && trimBase(p) != trimBase(s.basePath) {
				im.warnf("servers[%d]: its base path %q differs from the first server's %q; Tollgate serves the API under the first", i+1, p, s.basePath)
			}
		}
	}
	s.security = readSecurity("security", !d.GoLow().Security.IsEmpty(), d.Security)
	if d.Components != nil && d.Components.SecuritySchemes != nil {
		for name, sc := range d.Components.SecuritySchemes.FromOldest() {
			if sc == nil {
				continue
			}
			s.schemes[name] = schemeOf(join("components.securitySchemes", name), sc.Type, sc.In, sc.Name, sc.Scheme)
		}
	}
	if d.Paths == nil || d.Paths.PathItems == nil {
		return
	}
	for path, item := range d.Paths.PathItems.FromOldest() {
		ps := pathSpec{path: path, loc: join("paths", path)}
		if item == nil {
			s.paths = append(s.paths, ps)
			continue
		}
		if item.Reference != "" && item.Get == nil && item.Put == nil && item.Post == nil && item.Delete == nil &&
			item.Options == nil && item.Head == nil && item.Patch == nil && item.Trace == nil && item.Query == nil {
			im.problems.addf(join(ps.loc, "$ref"), "%q could not be resolved within the document", item.Reference)
		}
		ops := []struct {
			name string
			op   *v3.Operation
		}{{"get", item.Get}, {"put", item.Put}, {"post", item.Post}, {"delete", item.Delete}, {"options", item.Options},
			{"head", item.Head}, {"patch", item.Patch}, {"trace", item.Trace}, {"query", item.Query}}
		if item.AdditionalOperations != nil {
			for name, op := range item.AdditionalOperations.FromOldest() {
				ops = append(ops, struct {
					name string
					op   *v3.Operation
				}{name, op})
			}
		}
		for _, m := range ops {
			if m.op == nil {
				continue
			}
			loc := join(ps.loc, m.name)
			o := opSpec{
				method:   strings.ToUpper(m.name),
				loc:      loc,
				security: readSecurity(join(loc, "security"), !m.op.GoLow().Security.IsEmpty(), m.op.Security),
				ext:      readExtensions(loc, m.op.Extensions),
			}
			servers, serversLoc := m.op.Servers, join(loc, "servers")
			if len(servers) == 0 {
				servers, serversLoc = item.Servers, join(ps.loc, "servers")
			}
			if len(servers) > 0 {
				p, problem := serverBasePath(servers[0])
				if problem != "" {
					im.problems.addf(index(serversLoc, 0)+".url", "%s", problem)
				}
				o.servers, o.serversLoc = &p, serversLoc
			}
			ps.ops = append(ps.ops, o)
		}
		s.paths = append(s.paths, ps)
	}
}
