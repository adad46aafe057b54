// Package envoytest reads Envoy configuration in tests as strictly as
// Envoy would, with go-control-plane's protos: the shipped bootstraps are
// checked offline, without an Envoy binary.
package envoytest

import (
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"
)

// Bootstrap decodes an Envoy bootstrap written in YAML: protojson refuses
// unknown fields and enum names, ValidateAll applies Envoy's own field
// rules, and every Any (typed_config and the like) must name a type the
// test binary has registered, whose contents validate too — ValidateAll
// itself stops at Any fields.
func Bootstrap(t testing.TB, data []byte) *bootstrapv3.Bootstrap {
	t.Helper()
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	boot := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(j, boot); err != nil {
		t.Fatalf("envoy bootstrap: %v", err)
	}
	if err := boot.ValidateAll(); err != nil {
		t.Fatalf("envoy bootstrap: %v", err)
	}
	walk(t, boot.ProtoReflect())
	return boot
}

// walk visits every message field of m and checks each Any in it.
func walk(t testing.TB, m protoreflect.Message) {
	t.Helper()
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := range v.List().Len() {
				visit(t, v.List().Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				visit(t, mv.Message())
				return true
			})
		case fd.Message() != nil && !fd.IsMap():
			visit(t, v.Message())
		}
		return true
	})
}

func visit(t testing.TB, m protoreflect.Message) {
	t.Helper()
	a, ok := m.Interface().(*anypb.Any)
	if !ok {
		walk(t, m)
		return
	}
	inner, err := a.UnmarshalNew()
	if err != nil {
		t.Errorf("%s does not resolve: %v (is its package imported by the test?)", a.GetTypeUrl(), err)
		return
	}
	if v, ok := inner.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			t.Errorf("%s: %v", a.GetTypeUrl(), err)
		}
	}
	walk(t, inner.ProtoReflect())
}
