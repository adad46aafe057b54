package authz

import (
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// metadataKeys name the dynamic metadata entries, in the order
// metadataValues returns them.
var metadataKeys = [...]string{"api", "operation", "application", "subject", "credential_type", "code", "source_principal"}

// metadataKeyID names the API key's id, written from its packed form
// rather than as a string (which would be an allocation per check).
const metadataKeyID = "key_id"

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
	var idBuf [16]byte
	keyID := d.Identity.KeyID.Append(idBuf[:0])
	structLen := metadataFieldSize(metadataKeyID, keyID)
	for i, v := range values {
		structLen += metadataFieldSize(metadataKeys[i], v)
	}
	if structLen == 0 {
		return
	}
	b := make([]byte, 0, protowire.SizeTag(checkResponseDynamicMetadata)+protowire.SizeBytes(structLen))
	b = protowire.AppendTag(b, checkResponseDynamicMetadata, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(structLen))
	for i, v := range values {
		b = appendMetadataField(b, metadataKeys[i], v)
	}
	b = appendMetadataField(b, metadataKeyID, keyID)
	resp.ProtoReflect().SetUnknown(protoreflect.RawFields(b))
}

// metadataFieldSize is the length of one Struct field {key, Value{v}} with
// its tag; 0 for an empty v, which is left out.
func metadataFieldSize[V string | []byte](key string, v V) int {
	if len(v) == 0 {
		return 0
	}
	return protowire.SizeTag(structFields) + protowire.SizeBytes(metadataEntrySize(key, len(v)))
}

// appendMetadataField appends one Struct field {key, Value{v}}; nothing
// for an empty v.
func appendMetadataField[V string | []byte](b []byte, key string, v V) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, structFields, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(metadataEntrySize(key, len(v))))
	b = protowire.AppendTag(b, mapEntryKey, protowire.BytesType)
	b = protowire.AppendString(b, key)
	b = protowire.AppendTag(b, mapEntryValue, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(stringValueSize(len(v))))
	b = protowire.AppendTag(b, valueStringValue, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(len(v)))
	return append(b, v...)
}

// stringValueSize is the length of a Value holding a string of n bytes.
func stringValueSize(n int) int {
	return protowire.SizeTag(valueStringValue) + protowire.SizeBytes(n)
}

// metadataEntrySize is the length of one map entry {key, Value{v}}, v n
// bytes long.
func metadataEntrySize(key string, n int) int {
	return protowire.SizeTag(mapEntryKey) + protowire.SizeBytes(len(key)) +
		protowire.SizeTag(mapEntryValue) + protowire.SizeBytes(stringValueSize(n))
}
