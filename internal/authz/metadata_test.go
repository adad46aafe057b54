package authz

import (
	"maps"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/internal/catalog"
	"github.com/tollgate/tollgate/internal/keys"
)

// wireMetadata returns the dynamic metadata of resp as Envoy reads it:
// after a trip through the wire format.
func wireMetadata(t testing.TB, resp *authv3.CheckResponse) map[string]string {
	t.Helper()
	b, err := proto.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	var got authv3.CheckResponse
	if err := proto.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.ProtoReflect().GetUnknown()) > 0 {
		t.Fatalf("the response has fields Envoy does not know: %x", got.ProtoReflect().GetUnknown())
	}
	out := map[string]string{}
	for k, v := range got.GetDynamicMetadata().GetFields() {
		out[k] = v.GetStringValue()
	}
	return out
}

func TestDynamicMetadataWireForm(t *testing.T) {
	app := &catalog.Application{ID: "mobile"}
	long := strings.Repeat("é", 300) // lengths that need two-byte varints
	keyID, _ := keys.ParseKeyID("k3y1d0000042")
	cases := []struct {
		name string
		d    Decision
		want map[string]string
	}{
		{"empty", Decision{}, map[string]string{}},
		{"allow", Decision{Allowed: true, Identity: Identity{Application: app, Subject: "alice", Credential: "jwt"}},
			map[string]string{"application": "mobile", "subject": "alice", "credential_type": "jwt"}},
		{"deny", Decision{Denial: Denial{Code: "900901"}}, map[string]string{"code": "900901"}},
		{"API key with an id", Decision{Allowed: true, Identity: Identity{Application: app, Credential: "apiKey", KeyName: "ci", KeyID: keyID}},
			map[string]string{"application": "mobile", "credential_type": "apiKey", "key_id": "k3y1d0000042"}},
		{"the id alone", Decision{Identity: Identity{KeyID: keyID}}, map[string]string{"key_id": "k3y1d0000042"}},
		{"long values", Decision{Allowed: true, Identity: Identity{Subject: long, Principal: "spiffe://cluster.local/ns/a/sa/" + long}},
			map[string]string{"subject": long, "source_principal": "spiffe://cluster.local/ns/a/sa/" + long}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := checkResponse(&tc.d)
			if got := wireMetadata(t, resp); !maps.Equal(got, tc.want) {
				t.Fatalf("metadata %v, want %v", got, tc.want)
			}
		})
	}
}

// TestDynamicMetadataKeyIDCostsNothing: the key id is written from its
// packed form, so metadata with one allocates no more than without.
func TestDynamicMetadataKeyIDCostsNothing(t *testing.T) {
	keyID, _ := keys.ParseKeyID("k3y1d0000042")
	app := &catalog.Application{ID: "mobile"}
	allocs := func(id keys.KeyID) float64 {
		d := Decision{Allowed: true, Identity: Identity{Application: app, Subject: "alice", Credential: "apiKey", KeyID: id}}
		var resp authv3.CheckResponse
		return testing.AllocsPerRun(100, func() { setDynamicMetadata(&resp, &d) })
	}
	if with, without := allocs(keyID), allocs(0); with != without || with > 1 {
		t.Fatalf("metadata allocates %v times with a key id, %v without; want the same, at most 1 (its buffer)", with, without)
	}
}
