package openapi

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// Changes says what replacing old with new changes, one line each: the
// API's own fields first, in a fixed order, then operations by path and
// method, each method of an operation on its own ("operation added: GET
// /pets/{id}"). An operation is compared by what it enforces: its
// security is its own or, without one, the API's. Empty when they are
// equal.
func Changes(old, new *tollgatev1.Api) []string {
	var out []string
	str := func(name, a, b string) {
		if a != b {
			out = append(out, fmt.Sprintf("%s changed: %s → %s", name, strconv.Quote(a), strconv.Quote(b)))
		}
	}
	list := func(name string, a, b []string) {
		if !slices.Equal(a, b) {
			out = append(out, fmt.Sprintf("%s changed: %s → %s", name, formatList(a), formatList(b)))
		}
	}
	str("id", old.GetId(), new.GetId())
	str("name", old.GetName(), new.GetName())
	str("version", old.GetVersion(), new.GetVersion())
	str("basePath", cmp.Or(old.GetBasePath(), "/"), cmp.Or(new.GetBasePath(), "/"))
	list("hosts", old.GetHosts(), new.GetHosts())
	list("security", old.GetSecurity(), new.GetSecurity())
	str("apiKey", keyLocation(old), keyLocation(new))
	str("rateLimit", old.GetRateLimit(), new.GetRateLimit())
	str("anonymousRateLimit", old.GetAnonymousRateLimit(), new.GetAnonymousRateLimit())
	list("audiences", old.GetAudiences(), new.GetAudiences())
	if a, b := old.GetForwardCredentials(), new.GetForwardCredentials(); a != b {
		out = append(out, fmt.Sprintf("forwardCredentials changed: %t → %t", a, b))
	}
	str("methodOverride", old.GetMethodOverride(), new.GetMethodOverride())

	before, after := methodsOf(old), methodsOf(new)
	var all []opKey
	for k := range before {
		all = append(all, k)
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			all = append(all, k)
		}
	}
	slices.SortFunc(all, func(a, b opKey) int {
		return cmp.Or(strings.Compare(a.path, b.path), methodRank(a.method)-methodRank(b.method), strings.Compare(a.method, b.method))
	})
	for _, k := range all {
		a, hadA := before[k]
		b, hasB := after[k]
		switch {
		case !hadA:
			out = append(out, "operation added: "+k.String())
		case !hasB:
			out = append(out, "operation removed: "+k.String())
		default:
			var diffs []string
			if !slices.Equal(a.scopes, b.scopes) {
				diffs = append(diffs, fmt.Sprintf("scopes %s → %s", formatList(a.scopes), formatList(b.scopes)))
			}
			if !slices.Equal(a.security, b.security) {
				diffs = append(diffs, fmt.Sprintf("security %s → %s", formatList(a.security), formatList(b.security)))
			}
			if a.rateLimit != b.rateLimit {
				diffs = append(diffs, fmt.Sprintf("rateLimit %s → %s", strconv.Quote(a.rateLimit), strconv.Quote(b.rateLimit)))
			}
			if len(diffs) > 0 {
				out = append(out, "operation changed: "+k.String()+" ("+strings.Join(diffs, "; ")+")")
			}
		}
	}
	return out
}

type opKey struct{ method, path string }

func (k opKey) String() string { return k.method + " " + k.path }

type opSettings struct {
	scopes, security []string
	rateLimit        string
}

// methodsOf lists what each method of each operation enforces. An
// operation without methods matches every method: "*".
func methodsOf(api *tollgatev1.Api) map[opKey]opSettings {
	out := map[opKey]opSettings{}
	for _, o := range api.GetOperations() {
		s := opSettings{scopes: o.GetScopes(), security: o.GetSecurity(), rateLimit: o.GetRateLimit()}
		if len(s.security) == 0 {
			s.security = api.GetSecurity()
		}
		methods := o.GetMethods()
		if len(methods) == 0 {
			methods = []string{"*"}
		}
		for _, m := range methods {
			out[opKey{strings.ToUpper(m), cmp.Or(o.GetPath(), "/")}] = s
		}
	}
	return out
}

func keyLocation(api *tollgatev1.Api) string {
	k := api.GetApiKey()
	var parts []string
	if h := k.GetHeader(); h != "" {
		parts = append(parts, "header "+h)
	}
	if q := k.GetQuery(); q != "" {
		parts = append(parts, "query "+q)
	}
	return strings.Join(parts, ", ")
}
