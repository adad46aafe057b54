package policy

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/interpreter"
)

// Rule is a compiled CEL rule: a condition every request of its operations
// must meet.
type Rule struct {
	Expr    string
	Code    string // the deny code
	Status  int    // the deny's HTTP status
	Message string // the deny's error_description
	program cel.Program
}

// Limits of a rule. The cost is CEL's measure of the work an evaluation
// does (about one unit per operation, a string's length for comparing
// it); the estimate of the worst case, with every header, query value and
// claim at its largest, must be within MaxRuleCost, and an evaluation
// that goes over it anyway is stopped and refuses.
const (
	MaxRuleCost     = 100_000
	MaxRuleLength   = 4096
	countedRuleCost = 10_000
	// sizes assumed for the cost estimate: what a request can hold
	maxSizeString = 16 << 10
	maxSizeList   = 256
)

// ruleEnv declares the variables of a rule:
//
//	request:  method, path, host (strings), headers, query (maps of strings)
//	identity: application, subject, principal, credential (strings),
//	          scopes (list of strings), claims (map)
//	now:      the time of the decision
var ruleEnv = func() *cel.Env {
	env, err := cel.NewEnv(
		cel.Variable("request", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("identity", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("now", cel.TimestampType),
	)
	if err != nil {
		panic(fmt.Sprintf("policy: the rule environment does not build: %v", err)) // a programming error, found by any test
	}
	return env
}()

// CompileRule checks and compiles a rule's expression: it must be a
// boolean over the declared variables, within the length and cost limits.
func CompileRule(expr string) (*Rule, error) {
	if len(expr) > MaxRuleLength {
		return nil, fmt.Errorf("longer than %d bytes", MaxRuleLength)
	}
	ast, iss := ruleEnv.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return nil, iss.Err()
	}
	if t := ast.OutputType(); t != cel.BoolType && t != cel.DynType {
		return nil, fmt.Errorf("must be a condition (bool), not %s", t)
	}
	if err := literalPatterns(ast); err != nil {
		return nil, err
	}
	est, err := ruleEnv.EstimateCost(ast, sizeEstimator{})
	if err != nil {
		return nil, fmt.Errorf("estimating its cost: %w", err)
	}
	if est.Max > MaxRuleCost {
		return nil, fmt.Errorf("may cost up to %d, over the limit of %d: iterate over fewer values", est.Max, MaxRuleCost)
	}
	// The estimate assumes the sizes below, and a request is held to them
	// (a value over them makes the rule fail, see celvalues.go), so it bounds
	// every evaluation. Rules that may do much work are counted as they
	// run as well; for the others the counting would cost more than the
	// rule.
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	if est.Max > countedRuleCost {
		opts = append(opts, cel.CostLimit(MaxRuleCost))
	}
	prg, err := ruleEnv.Program(ast, opts...)
	if err != nil {
		return nil, err
	}
	return &Rule{Expr: expr, program: prg}, nil
}

// literalPatterns refuses matches() with a pattern that is not a literal:
// a pattern taken from the request would be compiled on every request.
func literalPatterns(a *cel.Ast) error {
	var bad error
	celast.PreOrderVisit(a.NativeRep().Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() != celast.CallKind || e.AsCall().FunctionName() != "matches" || bad != nil {
			return
		}
		args := e.AsCall().Args()
		if len(args) > 0 && args[len(args)-1].Kind() != celast.LiteralKind {
			bad = errors.New("matches() takes a literal pattern")
		}
	}))
	return bad
}

// sizeEstimator bounds the sizes of the inputs for the cost estimate.
type sizeEstimator struct{}

// The variables are maps of dyn to CEL, so the sizes go by where a value
// is: request.headers, request.query, identity.scopes and identity.claims
// hold at most maxSizeList entries, and every other value (a field, an
// entry, a claim's value whatever its type) is taken to be as large as a
// string may be. The request is held to these (celvalues.go).
func (sizeEstimator) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	p := n.Path()
	if len(p) == 0 {
		return nil
	}
	if len(p) == 2 {
		switch p[0] + "." + p[1] {
		case "request.headers", "request.query", "identity.scopes", "identity.claims":
			return &cost.SizeEstimate{Min: 0, Max: maxSizeList}
		}
	}
	return &cost.SizeEstimate{Min: 0, Max: maxSizeString}
}

func (sizeEstimator) EstimateCallCost(string, string, *cost.AstNode, []cost.AstNode) *cost.CallEstimate {
	return nil
}

// RuleInput is what a rule reads. The maps are built at most once per
// decision, and only when a rule reads them.
type RuleInput struct {
	Method, Path, Host string
	// Headers gives the headers by lower-case name, repeated lines joined
	// with ","; asked once, when a rule reads them.
	Headers HeaderSource
	Target  string // path and query as sent: the query is read from it, when a rule reads it

	Application, Subject, Principal, Credential string
	Scopes                                      []string
	Claims                                      map[string]any

	Now time.Time

	query, headers map[string]string // read once, when a rule reads them
}

// HeaderSource gives a request's headers as a map.
type HeaderSource interface {
	Map() map[string]string
}

// ResolveName serves the variables to CEL.
func (in *RuleInput) ResolveName(name string) (any, bool) {
	switch name {
	case "request":
		return inputMap[requestFields]{in}, true
	case "identity":
		return inputMap[identityFields]{in}, true
	case "now":
		return types.Timestamp{Time: in.Now}, true
	}
	return nil, false
}

// Parent is part of CEL's Activation: there is none.
func (in *RuleInput) Parent() interpreter.Activation { return nil }

// errTooLarge refuses a rule reading a map with a value over the sizes
// its cost was estimated with.
var errTooLarge = types.NewErr("a value the rule reads is over %d bytes", maxSizeString)

// withinSizes reports whether a map's values are within the sizes rules
// are estimated with.
func withinSizes(m map[string]string) bool {
	if len(m) > maxSizeList {
		return false
	}
	for _, v := range m {
		if len(v) > maxSizeString {
			return false
		}
	}
	return true
}

// firstValues is a target's query parameters, the first value of each;
// parameters that do not decode are left out.
func firstValues(target string) map[string]string {
	_, raw, _ := strings.Cut(target, "?")
	raw, _, _ = strings.Cut(raw, "#")
	out := map[string]string{}
	for part := range strings.SplitSeq(raw, "&") {
		k, v, _ := strings.Cut(part, "=")
		name, err1 := url.QueryUnescape(k)
		value, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil || name == "" {
			continue
		}
		if _, seen := out[name]; !seen {
			out[name] = value
		}
	}
	return out
}

// ErrRuleFalse is a rule that evaluated to false.
var ErrRuleFalse = errors.New("the rule does not hold")

// Eval evaluates the rule: nil when it holds, ErrRuleFalse when it does
// not, another error when it could not be evaluated (a missing header
// read without has(), the cost limit): the request is refused either way.
func (r *Rule) Eval(in *RuleInput) error {
	out, _, err := r.program.Eval(in)
	if err != nil {
		return err
	}
	if b, ok := out.Value().(bool); ok && b {
		return nil
	}
	if _, ok := out.Value().(bool); !ok {
		return fmt.Errorf("the rule gave %s, not a bool", out.Type().TypeName())
	}
	return ErrRuleFalse
}
