package policy

import (
	"reflect"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
)

// The rule variables request and identity are maps to CEL. They are
// served by these two types rather than built as Go maps: a field is
// produced when a rule reads it, so a rule that reads request.method
// builds nothing else. What a field holds is the same as in the map
// (fields), which the rarer operations (iterating, comparing, size) use.

type requestVal struct{ in *RuleInput }

type identityVal struct{ in *RuleInput }

var (
	requestKeys  = []string{"method", "path", "host", "headers", "query"}
	identityKeys = []string{"application", "subject", "principal", "credential", "scopes", "claims"}
)

func (v requestVal) field(key string) (ref.Val, bool) {
	in := v.in
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

func (v identityVal) field(key string) (ref.Val, bool) {
	in := v.in
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

// fieldMap is what both types share: a fixed set of keys and a way to
// read one.
type fieldMap struct {
	keys  []string
	field func(key string) (ref.Val, bool)
}

// materialize builds the whole map, for the operations that need every
// field.
func (m fieldMap) materialize() traits.Mapper {
	out := make(map[ref.Val]ref.Val, len(m.keys))
	for _, k := range m.keys {
		v, _ := m.field(k)
		out[types.String(k)] = v
	}
	return types.NewRefValMap(types.DefaultTypeAdapter, out).(traits.Mapper)
}

func (m fieldMap) find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return types.ValOrErr(key, "no such key: %v", key), false
	}
	return m.field(string(k))
}

func (v requestVal) fields() fieldMap  { return fieldMap{requestKeys, v.field} }
func (v identityVal) fields() fieldMap { return fieldMap{identityKeys, v.field} }

// ref.Val and traits.Mapper, for request.

func (v requestVal) ConvertToNative(t reflect.Type) (any, error) {
	return v.fields().materialize().ConvertToNative(t)
}
func (v requestVal) ConvertToType(t ref.Type) ref.Val {
	return v.fields().materialize().ConvertToType(t)
}
func (v requestVal) Equal(o ref.Val) ref.Val { return v.fields().materialize().Equal(o) }
func (v requestVal) Type() ref.Type          { return types.MapType }
func (v requestVal) Value() any              { return v.fields().materialize().Value() }
func (v requestVal) Contains(key ref.Val) ref.Val {
	_, ok := v.fields().find(key)
	return types.Bool(ok)
}
func (v requestVal) Get(key ref.Val) ref.Val {
	if val, ok := v.fields().find(key); ok {
		return val
	}
	return types.NewErr("no such key: %v", key)
}
func (v requestVal) Iterator() traits.Iterator        { return v.fields().materialize().Iterator() }
func (v requestVal) Size() ref.Val                    { return types.Int(len(requestKeys)) }
func (v requestVal) Find(key ref.Val) (ref.Val, bool) { return v.fields().find(key) }

// ref.Val and traits.Mapper, for identity.

func (v identityVal) ConvertToNative(t reflect.Type) (any, error) {
	return v.fields().materialize().ConvertToNative(t)
}
func (v identityVal) ConvertToType(t ref.Type) ref.Val {
	return v.fields().materialize().ConvertToType(t)
}
func (v identityVal) Equal(o ref.Val) ref.Val { return v.fields().materialize().Equal(o) }
func (v identityVal) Type() ref.Type          { return types.MapType }
func (v identityVal) Value() any              { return v.fields().materialize().Value() }
func (v identityVal) Contains(key ref.Val) ref.Val {
	_, ok := v.fields().find(key)
	return types.Bool(ok)
}
func (v identityVal) Get(key ref.Val) ref.Val {
	if val, ok := v.fields().find(key); ok {
		return val
	}
	return types.NewErr("no such key: %v", key)
}
func (v identityVal) Iterator() traits.Iterator        { return v.fields().materialize().Iterator() }
func (v identityVal) Size() ref.Val                    { return types.Int(len(identityKeys)) }
func (v identityVal) Find(key ref.Val) (ref.Val, bool) { return v.fields().find(key) }
