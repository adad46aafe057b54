package analytics

import (
	"strings"
	"time"
	"unicode/utf8"
)

// Recorder is what the decision pipeline reports to: metrics always, and
// analytics events (joined with access logs) when they are wanted.
type Recorder struct {
	*Metrics
	Joiner *Joiner
}

// WantsEvents reports whether decisions become events, so that the
// fields only events read are filled in only then.
func (r Recorder) WantsEvents() bool { return r.Joiner != nil && r.Joiner.Wants() }

// ObserveDecision records d in the metrics and, when wanted, as an event.
// Usage gets it through the event, or, when no event is wanted (no sink,
// no access log to wait for), straight from the decision.
func (r Recorder) ObserveDecision(d Decision) {
	r.Metrics.ObserveDecision(d)
	switch {
	case r.WantsEvents():
		r.Joiner.Decided(eventOf(d, time.Now()))
	case r.Joiner != nil && r.Joiner.o.Usage != nil:
		r.Joiner.o.Usage.RecordUsage(usageOfDecision(d, time.Now()))
	}
}

// eventOf builds the event of a decision taken at the given time. The
// decision's strings may be substrings of the whole request as it
// arrived, so every string is cut to its limit and copied: the event must
// not keep the request alive.
func eventOf(d Decision, at time.Time) *Event {
	e := &Event{
		Timestamp:      at.UTC(),
		RequestID:      clip(d.RequestID, maxIDLen),
		Frontend:       d.Frontend,
		API:            clip(d.API, maxNameLen),
		APIVersion:     clip(d.APIVersion, maxIDLen),
		Operation:      clip(d.Operation, maxPathLen),
		Method:         clip(d.Method, maxMethodLen),
		Host:           clip(d.Host, maxNameLen),
		Path:           clip(d.Path, maxPathLen),
		Application:    clip(d.Application, maxNameLen),
		Subject:        clip(d.Subject, maxNameLen),
		CredentialType: clip(d.Credential, maxIDLen),
		KeyID:          clip(d.KeyID, maxIDLen),
		UserAgent:      clip(d.UserAgent, maxNameLen),
		Decision:       "allow",
		Code:           AllowCode,
		Latency:        Latency{EnforcerMS: ms(d.Elapsed)},
		Policies:       d.Policies, // names from the config, never modified
	}
	if d.ClientIP.IsValid() {
		e.ClientIP = d.ClientIP.String()
	}
	if !d.Allowed {
		e.Decision, e.Code, e.status = "deny", clip(d.Code, maxIDLen), d.Status
	}
	return e
}

// clip returns a copy of s cut to at most limit bytes, at a rune boundary
// when s is UTF-8 (at most utf8.UTFMax-1 bytes are given up for it).
func clip(s string, limit int) string {
	if len(s) > limit {
		cut := limit
		for cut > 0 && cut > limit-(utf8.UTFMax-1) && !utf8.RuneStart(s[cut]) {
			cut--
		}
		if !utf8.RuneStart(s[cut]) { // not UTF-8 here: a plain byte cut
			cut = limit
		}
		s = s[:cut]
	}
	return strings.Clone(s)
}
