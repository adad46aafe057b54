package openapi

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	yaml "github.com/pb33f/go-yaml"
)

// The document is cut down to what Tollgate reads before the OpenAPI
// library sees it: versions, info, servers, paths with their operations'
// security, servers and x-tollgate extensions, security schemes and
// security. Schemas, parameters, bodies and responses are not Tollgate's
// concern, and they are where documents grow large and circular. What is
// kept is also type-checked here, so the library (which builds its model
// on goroutines that no recover reaches) is only handed well-formed
// shapes, and aliases are expanded under a budget, so that an alias bomb
// costs a bounded amount of work.

const (
	// maxDepth bounds nesting inside the parts copied as they are
	// (extension values): Tollgate reads nothing nested deeper.
	maxDepth = 16
	// maxPaths bounds the paths of one API.
	maxPaths = 20000
)

type specKind int

const (
	swagger2 specKind = 2
	openapi3 specKind = 3
)

// pruner copies the parts of a document Tollgate reads.
type pruner struct {
	ps   *problems
	kind specKind
	// budget bounds the nodes visited, aliases expanded: a document has
	// fewer nodes than bytes, so only aliases can exhaust it.
	budget int
	over   bool // the budget ran out; reported once
}

func newPruner(ps *problems, size int) *pruner {
	return &pruner{ps: ps, budget: size + 1<<16}
}

// entry is one key of a mapping, merge keys applied.
type entry struct {
	key string
	val *yaml.Node
}

func (p *pruner) visit(loc string) bool {
	p.budget--
	if p.budget < 0 {
		if !p.over {
			p.ps.addf(loc, "the document's YAML aliases expand it to more nodes than it has bytes")
			p.over = true
		}
		return false
	}
	return true
}

// resolve follows aliases.
func (p *pruner) resolve(n *yaml.Node) *yaml.Node {
	for hops := 0; n != nil && n.Kind == yaml.AliasNode; hops++ {
		if hops > 64 {
			return nil
		}
		n = n.Alias
	}
	return n
}

// entries lists a mapping's keys in order, with YAML merge keys ("<<")
// applied as the library would: keys written in the mapping win over
// merged ones. A key written twice is a problem: readers disagree on which
// one counts.
func (p *pruner) entries(n *yaml.Node, loc string) []entry {
	var out []entry
	seen := map[string]bool{}
	p.collect(n, loc, 0, seen, &out, true)
	return out
}

func (p *pruner) collect(n *yaml.Node, loc string, depth int, seen map[string]bool, out *[]entry, own bool) {
	n = p.resolve(n)
	if n == nil || depth > maxDepth || !p.visit(loc) {
		return
	}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := p.resolve(n.Content[i]), n.Content[i+1]
		if k == nil || k.Kind != yaml.ScalarNode {
			p.ps.addf(loc, "keys must be strings")
			continue
		}
		if k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if seen[k.Value] {
			if own {
				p.ps.addf(join(loc, k.Value), "written twice")
			}
			continue
		}
		seen[k.Value] = true
		*out = append(*out, entry{k.Value, v})
	}
	for _, m := range merges {
		m = p.resolve(m)
		switch {
		case m == nil:
		case m.Kind == yaml.MappingNode:
			p.collect(m, loc, depth+1, seen, out, false)
		case m.Kind == yaml.SequenceNode:
			for _, item := range m.Content {
				if item = p.resolve(item); item != nil && item.Kind == yaml.MappingNode {
					p.collect(item, loc, depth+1, seen, out, false)
				}
			}
		}
	}
}

// mapping resolves n and requires a mapping.
func (p *pruner) mapping(n *yaml.Node, loc, want string) *yaml.Node {
	n = p.resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		p.ps.addf(loc, "want %s", want)
		return nil
	}
	return n
}

func (p *pruner) sequence(n *yaml.Node, loc, want string) *yaml.Node {
	n = p.resolve(n)
	if n == nil || n.Kind != yaml.SequenceNode {
		p.ps.addf(loc, "want %s", want)
		return nil
	}
	return n
}

// scalar copies a scalar, its value kept and its tag one of YAML's core
// tags, so that the library reads the same value.
func (p *pruner) scalar(n *yaml.Node, loc string) *yaml.Node {
	n = p.resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode {
		p.ps.addf(loc, "want a string")
		return nil
	}
	if !p.visit(loc) {
		return nil
	}
	return scalarNode(n.Value, coreTag(n))
}

func coreTag(n *yaml.Node) string {
	switch t := n.ShortTag(); t {
	case "!!str", "!!int", "!!float", "!!bool", "!!null":
		return t
	}
	return "!!str"
}

func scalarNode(value, tag string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
	if tag == "!!str" {
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

func strNode(s string) *yaml.Node { return scalarNode(s, "!!str") }

// copyValue copies an extension's value as it is, aliases expanded,
// bounded in depth. Problems inside it are reported at loc, the
// extension: building a location per node would cost more than the copy.
func (p *pruner) copyValue(n *yaml.Node, loc string, depth int) *yaml.Node {
	n = p.resolve(n)
	if n == nil {
		return scalarNode("", "!!null")
	}
	if depth > maxDepth {
		p.ps.addf(loc, "nested too deeply")
		return nil
	}
	if !p.visit(loc) {
		return nil
	}
	switch n.Kind {
	case yaml.ScalarNode:
		return scalarNode(n.Value, coreTag(n))
	case yaml.SequenceNode:
		out := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, c := range n.Content {
			v := p.copyValue(c, loc, depth+1)
			if v == nil {
				return nil
			}
			out.Content = append(out.Content, v)
		}
		return out
	case yaml.MappingNode:
		out := newMapping()
		for _, e := range p.entries(n, loc) {
			v := p.copyValue(e.val, loc, depth+1)
			if v == nil {
				return nil
			}
			out.set(e.key, v)
		}
		return out.Node
	}
	return scalarNode("", "!!null")
}

type mappingNode struct{ *yaml.Node }

func newMapping() mappingNode {
	return mappingNode{&yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}}
}

func (m mappingNode) set(key string, v *yaml.Node) {
	m.Content = append(m.Content, strNode(key), v)
}

// join appends a key to a location: paths./pets.get.
func join(loc, key string) string {
	if loc == "" {
		return key
	}
	return loc + "." + key
}

func index(loc string, i int) string { return loc + "[" + strconv.Itoa(i) + "]" }

func isTollgateExt(key string) bool { return strings.HasPrefix(key, "x-tollgate-") }

// prune returns the parts of the document Tollgate reads, or nil.
func (p *pruner) prune(root *yaml.Node) *yaml.Node {
	if root.Kind == 0 {
		p.ps.addf("", "the document is empty")
		return nil
	}
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			p.ps.addf("", "the document is empty")
			return nil
		}
		root = root.Content[0]
	}
	root = p.resolve(root)
	if root == nil || root.Kind != yaml.MappingNode {
		p.ps.addf("", "not an OpenAPI document: want a mapping at the top")
		return nil
	}
	es := p.entries(root, "")
	version := map[string]*yaml.Node{}
	for _, e := range es {
		if e.key == "swagger" || e.key == "openapi" {
			version[e.key] = p.resolve(e.val)
		}
	}
	switch sw, oa := version["swagger"], version["openapi"]; {
	case sw != nil && oa != nil:
		p.ps.addf("", "both swagger and openapi are set")
		return nil
	case sw != nil:
		if sw.Kind != yaml.ScalarNode || sw.Value != "2.0" {
			p.ps.addf("swagger", "want \"2.0\"")
			return nil
		}
		p.kind = swagger2
	case oa != nil:
		if oa.Kind != yaml.ScalarNode || !strings.HasPrefix(oa.Value, "3.") {
			p.ps.addf("openapi", "Tollgate reads OpenAPI 3.x and Swagger 2.0 documents; want a version such as \"3.1.0\"")
			return nil
		}
		p.kind = openapi3
	default:
		p.ps.addf("", "not an OpenAPI document: it has neither openapi nor swagger")
		return nil
	}
	out := newMapping()
	for _, e := range es {
		var v *yaml.Node
		switch {
		case e.key == "swagger" || e.key == "openapi":
			v = p.scalar(e.val, e.key)
		case e.key == "info":
			v = p.info(e.val)
		case e.key == "paths":
			v = p.paths(e.val, "paths")
		case e.key == "security":
			v = p.security(e.val, "security")
		case e.key == "tags":
			v = p.tags(e.val)
		case isTollgateExt(e.key):
			v = p.copyValue(e.val, e.key, 0)
		case p.kind == swagger2 && e.key == "basePath":
			v = p.scalar(e.val, e.key)
		case p.kind == swagger2 && e.key == "securityDefinitions":
			v = p.schemes(e.val, e.key)
		case p.kind == openapi3 && e.key == "servers":
			v = p.servers(e.val, e.key)
		case p.kind == openapi3 && e.key == "components":
			v = p.components(e.val)
		case p.kind == openapi3 && (e.key == "jsonSchemaDialect" || e.key == "$self"):
			v = p.scalar(e.val, e.key)
		}
		if v != nil {
			out.set(e.key, v)
		}
	}
	return out.Node
}

func (p *pruner) info(n *yaml.Node) *yaml.Node {
	if n = p.mapping(n, "info", "an object"); n == nil {
		return nil
	}
	out := newMapping()
	for _, e := range p.entries(n, "info") {
		switch e.key {
		case "title", "version", "description", "summary":
			if v := p.scalar(e.val, join("info", e.key)); v != nil {
				out.set(e.key, v)
			}
		}
	}
	return out.Node
}

// tags keeps the names of the document's tags, the catalog's labels.
// They decide nothing, so a malformed list is left out, not a problem.
func (p *pruner) tags(n *yaml.Node) *yaml.Node {
	n = p.resolve(n)
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	out := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for i, t := range n.Content {
		if t = p.resolve(t); t == nil || t.Kind != yaml.MappingNode || !p.visit(fmt.Sprintf("tags[%d]", i)) {
			continue
		}
		for j := 0; j+1 < len(t.Content); j += 2 {
			if k, v := p.resolve(t.Content[j]), p.resolve(t.Content[j+1]); k != nil && k.Value == "name" && v != nil && v.Kind == yaml.ScalarNode {
				tag := newMapping()
				tag.set("name", strNode(v.Value))
				out.Content = append(out.Content, tag.Node)
			}
		}
	}
	return out
}

func (p *pruner) paths(n *yaml.Node, loc string) *yaml.Node {
	if n = p.mapping(n, loc, "an object of paths"); n == nil {
		return nil
	}
	out := newMapping()
	count := 0
	for _, e := range p.entries(n, loc) {
		if isTollgateExt(e.key) {
			p.ps.addf(join(loc, e.key), "Tollgate reads its extensions on operations and at the top of the document, not here")
			continue
		}
		if strings.HasPrefix(e.key, "x-") {
			continue // other tools' extensions of the Paths object
		}
		if count++; count > maxPaths {
			p.ps.addf(loc, "more than %d paths", maxPaths)
			break
		}
		if v := p.pathItem(e.val, join(loc, e.key)); v != nil {
			out.set(e.key, v)
		}
	}
	return out.Node
}

var (
	methods2 = []string{"get", "put", "post", "delete", "options", "head", "patch"}
	methods3 = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace", "query"}
)

func (p *pruner) methods() []string {
	if p.kind == swagger2 {
		return methods2
	}
	return methods3
}

func (p *pruner) pathItem(n *yaml.Node, loc string) *yaml.Node {
	if n = p.mapping(n, loc, "a path item object"); n == nil {
		return nil
	}
	out := newMapping()
	for _, e := range p.entries(n, loc) {
		var v *yaml.Node
		switch {
		case e.key == "$ref":
			v = p.scalar(e.val, join(loc, e.key))
		case slices.Contains(p.methods(), e.key):
			v = p.operation(e.val, join(loc, e.key))
		case p.kind == openapi3 && e.key == "servers":
			v = p.servers(e.val, join(loc, e.key))
		case p.kind == openapi3 && e.key == "additionalOperations":
			v = p.additional(e.val, join(loc, e.key))
		case isTollgateExt(e.key):
			p.ps.addf(join(loc, e.key), "Tollgate reads its extensions on operations and at the top of the document, not here")
		}
		if v != nil {
			out.set(e.key, v)
		}
	}
	return out.Node
}

func (p *pruner) additional(n *yaml.Node, loc string) *yaml.Node {
	if n = p.mapping(n, loc, "an object of operations"); n == nil {
		return nil
	}
	out := newMapping()
	for _, e := range p.entries(n, loc) {
		if v := p.operation(e.val, join(loc, e.key)); v != nil {
			out.set(e.key, v)
		}
	}
	return out.Node
}

func (p *pruner) operation(n *yaml.Node, loc string) *yaml.Node {
	if n = p.mapping(n, loc, "an operation object"); n == nil {
		return nil
	}
	out := newMapping()
	for _, e := range p.entries(n, loc) {
		var v *yaml.Node
		switch {
		case e.key == "security":
			v = p.security(e.val, join(loc, e.key))
			if v != nil && len(v.Content) == 0 && p.kind == swagger2 {
				// The library's Swagger 2.0 model drops an empty list,
				// which on an operation means "no security". One empty
				// requirement object means the same and is kept.
				v.Content = append(v.Content, newMapping().Node)
			}
		case p.kind == openapi3 && e.key == "servers":
			v = p.servers(e.val, join(loc, e.key))
		case isTollgateExt(e.key):
			v = p.copyValue(e.val, join(loc, e.key), 0)
		}
		if v != nil {
			out.set(e.key, v)
		}
	}
	return out.Node
}

// security copies a list of security requirement objects: each maps
// scheme names to lists of scopes (a null list is an empty one).
func (p *pruner) security(n *yaml.Node, loc string) *yaml.Node {
	if n = p.sequence(n, loc, "a list of security requirement objects"); n == nil {
		return nil
	}
	out := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for i, item := range n.Content {
		iloc := index(loc, i)
		item = p.mapping(item, iloc, "a security requirement object: scheme names mapped to lists of scopes")
		if item == nil {
			continue
		}
		req := newMapping()
		for _, e := range p.entries(item, iloc) {
			scopes := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			v := p.resolve(e.val)
			switch {
			case v == nil || v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null":
			case v.Kind == yaml.SequenceNode:
				for j, s := range v.Content {
					if c := p.scalar(s, index(join(iloc, e.key), j)); c != nil {
						scopes.Content = append(scopes.Content, strNode(c.Value))
					}
				}
			default:
				p.ps.addf(join(iloc, e.key), "want a list of scopes")
				continue
			}
			req.set(e.key, scopes)
		}
		out.Content = append(out.Content, req.Node)
	}
	return out
}

func (p *pruner) servers(n *yaml.Node, loc string) *yaml.Node {
	if n = p.sequence(n, loc, "a list of server objects"); n == nil {
		return nil
	}
	out := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for i, item := range n.Content {
		iloc := index(loc, i)
		if item = p.mapping(item, iloc, "a server object"); item == nil {
			continue
		}
		s := newMapping()
		for _, e := range p.entries(item, iloc) {
			switch e.key {
			case "url":
				if v := p.scalar(e.val, join(iloc, e.key)); v != nil {
					s.set(e.key, strNode(v.Value))
				}
			case "variables":
				if v := p.variables(e.val, join(iloc, e.key)); v != nil {
					s.set(e.key, v)
				}
			}
		}
		out.Content = append(out.Content, s.Node)
	}
	return out
}

func (p *pruner) variables(n *yaml.Node, loc string) *yaml.Node {
	if n = p.mapping(n, loc, "an object of server variables"); n == nil {
		return nil
	}
	out := newMapping()
	for _, e := range p.entries(n, loc) {
		vloc := join(loc, e.key)
		v := p.mapping(e.val, vloc, "a server variable object")
		if v == nil {
			continue
		}
		sv := newMapping()
		for _, ve := range p.entries(v, vloc) {
			if ve.key == "default" {
				if d := p.scalar(ve.val, join(vloc, ve.key)); d != nil {
					sv.set("default", strNode(d.Value))
				}
			}
		}
		out.set(e.key, sv.Node)
	}
	return out.Node
}

func (p *pruner) components(n *yaml.Node) *yaml.Node {
	if n = p.mapping(n, "components", "an object"); n == nil {
		return nil
	}
	out := newMapping()
	for _, e := range p.entries(n, "components") {
		var v *yaml.Node
		switch e.key {
		case "securitySchemes":
			v = p.schemes(e.val, join("components", e.key))
		case "pathItems":
			v = p.pathItems(e.val, join("components", e.key))
		}
		if v != nil {
			out.set(e.key, v)
		}
	}
	return out.Node
}

func (p *pruner) pathItems(n *yaml.Node, loc string) *yaml.Node {
	if n = p.mapping(n, loc, "an object of path items"); n == nil {
		return nil
	}
	out := newMapping()
	for _, e := range p.entries(n, loc) {
		if v := p.pathItem(e.val, join(loc, e.key)); v != nil {
			out.set(e.key, v)
		}
	}
	return out.Node
}

// schemeFields are the fields of a security scheme Tollgate reads.
var schemeFields = []string{"$ref", "type", "name", "in", "scheme", "bearerFormat", "openIdConnectUrl"}

func (p *pruner) schemes(n *yaml.Node, loc string) *yaml.Node {
	if n = p.mapping(n, loc, "an object of security schemes"); n == nil {
		return nil
	}
	out := newMapping()
	for _, e := range p.entries(n, loc) {
		sloc := join(loc, e.key)
		s := p.mapping(e.val, sloc, "a security scheme object")
		if s == nil {
			continue
		}
		sm := newMapping()
		for _, se := range p.entries(s, sloc) {
			if slices.Contains(schemeFields, se.key) && (se.key != "$ref" || p.kind == openapi3) {
				if v := p.scalar(se.val, join(sloc, se.key)); v != nil {
					sm.set(se.key, strNode(v.Value))
				}
			}
		}
		out.set(e.key, sm.Node)
	}
	return out.Node
}
