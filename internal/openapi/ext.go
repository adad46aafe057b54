package openapi

import (
	"slices"
	"strings"

	yaml "github.com/pb33f/go-yaml"

	"github.com/tollgate/tollgate/internal/model"
)

// The x-tollgate extensions, by where they are read.
var (
	rootExtensions = []string{
		"x-tollgate-id", "x-tollgate-base-path", "x-tollgate-hosts", "x-tollgate-rate-limit",
		"x-tollgate-anonymous-rate-limit", "x-tollgate-public", "x-tollgate-audiences",
		"x-tollgate-subscription-approval",
	}
	operationExtensions = []string{"x-tollgate-rate-limit", "x-tollgate-public", "x-tollgate-scopes"}
)

// checkNames reports x-tollgate extensions not read where they are
// written: a misspelt or misplaced one would otherwise be silently
// ignored, and most of them tighten security.
func (im *importer) checkNames(x extensions, allowed []string, where string) {
	for _, k := range x.order {
		if !slices.Contains(allowed, k) {
			im.problems.addf(join(x.loc, k), "not an extension Tollgate reads %s (it reads %s)", where, strings.Join(allowed, ", "))
		}
	}
}

func (im *importer) extString(x extensions, name string) (string, bool) {
	n := x.values[name]
	if n == nil {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		im.problems.addf(join(x.loc, name), "want a string")
		return "", false
	}
	return n.Value, true
}

func (im *importer) extBool(x extensions, name string) bool {
	n := x.values[name]
	if n == nil {
		return false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		im.problems.addf(join(x.loc, name), "want true or false")
		return false
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		im.problems.addf(join(x.loc, name), "want true or false")
		return false
	}
	return b
}

func (im *importer) extList(x extensions, name string) ([]string, bool) {
	n := x.values[name]
	if n == nil {
		return nil, false
	}
	if n.Kind != yaml.SequenceNode {
		im.problems.addf(join(x.loc, name), "want a list of strings")
		return nil, false
	}
	out := make([]string, 0, len(n.Content))
	ok := true
	for i, c := range n.Content {
		if c.Kind != yaml.ScalarNode || c.ShortTag() != "!!str" {
			im.problems.addf(index(join(x.loc, name), i), "want a string")
			ok = false
			continue
		}
		out = append(out, c.Value)
	}
	return out, ok
}

// extPolicy reads a rate-limit policy name.
func (im *importer) extPolicy(x extensions, name string) string {
	v, ok := im.extString(x, name)
	if !ok {
		return ""
	}
	if !model.ValidID(v) {
		im.problems.addf(join(x.loc, name), "a policy name is up to 128 letters, digits, '-', '_' or '.', starting with a letter or digit; got %q", v)
		return ""
	}
	return v
}
