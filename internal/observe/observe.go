// Package observe connects the decision pipeline to analytics: it turns
// authz's requests and decisions into the analytics.Decision that
// metrics, events and traces record, so that neither package imports the
// other.
package observe

import (
	"context"
	"time"

	"github.com/tollgate/tollgate/internal/analytics"
	"github.com/tollgate/tollgate/internal/authz"
)

// Decisions returns the authz.Recorder that reports the pipeline's
// decisions to r.
func Decisions(r analytics.Recorder) authz.Recorder { return decisionRecorder{r} }

// Tracer returns the authz.Tracer that traces checks with t.
func Tracer(t *analytics.Tracing) authz.Tracer { return checkTracer{t} }

// decisionRecorder reports decisions in the terms analytics defines. The
// fields only events read are filled in only when events are wanted.
type decisionRecorder struct{ analytics.Recorder }

func (r decisionRecorder) ObserveDecision(req *authz.Request, d *authz.Decision, elapsed time.Duration) {
	a := analyticsDecision(req, d)
	a.Elapsed = elapsed
	if r.WantsEvents() {
		a.RequestID, a.Method, a.Host = req.RequestID, req.Method, req.Host
		a.Path, a.UserAgent = d.LogPath(req), req.Headers.Get("user-agent")
		a.Subject, a.Credential, a.ClientIP = d.Identity.Subject, d.Identity.Credential, d.ClientIP
		a.KeyID = d.Identity.KeyID.String()
		a.Policies = d.Policies
		if d.API != nil {
			a.APIVersion = d.API.Version
		}
	}
	if app := d.Identity.Application; app != nil {
		a.Application = app.ID // for usage, whether or not events are wanted
	}
	r.Recorder.ObserveDecision(a)
}

func analyticsDecision(req *authz.Request, d *authz.Decision) analytics.Decision {
	a := analytics.Decision{
		Frontend: req.Frontend.String(), API: d.APIID(), Operation: d.OperationPath(),
		Allowed: d.Allowed, Code: d.Code(),
	}
	if !d.Allowed {
		a.Status = d.Denial.Status
	}
	return a
}

// checkTracer traces checks with analytics' tracing.
type checkTracer struct{ *analytics.Tracing }

func (t checkTracer) StartCheck(ctx context.Context, req *authz.Request) (context.Context, func(*authz.Decision)) {
	ctx, end := t.Tracing.StartCheck(ctx, req.Frontend.String(), req.Method, req.Headers.Get)
	return ctx, func(d *authz.Decision) { end(analyticsDecision(req, d)) }
}
