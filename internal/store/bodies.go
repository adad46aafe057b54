package store

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// API lifecycle states. Only published APIs take new subscriptions;
// created and retired APIs are not on the replicas; blocked APIs are, and
// refuse every call.
const (
	APICreated    = "created"
	APIPublished  = "published"
	APIDeprecated = "deprecated"
	APIRetired    = "retired"
	APIBlocked    = "blocked"
)

// Subscription states: the data plane's three, and pending (waiting for
// approval), which replicas never see.
const (
	SubActive  = "active"
	SubBlocked = "blocked"
	SubOnHold  = "onHold"
	SubPending = "pending"
)

// API-key states.
const (
	KeyActive  = "active"
	KeyRevoked = "revoked"
)

// Meta is what the management layer keeps beside a resource's message.
type Meta struct {
	RequiresApproval bool   `json:"requiresApproval,omitempty"`
	Description      string `json:"description,omitempty"`
	// GraceOf names the key that replaced this one (regenerate).
	ReplacedBy string `json:"replacedBy,omitempty"`
	// Tags group an API in the portal's catalog; Tiers name the
	// rate-limit policies a subscription to it may choose (none: any).
	Tags  []string `json:"tags,omitempty"`
	Tiers []string `json:"tiers,omitempty"`
	// Blocked marks an application whose subscriptions are all blocked;
	// PriorState is the state a subscription had before, restored when
	// its application is unblocked.
	Blocked    bool   `json:"blocked,omitempty"`
	PriorState string `json:"priorState,omitempty"`
}

type envelope struct {
	Spec json.RawMessage `json:"spec"`
	Meta Meta            `json:"meta"`
}

// EncodeBody is a record body: the resource's message in its JSON form
// (the names of the YAML format) and the management fields.
func EncodeBody(spec proto.Message, meta Meta) ([]byte, error) {
	b, err := protojson.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("encoding %T: %w", spec, err)
	}
	return json.Marshal(envelope{Spec: b, Meta: meta})
}

// DecodeBody reads a body written by EncodeBody into spec.
func DecodeBody(body []byte, spec proto.Message) (Meta, error) {
	var e envelope
	if err := json.Unmarshal(body, &e); err != nil {
		return Meta{}, fmt.Errorf("reading a record body: %w", err)
	}
	if err := protojson.Unmarshal(e.Spec, spec); err != nil {
		return Meta{}, fmt.Errorf("reading a record's %T: %w", spec, err)
	}
	return e.Meta, nil
}
