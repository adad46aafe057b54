package openapi

import (
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tollgate/tollgate/internal/model"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// validate holds the API to the data plane's own rules, the one place
// they live, so that an import never yields an API the replicas refuse.
// The rate-limit policies it names are checked elsewhere (they are
// resources of their own); stand-ins are supplied here.
func (im *importer) validate(api *tollgatev1.Api) {
	check := proto.Clone(api).(*tollgatev1.Api)
	// An entry of several scopes means all of them; each must be a scope
	// the data plane accepts, which is what is checked here, word by word.
	for _, o := range check.Operations {
		var words []string
		for _, s := range o.Scopes {
			words = append(words, strings.Split(s, " ")...)
		}
		o.Scopes = words
	}
	in := model.Input{Resources: &tollgatev1.Resources{Apis: []*tollgatev1.Api{check}, RateLimitPolicies: standIns(api)}}
	_, problems := model.Compile(in)
	for _, p := range problems {
		im.problems.addf(im.docLocation(p.Path), "%s", p.Msg)
	}
}

// standIns are valid policies with the names an API refers to.
func standIns(api *tollgatev1.Api) []*tollgatev1.RateLimitPolicy {
	seen := map[string]bool{}
	var out []*tollgatev1.RateLimitPolicy
	add := func(name string) {
		if name != "" && !seen[name] {
			seen[name] = true
			out = append(out, &tollgatev1.RateLimitPolicy{Name: name, Limits: []*tollgatev1.Limit{{Requests: 1, Per: durationpb.New(1e9)}}})
		}
	}
	add(api.GetRateLimit())
	add(api.GetAnonymousRateLimit())
	for _, o := range api.GetOperations() {
		add(o.GetRateLimit())
	}
	return out
}

var operationPath = regexp.MustCompile(`^apis\[0\]\.operations\[(\d+)\](.*)$`)

// docLocation turns a path into the API resource into one into the
// document, as near as it can.
func (im *importer) docLocation(p string) string {
	if m := operationPath.FindStringSubmatch(p); m != nil {
		if i, err := strconv.Atoi(m[1]); err == nil && i < len(im.opLocs) {
			return im.opLocs[i]
		}
	}
	rest, ok := strings.CutPrefix(p, "apis[0].")
	if !ok {
		return p
	}
	for field, loc := range map[string]string{
		"id": "x-tollgate-id", "name": "info.title", "hosts": "x-tollgate-hosts", "audiences": "x-tollgate-audiences",
		"rateLimit": "x-tollgate-rate-limit", "anonymousRateLimit": "x-tollgate-anonymous-rate-limit",
	} {
		if r, ok := strings.CutPrefix(rest, field); ok {
			return loc + r
		}
	}
	return rest
}
