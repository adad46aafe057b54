package openapi

import (
	"fmt"
	"strings"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// DefaultMaxBytes bounds a document when Options.MaxBytes is not set.
const DefaultMaxBytes = 4 << 20

// maxProblems bounds a DocumentError: a broken document of many
// megabytes would otherwise become an error of as many.
const maxProblems = 100

// Options tune an import.
type Options struct {
	// ID overrides the API id. Otherwise x-tollgate-id, otherwise a slug of
	// info.title and info.version ([a-z0-9-], at most 63 characters).
	ID string
	// MaxBytes refuses larger documents; 0 means DefaultMaxBytes.
	MaxBytes int
}

// Result is an imported API and what the document said about it.
type Result struct {
	API *tollgatev1.Api
	// SpecVersion is the document's own version: "2.0", "3.0.3", "3.1.0".
	SpecVersion string
	Title       string
	Description string
	// Tags are the names of the document's tags, as written: the caller
	// decides which it can use as catalog labels.
	Tags []string
	// RequiresApproval is x-tollgate-subscription-approval: true at the root.
	RequiresApproval bool
	// Warnings say what was dropped or enforced more strictly than the
	// document asks, and why; each names its place in the document.
	Warnings []string
}

// Problem is one reason a document cannot be imported.
type Problem struct {
	// Path is where in the document, as in paths./pets.get.security[0];
	// empty for the document as a whole.
	Path    string
	Message string
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// DocumentError is a document that cannot be imported, with every problem
// found (at most 100; Truncated counts the rest).
type DocumentError struct {
	Problems  []Problem
	Truncated int
}

func (e *DocumentError) Error() string {
	var b strings.Builder
	b.WriteString("openapi: ")
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	if e.Truncated > 0 {
		fmt.Fprintf(&b, "; and %d more", e.Truncated)
	}
	return b.String()
}

// problems collects the problems of one import.
type problems struct {
	list      []Problem
	truncated int
}

func (ps *problems) addf(path, format string, args ...any) {
	if len(ps.list) >= maxProblems {
		ps.truncated++
		return
	}
	ps.list = append(ps.list, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (ps *problems) any() bool { return len(ps.list) > 0 }

func (ps *problems) err() error {
	if !ps.any() {
		return nil
	}
	return &DocumentError{Problems: ps.list, Truncated: ps.truncated}
}

// Import reads an OpenAPI 3.x or Swagger 2.0 document, in JSON or YAML,
// into an API. A document that cannot be imported as it means is a
// *DocumentError; Import never panics on its input.
func Import(doc []byte, o Options) (res *Result, err error) {
	max := o.MaxBytes
	if max <= 0 {
		max = DefaultMaxBytes
	}
	if len(doc) > max {
		return nil, &DocumentError{Problems: []Problem{{Message: fmt.Sprintf("the document is %d bytes; at most %d are accepted", len(doc), max)}}}
	}
	// The OpenAPI library was not written for hostile input: a panic in
	// this goroutine is the document's fault, reported as such.
	defer func() {
		if r := recover(); r != nil {
			res = nil
			err = &DocumentError{Problems: []Problem{{Message: "the document could not be read: it is not a well-formed OpenAPI document"}}}
		}
	}()
	im := &importer{opts: o}
	res = im.run(doc)
	if e := im.problems.err(); e != nil {
		return nil, e
	}
	return res, nil
}
