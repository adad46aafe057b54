package policy

import "time"

// Interceptors are an operation's interceptor services (Choreo Connect's
// contract), called by the ext_proc front end.
type Interceptors struct {
	Request  *Interceptor // nil: none in the request flow
	Response *Interceptor // nil: none in the response flow
	Timeout  time.Duration
	// FailOpen lets a message go on unchanged when its interceptor
	// fails; otherwise the request is refused (503) or the response
	// replaced (502).
	FailOpen     bool
	MaxBodyBytes int
}

// Interceptor is one service and what it is sent.
type Interceptor struct {
	URL string // scheme and host; the contract's path is appended
	// What the call carries (InterceptorService.includes).
	Headers, Body, Trailers, InvocationContext bool
}

// Defaults and bounds of the interceptor settings.
const (
	DefaultInterceptorTimeout = time.Second
	DefaultMaxBodyBytes       = 1 << 20
	MaxMaxBodyBytes           = 8 << 20
)
