package config

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The resource sections of the file are tollgate.v1 messages. They are
// decoded from YAML by their descriptors, with the same rules as the rest
// of the file: keys are the messages' JSON names, unknown and repeated
// keys are problems, durations are written as 250ms or 24h and timestamps
// in RFC 3339.

var (
	durationName  = (&durationpb.Duration{}).ProtoReflect().Descriptor().FullName()
	timestampName = (&timestamppb.Timestamp{}).ProtoReflect().Descriptor().FullName()
)

// DecodeMessage reads one JSON or YAML object into m by the rules of a
// config file: its keys, durations such as "24h", unknown or repeated
// keys refused, every problem reported with its path. Unlike a file,
// ${VAR} is not expanded: this reads the admin API's request bodies.
func DecodeMessage(data []byte, m proto.Message) Problems {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Problems{syntaxProblem(err)}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return Problems{{Msg: "want an object"}}
	}
	d := &decoder{lines: map[string]int{}, budget: 10*countNodes(root) + aliasAllowance}
	d.decodeMessage(root, m.ProtoReflect(), "")
	return capProblems(d.problems, d.dropped)
}

func (d *decoder) decodeMessage(n *yaml.Node, m protoreflect.Message, path string) {
	fields := m.Descriptor().Fields()
	d.eachKey(n, path, func(k, val *yaml.Node, kpath string) {
		fd := fields.ByJSONName(k.Value)
		if fd == nil {
			d.addf(k, kpath, "unknown key %q (known: %s)", k.Value, strings.Join(jsonNames(fields), ", "))
			return
		}
		if val = d.enter(val, kpath); val == nil {
			return
		}
		switch {
		case fd.IsList():
			d.decodeList(val, m.Mutable(fd).List(), fd, kpath)
		case fd.IsMap():
			d.decodeMap(val, m.Mutable(fd).Map(), fd, kpath)
		default:
			if v, ok := d.protoValue(val, m, fd, kpath); ok {
				m.Set(fd, v)
			}
		}
	})
}

func (d *decoder) decodeList(n *yaml.Node, list protoreflect.List, fd protoreflect.FieldDescriptor, path string) {
	if n.Kind != yaml.SequenceNode {
		d.addf(n, path, "expected a list, got %s", describe(n))
		return
	}
	for i, item := range n.Content {
		ipath := fmt.Sprintf("%s[%d]", path, i)
		if item = d.enter(item, ipath); item == nil {
			// A null item keeps its place, so that later paths keep
			// their indexes; validation reports it.
			list.Append(list.NewElement())
			continue
		}
		if fd.Message() != nil && !wellKnown(fd.Message()) {
			elem := list.NewElement()
			d.decodeMessage(item, elem.Message(), ipath)
			list.Append(elem)
			continue
		}
		if v, ok := d.scalarValue(item, fd, ipath); ok {
			list.Append(v)
		}
	}
}

func (d *decoder) decodeMap(n *yaml.Node, m protoreflect.Map, fd protoreflect.FieldDescriptor, path string) {
	if n.Kind != yaml.MappingNode {
		d.addf(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	if fd.MapKey().Kind() != protoreflect.StringKind || fd.MapValue().Message() != nil {
		d.addf(n, path, "internal error: no decoder for %s", fd.FullName())
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		kpath := joinPath(path, k.Value)
		key := protoreflect.ValueOfString(k.Value).MapKey()
		if m.Has(key) {
			d.addf(k, kpath, "key %q appears twice", k.Value)
			continue
		}
		if val = d.enter(val, kpath); val == nil {
			continue
		}
		if v, ok := d.scalarValue(val, fd.MapValue(), kpath); ok {
			m.Set(key, v)
		}
	}
}

// protoValue decodes a singular field: a message or a scalar.
func (d *decoder) protoValue(n *yaml.Node, m protoreflect.Message, fd protoreflect.FieldDescriptor, path string) (protoreflect.Value, bool) {
	if md := fd.Message(); md != nil && !wellKnown(md) {
		sub := m.NewField(fd)
		d.decodeMessage(n, sub.Message(), path)
		return sub, true
	}
	return d.scalarValue(n, fd, path)
}

// scalarValue decodes a value that is written as one YAML scalar,
// including durations and timestamps.
func (d *decoder) scalarValue(n *yaml.Node, fd protoreflect.FieldDescriptor, path string) (protoreflect.Value, bool) {
	if md := fd.Message(); md != nil {
		switch md.FullName() {
		case durationName:
			if dur, ok := d.duration(n, path); ok {
				return protoreflect.ValueOfMessage(durationpb.New(dur).ProtoReflect()), true
			}
		case timestampName:
			if t, ok := d.timestamp(n, path); ok {
				return protoreflect.ValueOfMessage(timestamppb.New(t).ProtoReflect()), true
			}
		}
		return protoreflect.Value{}, false
	}
	switch fd.Kind() {
	case protoreflect.StringKind:
		if s, ok := d.scalar(n, path, "a string"); ok {
			return protoreflect.ValueOfString(s), true
		}
	case protoreflect.BoolKind:
		if b, ok := d.boolean(n, path); ok {
			return protoreflect.ValueOfBool(b), true
		}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		if i, ok := d.integer(n, path); ok {
			return protoreflect.ValueOfInt64(i), true
		}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		if i, ok := d.integer(n, path); ok {
			if int64(int32(i)) != i {
				d.addf(n, path, "expected an integer between %d and %d, got %d", int32(-1<<31), int32(1<<31-1), i)
				return protoreflect.Value{}, false
			}
			return protoreflect.ValueOfInt32(int32(i)), true
		}
	case protoreflect.DoubleKind:
		if f, ok := d.number(n, path); ok {
			return protoreflect.ValueOfFloat64(f), true
		}
	default:
		d.addf(n, path, "internal error: no decoder for %s", fd.FullName())
	}
	return protoreflect.Value{}, false
}

func wellKnown(md protoreflect.MessageDescriptor) bool {
	return md.FullName() == durationName || md.FullName() == timestampName
}

func jsonNames(fields protoreflect.FieldDescriptors) []string {
	names := make([]string, fields.Len())
	for i := range names {
		names[i] = fields.Get(i).JSONName()
	}
	return names
}
