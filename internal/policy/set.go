package policy

// Set is the policies that apply to one operation: the API's, then the
// operation's own.
type Set struct {
	Request      []RequestOp
	Response     []ResponseOp
	Rules        []*Rule
	Interceptors *Interceptors // nil: none
	// Names say which policies a request ran, for its analytics event:
	// the request and response policies' kinds, "rule" per rule and
	// "interceptor" (one list, shared, never appended to).
	Names []string
	// Plan is Request worked out (set by Name).
	Plan *RequestPlan
}

// Empty reports whether the set does nothing.
func (s *Set) Empty() bool {
	return s == nil || len(s.Request)+len(s.Response)+len(s.Rules) == 0 && s.Interceptors == nil
}

// Merge is api's policies followed by op's; op's interceptors replace
// api's. Either may be nil.
func Merge(api, op *Set) *Set {
	switch {
	case op.Empty():
		return api
	case api.Empty():
		return op
	}
	out := &Set{
		Request:      append(append([]RequestOp(nil), api.Request...), op.Request...),
		Response:     append(append([]ResponseOp(nil), api.Response...), op.Response...),
		Rules:        append(append([]*Rule(nil), api.Rules...), op.Rules...),
		Interceptors: api.Interceptors,
	}
	if op.Interceptors != nil {
		out.Interceptors = op.Interceptors
	}
	out.Name()
	return out
}

// Name fills in Names and Plan from the policies.
func (s *Set) Name() {
	s.Plan = PlanRequest(s.Request)
	s.Names = nil
	for _, op := range s.Request {
		s.Names = append(s.Names, "request."+op.Kind.String())
	}
	for _, op := range s.Response {
		s.Names = append(s.Names, "response."+op.Kind.String())
	}
	for range s.Rules {
		s.Names = append(s.Names, "rule")
	}
	if s.Interceptors != nil {
		if s.Interceptors.Request != nil {
			s.Names = append(s.Names, "interceptor.request")
		}
		if s.Interceptors.Response != nil {
			s.Names = append(s.Names, "interceptor.response")
		}
	}
	s.Names = s.Names[:len(s.Names):len(s.Names)]
}
