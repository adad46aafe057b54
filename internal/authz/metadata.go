package authz

import (
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// metadataKeys name the dynamic metadata entries, in the order
// metadataValues returns them.
var metadataKeys = [...]string{"api", "operation", "application", "subject", "credential_type", "code", "source_principal"}

func metadataValues(d *Decision) [len(metadataKeys)]string {
	values := [len(metadataKeys)]string{d.APIID(), d.OperationPath(), "", d.Identity.Subject, d.Identity.Credential, d.Code(), d.Identity.Principal}
	if app := d.Identity.Application; app != nil {
		values[2] = app.ID
	}
	return values
}

// Field numbers of the messages setDynamicMetadata writes.
const (
	checkResponseDynamicMetadata protowire.Number = 4 // CheckResponse.dynamic_metadata (google.protobuf.Struct)
	structFields                 protowire.Number = 1 // Struct.fields, map<string, Value>
	mapEntryKey                  protowire.Number = 1
	mapEntryValue                protowire.Number = 2
	valueStringValue             protowire.Number = 3 // Value.string_value
)

// setDynamicMetadata gives the response the decision's dynamic metadata,
// what Envoy's access log reads as
// %DYNAMIC_METADATA(envoy.filters.http.ext_authz:api)% and so on.
//
// It writes the Struct's wire form directly, as bytes the response carries
// and protobuf emits verbatim (unknown fields): built as a structpb.Struct,
// the map cost more to marshal than the rest of Tollgate's decision, with
// eleven allocations. On the wire the result is the ordinary
// dynamic_metadata field; in this process resp.DynamicMetadata stays nil.
func setDynamicMetadata(resp *authv3.CheckResponse, d *Decision) {
	values := metadataValues(d)
	var entries [len(metadataKeys)]int // each entry's length
	structLen := 0
	for i, v := range values {
		if v == "" {
			continue
		}
		entries[i] = metadataEntrySize(metadataKeys[i], v)
		structLen += protowire.SizeTag(structFields) + protowire.SizeBytes(entries[i])
	}
	if structLen == 0 {
		return
	}
	b := make([]byte, 0, protowire.SizeTag(checkResponseDynamicMetadata)+protowire.SizeBytes(structLen))
	b = protowire.AppendTag(b, checkResponseDynamicMetadata, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(structLen))
	for i, v := range values {
		if v == "" {
			continue
		}
		b = protowire.AppendTag(b, structFields, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(entries[i]))
		b = protowire.AppendTag(b, mapEntryKey, protowire.BytesType)
		b = protowire.AppendString(b, metadataKeys[i])
		b = protowire.AppendTag(b, mapEntryValue, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(stringValueSize(v)))
		b = protowire.AppendTag(b, valueStringValue, protowire.BytesType)
		b = protowire.AppendString(b, v)
	}
	resp.ProtoReflect().SetUnknown(protoreflect.RawFields(b))
}

// stringValueSize is the length of a Value holding string v.
func stringValueSize(v string) int {
	return protowire.SizeTag(valueStringValue) + protowire.SizeBytes(len(v))
}

// metadataEntrySize is the length of one map entry {key, Value{v}}.
func metadataEntrySize(key, v string) int {
	return protowire.SizeTag(mapEntryKey) + protowire.SizeBytes(len(key)) +
		protowire.SizeTag(mapEntryValue) + protowire.SizeBytes(stringValueSize(v))
}
