package catalog

// Catalog finds the operation a request is for. It is built once per
// config snapshot and only read afterwards, so lookups take no locks.
type Catalog struct {
	opts Options
	apis []*API
	byID map[string]*API
	all  *node          // every operation of every API
	per  map[*API]*node // each API's own operations, for context_extensions
}

// node is one segment position in a trie of templates. Matching tries the
// literal child first, then the parameter, then the rest match, so the first
// complete match found is the most specific one.
//
// The operations that end at a node are also indexed by host: when many
// APIs share paths and are told apart by host alone (one per tenant), a
// match looks at the operations of its own host and at those of APIs with
// wildcard hosts, not at every tenant's.
type node struct {
	literal map[string]*node
	param   *node
	rest    *node
	ops     []*Operation             // templates that end at this node
	byHost  map[hostKey][]*Operation // of ops, those whose API names exact hosts only
	anyHost []*Operation             // of ops, those whose API has a "*" or "*.domain" host
}

// hostKey is an exact host as an index key.
type hostKey struct {
	name, port string
	hasPort    bool
}

// Options say how requests are read for matching.
type Options struct {
	// StripPort drops any port from the request's host before matching,
	// like Envoy's strip_any_host_port. Off, a host with a port matches
	// only API hosts that name that port (or "*").
	StripPort bool
}

// New builds a catalog. Templates were validated when the config was
// compiled; an operation whose full template equals another's, with
// overlapping methods and hosts, is reported by the config compiler, and
// here the earlier one wins.
func New(apis []*API, o Options) *Catalog {
	c := &Catalog{
		opts: o,
		apis: apis,
		byID: make(map[string]*API, len(apis)),
		all:  &node{},
		per:  make(map[*API]*node, len(apis)),
	}
	order := 0
	for _, a := range apis {
		a.collectCredentials()
		a.hostPatterns = a.hostPatterns[:0]
		for _, h := range a.Hosts {
			if p, ok := ParseHostPattern(h); ok { // the config compiler reports the others
				a.hostPatterns = append(a.hostPatterns, p)
			}
		}
		c.byID[a.ID] = a
		own := &node{}
		c.per[a] = own
		exact := a.exactHosts()
		for _, op := range a.Operations {
			op.Challenge = op.challenge()
			op.ScopeSets = NewScopeSets(op.Scopes)
			op.order = order
			order++
			c.all.insert(op.Template.segments, op).index(op, exact)
			own.insert(op.Template.segments, op)
		}
	}
	return c
}

// insert adds op at the node its template ends at, and returns that node.
func (n *node) insert(segs []segment, op *Operation) *node {
	for _, s := range segs {
		switch s.kind {
		case segLiteral:
			if n.literal == nil {
				n.literal = make(map[string]*node)
			}
			child := n.literal[s.value]
			if child == nil {
				child = &node{}
				n.literal[s.value] = child
			}
			n = child
		case segParam:
			if n.param == nil {
				n.param = &node{}
			}
			n = n.param
		case segRest:
			if n.rest == nil {
				n.rest = &node{}
			}
			n = n.rest
		}
	}
	n.ops = append(n.ops, op)
	return n
}

// index files op by host: under each of exact, or, when nil, with the
// operations any host may reach.
func (n *node) index(op *Operation, exact []hostKey) {
	if exact == nil {
		n.anyHost = append(n.anyHost, op)
		return
	}
	if n.byHost == nil {
		n.byHost = make(map[hostKey][]*Operation)
	}
	for _, k := range exact {
		if ops := n.byHost[k]; len(ops) == 0 || ops[len(ops)-1] != op { // a host listed twice
			n.byHost[k] = append(ops, op)
		}
	}
}

// APIs returns the APIs in config order.
func (c *Catalog) APIs() []*API { return c.apis }

// API returns the API with the given id, or nil.
func (c *Catalog) API(id string) *API { return c.byID[id] }

// Miss explains why Match found nothing.
type Miss uint8

const (
	MissNone   Miss = iota // matched
	MissPath               // no template matches the path on this host
	MissMethod             // a template matches, but not with this method
	MissHost               // the host is not a host name or address (answered with 400)
)

// Match finds the most specific operation for host, method and a path
// already passed through NormalizePath. Path specificity decides first;
// among operations with the same template, the most specific host wins.
func (c *Catalog) Match(hostHeader, method, path string) (*Operation, Miss) {
	h, ok := parseHost(hostHeader, c.opts.StripPort)
	if !ok {
		return nil, MissHost
	}
	m := matcher{host: h, method: method, path: path}
	if op := m.walk(c.all, 0); op != nil {
		return op, MissNone
	}
	return nil, m.miss()
}

// MatchInAPI is Match restricted to one API, ignoring hosts: Envoy named
// the API in context_extensions, so the route already chose it.
func (c *Catalog) MatchInAPI(api *API, method, path string) (*Operation, Miss) {
	root := c.per[api]
	if root == nil {
		return nil, MissPath
	}
	m := matcher{anyHost: true, method: method, path: path}
	if op := m.walk(root, 0); op != nil {
		return op, MissNone
	}
	return nil, m.miss()
}

// Operation returns the API's operation with template path that accepts
// method: how context_extensions name an operation.
func (a *API) Operation(path, method string) (*Operation, Miss) {
	miss := MissPath
	for _, op := range a.Operations {
		if op.Path != path {
			continue
		}
		if op.AllowsMethod(method) {
			return op, MissNone
		}
		miss = MissMethod
	}
	return nil, miss
}

type matcher struct {
	host         host
	method, path string
	anyHost      bool
	methodMiss   bool
}

func (m *matcher) miss() Miss {
	if m.methodMiss {
		return MissMethod
	}
	return MissPath
}

func (m *matcher) walk(n *node, i int) *Operation {
	seg, next, ok := nextSegment(m.path, i)
	if !ok {
		if op := m.pickAt(n); op != nil {
			return op
		}
	} else {
		if child := n.literal[seg]; child != nil {
			if op := m.walk(child, next); op != nil {
				return op
			}
		}
		if n.param != nil {
			if op := m.walk(n.param, next); op != nil {
				return op
			}
		}
	}
	if n.rest != nil {
		return m.pickAt(n.rest)
	}
	return nil
}

// pickAt picks among the operations that end at n: all of them for a
// match that ignores hosts, else those the request's host can reach.
func (m *matcher) pickAt(n *node) *Operation {
	if m.anyHost {
		return m.pick(n.ops, nil)
	}
	k := hostKey{m.host.name, m.host.port, m.host.hasPort}
	return m.pick(n.byHost[k], n.anyHost)
}

// pick chooses among operations with the same template, from two lists:
// the method must be allowed, then the most specific host wins, then an
// operation that lists the method over one that takes HEAD as GET, then
// config order.
func (m *matcher) pick(lists ...[]*Operation) *Operation {
	var best *Operation
	bestScore := 0
	for _, ops := range lists {
		for _, op := range ops {
			score := 1
			if !m.anyHost {
				score = op.API.hostScore(m.host)
			}
			if score == 0 {
				continue
			}
			method := op.methodMatch(m.method)
			if method == 0 {
				m.methodMiss = true
				continue
			}
			score = score*4 + method
			if score > bestScore || score == bestScore && op.order < best.order {
				best, bestScore = op, score
			}
		}
	}
	return best
}
