package analytics

import (
	"net/http"
	"time"
)

// Status classes of usage. A 429 of the rate limiter is throttled, not
// 4xx, so that a chart can tell a caller's mistakes from its quota.
const (
	Class2xx       = "2xx"
	Class3xx       = "3xx"
	Class4xx       = "4xx"
	Class5xx       = "5xx"
	ClassThrottled = "throttled"
)

// Usage is what usage accounting keeps of one finished request: who
// called which API, how it ended and how long it took.
type Usage struct {
	At          time.Time // when it was decided
	API         string    // "" when no API matched
	Application string    // "" for a caller that was not identified
	Class       string    // one of the Class constants
	// Latency is the whole request's, from Envoy's access log when it
	// was joined, else the decision's own.
	Latency time.Duration
}

// UsageRecorder receives each request once it is final: a denial at
// once, an allow when its access-log entry arrives or its wait ends.
// RecordUsage is called on the request path (for denials) and from the
// Joiner's goroutine; it must not block.
type UsageRecorder interface {
	RecordUsage(Usage)
}

// usageOf is the usage of a final event; u is its joined access-log
// entry, if any. The strings are the event's, already copies.
func usageOf(e *Event, u *Upstream) Usage {
	out := Usage{At: e.Timestamp, API: e.API, Application: e.Application,
		Class:   classOfRequest(e.Decision == "allow", e.status, u),
		Latency: time.Duration(e.Latency.EnforcerMS * float64(time.Millisecond))}
	if u != nil && u.HasTiming {
		out.Latency = u.Total
	}
	return out
}

// usageOfDecision is the usage of a decision that is final as it is
// taken and makes no event: no access log is waited for. Its ids are
// the config's (the usage recorder copies what it keeps), so nothing is
// built per request.
func usageOfDecision(d Decision, at time.Time) Usage {
	return Usage{At: at, API: d.API, Application: d.Application, Class: classOfRequest(d.Allowed, d.Status, nil), Latency: d.Elapsed}
}

// classOfRequest is how a request ended: a denial by its HTTP status
// (a 429 is the rate limiter's: throttled), an allow by the upstream's
// status when its access-log entry was joined.
func classOfRequest(allowed bool, denyStatus int, u *Upstream) string {
	switch {
	case !allowed && denyStatus == http.StatusTooManyRequests:
		return ClassThrottled
	case !allowed:
		return classOf(denyStatus, Class4xx)
	case u != nil:
		// No status (0) is a request the upstream never answered: a reset
		// or a timeout.
		return classOf(u.Status, Class5xx)
	}
	// No access-log entry: what is known is that Tollgate let it in.
	return Class2xx
}

// classOf is the class of an HTTP status, or otherwise for one outside
// 100–599. Informational answers (101 to a WebSocket upgrade) are
// successes.
func classOf(status int, otherwise string) string {
	switch status / 100 {
	case 1, 2:
		return Class2xx
	case 3:
		return Class3xx
	case 4:
		return Class4xx
	case 5:
		return Class5xx
	}
	return otherwise
}
