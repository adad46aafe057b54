package analytics

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tollgate/tollgate/internal/authz"
)

// Recorder is what the decision pipeline reports to: metrics always, and
// analytics events (joined with access logs) when they are wanted.
type Recorder struct {
	*Metrics
	Joiner *Joiner
}

// ObserveDecision implements authz.Recorder.
func (r Recorder) ObserveDecision(req *authz.Request, d *authz.Decision, elapsed time.Duration) {
	r.Metrics.ObserveDecision(req, d, elapsed)
	if r.Joiner != nil && r.Joiner.Wants() {
		r.Joiner.Decided(eventOf(req, d, elapsed, time.Now()))
	}
}

// eventOf builds the event of a decision taken at the given time. The
// request's strings are substrings of the whole request as it arrived, and
// the identity's may be too, so every string is cut to its limit and
// copied: the event must not keep the request alive.
func eventOf(req *authz.Request, d *authz.Decision, elapsed time.Duration, at time.Time) *Event {
	e := &Event{
		Timestamp:      at.UTC(),
		RequestID:      clip(req.RequestID, maxIDLen),
		Frontend:       req.Frontend.String(),
		API:            clip(d.APIID(), maxNameLen),
		Operation:      clip(d.OperationPath(), maxPathLen),
		Method:         clip(req.Method, maxMethodLen),
		Host:           clip(req.Host, maxNameLen),
		Path:           clip(d.LogPath(req), maxPathLen),
		Subject:        clip(d.Identity.Subject, maxNameLen),
		CredentialType: clip(d.Identity.Credential, maxIDLen),
		UserAgent:      clip(req.Headers.Get("user-agent"), maxNameLen),
		Decision:       "allow",
		Code:           AllowCode,
		Latency:        Latency{EnforcerMS: ms(elapsed)},
	}
	if d.ClientIP.IsValid() {
		e.ClientIP = d.ClientIP.String()
	}
	if d.API != nil {
		e.APIVersion = clip(d.API.Version, maxIDLen)
	}
	if app := d.Identity.Application; app != nil {
		e.Application = clip(app.ID, maxNameLen)
	}
	if !d.Allowed {
		e.Decision, e.Code = "deny", clip(d.Denial.Code, maxIDLen)
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
