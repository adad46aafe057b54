package resources

import (
	"testing"

	"google.golang.org/protobuf/proto"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

func bundle() *tollgatev1.Resources {
	return &tollgatev1.Resources{
		RateLimitPolicies: []*tollgatev1.RateLimitPolicy{{Name: "gold"}},
		Issuers:           []*tollgatev1.Issuer{{Name: "idp", Issuer: "https://idp"}, {Issuer: "https://other"}},
		Mtls:              &tollgatev1.MtlsSettings{CaFile: "ca.pem"},
		Apis:              []*tollgatev1.Api{{Id: "orders"}, {Id: "billing"}},
		Applications:      []*tollgatev1.Application{{Id: "shop"}},
		Subscriptions:     []*tollgatev1.Subscription{{Application: "shop", Api: "orders"}},
		ApiKeys:           []*tollgatev1.ApiKey{{Application: "shop", Sha256: "ABCDEF"}},
		RevokedTokens:     []*tollgatev1.RevokedToken{{Jti: "t1"}},
	}
}

func TestSplitNamesEveryResource(t *testing.T) {
	s, err := Split(bundle())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		RateLimitPolicy: {"gold"}, Issuer: {"idp", "https://other"}, MtlsSettings: {MtlsName},
		Api: {"orders", "billing"}, Application: {"shop"}, Subscription: {"shop/orders"},
		ApiKey: {"abcdef"}, RevokedToken: {"t1"},
	}
	for typ, names := range want {
		if len(s[typ]) != len(names) {
			t.Errorf("%s: %d resources, want %d", ShortName(typ), len(s[typ]), len(names))
		}
		for _, name := range names {
			m, ok := s[typ][name]
			if !ok {
				t.Errorf("%s %q missing", ShortName(typ), name)
				continue
			}
			if got := NameOf(typ, m); got != name {
				t.Errorf("NameOf(%s) = %q, want %q", ShortName(typ), got, name)
			}
			if New(typ) == nil || proto.MessageName(New(typ)) != proto.MessageName(m) {
				t.Errorf("New(%s) is not a %s", typ, proto.MessageName(m))
			}
		}
	}
	if s.Count() != 10 {
		t.Errorf("Count = %d, want 10", s.Count())
	}
}

func TestJoinIsOrderedAndRoundTrips(t *testing.T) {
	s, err := Split(bundle())
	if err != nil {
		t.Fatal(err)
	}
	r, err := Join(s)
	if err != nil {
		t.Fatal(err)
	}
	if r.Apis[0].GetId() != "billing" || r.Apis[1].GetId() != "orders" {
		t.Errorf("APIs not in name order: %v", r.Apis)
	}
	again, err := Split(r)
	if err != nil {
		t.Fatal(err)
	}
	if again.Count() != s.Count() {
		t.Errorf("round trip: %d resources, want %d", again.Count(), s.Count())
	}
	s[Api]["wrong"] = &tollgatev1.Application{Id: "wrong"}
	if _, err := Join(s); err == nil {
		t.Error("Join accepted an Application under the Api type")
	}
}

func TestSplitRefusesTwoResourcesWithOneName(t *testing.T) {
	r := &tollgatev1.Resources{Issuers: []*tollgatev1.Issuer{{Name: "https://idp"}, {Issuer: "https://idp"}}}
	if _, err := Split(r); err == nil {
		t.Fatal("two issuers named https://idp were accepted")
	}
}

func TestWhere(t *testing.T) {
	s, _ := Split(bundle())
	tests := map[string]string{
		"apis[0].operations[2].path": `Api "billing": operations[2].path`,
		"apis[1]":                    `Api "orders"`,
		"apiKeys[0].sha256":          `ApiKey "abcdef": sha256`,
		"apis[7].id":                 "apis[7].id",
		"mtls.caFile":                "mtls.caFile",
		"":                           "",
	}
	for path, want := range tests {
		if got := Where(s, path); got != want {
			t.Errorf("Where(%q) = %q, want %q", path, got, want)
		}
	}
}
