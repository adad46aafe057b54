package analytics

import (
	"net/netip"
	"time"
)

// Front-end names, the values of the frontend label.
const (
	FrontendGRPC = "grpc"
	FrontendHTTP = "http"
)

// Decision is what metrics, events and traces record of one decision.
// The decision pipeline fills it in (the wiring adapts the pipeline's own
// types), so analytics depends on no part of the pipeline. It is passed
// by value: recording a decision allocates nothing unless an event is
// wanted.
type Decision struct {
	Frontend  string // FrontendGRPC or FrontendHTTP
	API       string // the matched API's id; "" if none
	Operation string // the matched operation's template; "" if none
	Allowed   bool
	Code      string // the deny code; "" when allowed
	Status    int    // the HTTP status of a denial; 0 when allowed
	Elapsed   time.Duration

	// Application is the caller's application id, from the config; ""
	// when the caller was not identified. Usage reads it of every decision.
	Application string

	// The rest is read only for events (see Recorder.WantsEvents). The
	// strings may point into the request: events copy what they keep.
	RequestID  string
	Method     string
	Host       string
	Path       string // as matched, or as sent without its query
	UserAgent  string
	APIVersion string
	Subject    string
	Credential string
	KeyID      string // the API key's id; "" for another credential, or a key without one
	ClientIP   netip.Addr
	// Policies name the policies the request ran (from the config, shared:
	// never modified).
	Policies []string
}
