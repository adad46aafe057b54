package analytics

import (
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// TestTraceHeadersAreCopies: spans outlive the check, and tracestate's
// members are kept as substrings of what the carrier returns.
func TestTraceHeadersAreCopies(t *testing.T) {
	tracestate := "vendor=" + strings.Repeat("t", 200)
	req, inRequest := wireRequest(t, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Headers: map[string]string{
				"tracestate":  tracestate,
				"traceparent": strings.Repeat("0", maxPropagationHeader+1),
				"x-padding":   strings.Repeat("p", 1<<20),
			},
		}},
	}})
	carrier := headerCarrier{req.Headers}
	if got := carrier.Get("Tracestate"); got != tracestate || inRequest(got) {
		t.Errorf("tracestate %.20q… points into the request: %v", got, inRequest(got))
	}
	if got := carrier.Get("traceparent"); got != "" {
		t.Errorf("an oversized traceparent was read (%d bytes)", len(got))
	}
}
