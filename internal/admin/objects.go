package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/model"
	"github.com/tollgate/tollgate/internal/store"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// object is a resource as the API shows it: the message's fields under
// their YAML names, and the management fields beside them.
type object map[string]any

func specObject(m proto.Message) object {
	b, err := protojson.Marshal(m)
	o := object{}
	if err == nil {
		_ = json.Unmarshal(b, &o)
	}
	return o
}

// stamp adds a record's times.
func (o object) stamp(r store.Record) object {
	o["createdAt"] = r.CreatedAt.Format(time.RFC3339Nano)
	o["updatedAt"] = r.UpdatedAt.Format(time.RFC3339Nano)
	return o
}

// rename moves a field to the name the API uses for it.
func (o object) rename(from, to string) object {
	if v, ok := o[from]; ok {
		delete(o, from)
		o[to] = v
	}
	return o
}

// input is a request body's fields, taken one by one; what is left goes
// into the resource's message, where an unknown field is an error.
type input map[string]json.RawMessage

func parseInput(body []byte) (input, error) {
	in := input{}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&in); err != nil || in == nil {
		return nil, invalid("the body must be a JSON object")
	}
	if dec.More() {
		return nil, invalid("the body must be one JSON object")
	}
	return in, nil
}

// str takes a string field.
func (in input) str(name string) (string, bool, error) {
	raw, ok := in[name]
	if !ok {
		return "", false, nil
	}
	delete(in, name)
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", true, invalid(name+": want a string", Detail{Path: name, Message: "want a string"})
	}
	return s, true, nil
}

// boolean takes a boolean field.
func (in input) boolean(name string) (*bool, error) {
	raw, ok := in[name]
	if !ok {
		return nil, nil
	}
	delete(in, name)
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, invalid(name+": want true or false", Detail{Path: name, Message: "want true or false"})
	}
	return &b, nil
}

// names takes a list of at most max distinct strings, each accepted by ok.
func (in input) names(name string, max int, ok func(string) bool) (*[]string, error) {
	raw, present := in[name]
	if !present {
		return nil, nil
	}
	delete(in, name)
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, invalid(name+": want a list of strings", Detail{Path: name, Message: "want a list of strings"})
	}
	if len(list) > max {
		return nil, invalid(fmt.Sprintf("%s: at most %d", name, max), Detail{Path: name, Message: fmt.Sprintf("at most %d", max)})
	}
	for i, v := range list {
		if !ok(v) || slices.Index(list, v) != i {
			p := fmt.Sprintf("%s[%d]", name, i)
			return nil, invalid(p+": not accepted (empty, repeated or with characters it may not hold)", Detail{Path: p, Message: "not accepted"})
		}
	}
	if list == nil {
		list = []string{}
	}
	return &list, nil
}

// drop removes read-only fields a client may send back from a GET.
func (in input) drop(names ...string) {
	for _, n := range names {
		delete(in, n)
	}
}

// into decodes the remaining fields into m: each field given replaces
// that field of m (a JSON merge at the top level), the others stay.
func (in input) into(m proto.Message) error {
	if len(in) == 0 {
		return nil
	}
	merged := map[string]json.RawMessage{}
	if cur, err := protojson.Marshal(m); err == nil {
		_ = json.Unmarshal(cur, &merged)
	}
	for k, v := range in {
		merged[k] = v
	}
	b, err := json.Marshal(merged)
	if err != nil {
		return invalid("the body could not be read")
	}
	return decodeInto(b, m)
}

// decodeInto reads a body into m by the rules of a config file, so that
// a resource is written the same way in both ("24h", the YAML keys).
func decodeInto(b []byte, m proto.Message) error {
	proto.Reset(m)
	ps := config.DecodeMessage(b, m)
	if len(ps) == 0 {
		return nil
	}
	e := invalid("the body does not describe this resource")
	for _, p := range ps {
		e.Details = append(e.Details, Detail{Path: p.Path, Message: p.Msg})
	}
	return e
}

// only refuses fields other than the named ones (what a role may set).
func (in input) only(who string, names ...string) error {
	for k := range in {
		if !slices.Contains(names, k) {
			return forbidden(fmt.Sprintf("%s may not set %s", who, k))
		}
	}
	return nil
}

// validate holds resources to the data plane's own rules. References to
// resources not in res are checked by the caller, against the store.
func (s *Server) validate(what string, res *tollgatev1.Resources) error {
	_, ps := model.Compile(model.Input{Resources: res, Partial: true, BaseDir: s.o.BaseDir, Now: s.now()})
	if len(ps) == 0 {
		return nil
	}
	for i := range ps {
		// "apis[0].operations[1].path" -> "operations[1].path": the body
		// is the one resource.
		if _, rest, ok := strings.Cut(ps[i].Path, "]."); ok && strings.Count(ps[i].Path[:strings.Index(ps[i].Path, "]")], "[") == 1 {
			ps[i].Path = rest
		}
	}
	return problems(what, ps)
}

// exists checks that a referenced record is there.
func exists(tx *store.Tx, kind store.Kind, id, field string) error {
	if id == "" {
		return nil
	}
	if _, err := tx.Get(kind, id); err != nil {
		return invalid(fmt.Sprintf("%s: no %s %q", field, kind, id), Detail{Path: field, Message: fmt.Sprintf("no %s %q", kind, id)})
	}
	return nil
}

func decodeSpec[M proto.Message](r store.Record, m M) (M, store.Meta, error) {
	meta, err := store.DecodeBody(r.Body, m)
	return m, meta, err
}
