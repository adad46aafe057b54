package analytics

import (
	"time"

	"github.com/tollgate/tollgate/internal/authz"
	"github.com/tollgate/tollgate/internal/catalog"
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
		r.Joiner.Decided(eventOf(req, d, elapsed))
	}
}

// eventOf copies what the event needs out of the request, which belongs
// to the front end and must not be kept.
func eventOf(req *authz.Request, d *authz.Decision, elapsed time.Duration) *Event {
	e := &Event{
		Timestamp:      time.Now().UTC(),
		RequestID:      req.RequestID,
		Frontend:       req.Frontend.String(),
		API:            d.APIID(),
		Operation:      d.OperationPath(),
		Method:         req.Method,
		Host:           req.Host,
		Path:           catalog.NormalizePath(req.Target),
		Subject:        d.Identity.Subject,
		CredentialType: d.Identity.Credential,
		UserAgent:      req.Headers.Get("user-agent"),
		Decision:       "allow",
		Code:           AllowCode,
		Latency:        Latency{EnforcerMS: ms(elapsed)},
	}
	if d.ClientIP.IsValid() {
		e.ClientIP = d.ClientIP.String()
	}
	if d.API != nil {
		e.APIVersion = d.API.Version
	}
	if app := d.Identity.Application; app != nil {
		e.Application = app.ID
	}
	if !d.Allowed {
		e.Decision, e.Code = "deny", d.Denial.Code
	}
	return e
}
