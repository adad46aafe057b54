package store

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/internal/resources"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// Served is what replicas get of one record: its type URL, resource name
// and message, or ok false when they get nothing (a created or retired
// API, a pending subscription, a revoked key, a deleted record).
func Served(r Record) (typeURL, name string, msg proto.Message, ok bool, err error) {
	decode := func(m proto.Message) (proto.Message, error) {
		_, err := DecodeBody(r.Body, m)
		return m, err
	}
	switch r.Kind {
	case KindPolicy:
		msg, err = decode(&tollgatev1.RateLimitPolicy{})
		return resources.RateLimitPolicy, r.ID, msg, !r.Deleted, err
	case KindIssuer:
		msg, err = decode(&tollgatev1.Issuer{})
		return resources.Issuer, r.ID, msg, !r.Deleted, err
	case KindMtls:
		msg, err = decode(&tollgatev1.MtlsSettings{})
		return resources.MtlsSettings, resources.MtlsName, msg, !r.Deleted, err
	case KindRevokedToken:
		msg, err = decode(&tollgatev1.RevokedToken{})
		return resources.RevokedToken, r.ID, msg, !r.Deleted, err
	case KindApplication:
		msg, err = decode(&tollgatev1.Application{})
		return resources.Application, r.ID, msg, !r.Deleted, err
	case KindAPI:
		var a proto.Message
		a, err = decode(&tollgatev1.Api{})
		api := a.(*tollgatev1.Api)
		api.Blocked = r.State == APIBlocked
		on := r.State == APIPublished || r.State == APIDeprecated || r.State == APIBlocked
		return resources.Api, r.ID, api, on && !r.Deleted, err
	case KindSubscription:
		var m proto.Message
		m, err = decode(&tollgatev1.Subscription{})
		sub := m.(*tollgatev1.Subscription)
		sub.State = r.State
		return resources.Subscription, r.ID, sub, r.State != SubPending && !r.Deleted, err
	case KindAPIKey:
		var m proto.Message
		m, err = decode(&tollgatev1.ApiKey{})
		k := m.(*tollgatev1.ApiKey)
		return resources.ApiKey, strings.ToLower(k.GetSha256()), k, r.State == KeyActive && !r.Deleted, err
	}
	return "", "", nil, false, fmt.Errorf("record of unknown kind %q", r.Kind)
}
