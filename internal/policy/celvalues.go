package policy

import (
	"reflect"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
)

// The rule variables request and identity are maps to CEL. They are
// served by inputMap rather than built as Go maps: a field is produced
// when a rule reads it, so a rule that reads request.method builds
// nothing else. The rarer operations (iterating, comparing, size) build
// the whole map.

// fieldSet is the fields of one variable: its keys, and how to read one.
type fieldSet interface {
	keys() []string
	field(in *RuleInput, key string) (ref.Val, bool)
}

type requestFields struct{}

type identityFields struct{}

var (
	requestKeys  = []string{"method", "path", "host", "headers", "query"}
	identityKeys = []string{"application", "subject", "principal", "credential", "scopes", "claims"}
)

func (requestFields) keys() []string  { return requestKeys }
func (identityFields) keys() []string { return identityKeys }

func (requestFields) field(in *RuleInput, key string) (ref.Val, bool) {
	switch key {
	case "method":
		return types.String(in.Method), true // one of nine, or refused before
	case "path":
		return sized(in.Path), true
	case "host":
		return sized(in.Host), true
	case "headers":
		if in.headers == nil {
			in.headers = map[string]string{}
			if in.Headers != nil {
				in.headers = in.Headers.Map()
			}
		}
		if !withinSizes(in.headers) {
			return errTooLarge, true
		}
		return types.NewStringStringMap(types.DefaultTypeAdapter, in.headers), true
	case "query":
		if in.query == nil {
			in.query = firstValues(in.Target)
		}
		if !withinSizes(in.query) {
			return errTooLarge, true
		}
		return types.NewStringStringMap(types.DefaultTypeAdapter, in.query), true
	}
	return nil, false
}

func (identityFields) field(in *RuleInput, key string) (ref.Val, bool) {
	switch key {
	case "application":
		return types.String(in.Application), true
	case "subject":
		return sized(in.Subject), true
	case "principal":
		return sized(in.Principal), true
	case "credential":
		return types.String(in.Credential), true
	case "scopes":
		scopes := in.Scopes
		if scopes == nil {
			scopes = []string{}
		}
		if len(scopes) > maxSizeList {
			return errTooLarge, true
		}
		return types.NewStringList(types.DefaultTypeAdapter, scopes), true
	case "claims":
		if in.Claims == nil {
			return types.NewStringInterfaceMap(types.DefaultTypeAdapter, map[string]any{}), true
		}
		if len(in.Claims) > maxSizeList {
			return errTooLarge, true
		}
		for _, c := range in.Claims {
			if s, ok := c.(string); ok && len(s) > maxSizeString {
				return errTooLarge, true
			}
		}
		return types.NewStringInterfaceMap(types.DefaultTypeAdapter, in.Claims), true
	}
	return nil, false
}

// sized is s as a CEL string, or an error when it is over the size the
// rules' cost is estimated with.
func sized(s string) ref.Val {
	if len(s) > maxSizeString {
		return errTooLarge
	}
	return types.String(s)
}

// inputMap is one variable of a rule's input, as a CEL map.
type inputMap[F fieldSet] struct{ in *RuleInput }

func (m inputMap[F]) find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return types.ValOrErr(key, "no such key: %v", key), false
	}
	var f F
	return f.field(m.in, string(k))
}

// materialize builds the whole map, for the operations that need every
// field.
func (m inputMap[F]) materialize() traits.Mapper {
	var f F
	out := make(map[ref.Val]ref.Val, len(f.keys()))
	for _, k := range f.keys() {
		v, _ := f.field(m.in, k)
		out[types.String(k)] = v
	}
	return types.NewRefValMap(types.DefaultTypeAdapter, out).(traits.Mapper)
}

// ref.Val and traits.Mapper.

func (m inputMap[F]) ConvertToNative(t reflect.Type) (any, error) {
	return m.materialize().ConvertToNative(t)
}
func (m inputMap[F]) ConvertToType(t ref.Type) ref.Val { return m.materialize().ConvertToType(t) }
func (m inputMap[F]) Equal(o ref.Val) ref.Val          { return m.materialize().Equal(o) }
func (m inputMap[F]) Type() ref.Type                   { return types.MapType }
func (m inputMap[F]) Value() any                       { return m.materialize().Value() }
func (m inputMap[F]) Contains(key ref.Val) ref.Val {
	_, ok := m.find(key)
	return types.Bool(ok)
}
func (m inputMap[F]) Get(key ref.Val) ref.Val {
	if val, ok := m.find(key); ok {
		return val
	}
	return types.NewErr("no such key: %v", key)
}
func (m inputMap[F]) Iterator() traits.Iterator        { return m.materialize().Iterator() }
func (m inputMap[F]) Size() ref.Val                    { var f F; return types.Int(len(f.keys())) }
func (m inputMap[F]) Find(key ref.Val) (ref.Val, bool) { return m.find(key) }
