package analytics

import (
	"strings"
	"testing"
	"unsafe"
)

// TestTraceHeadersAreCopies: spans outlive the check, and tracestate's
// members are kept as substrings of what the carrier returns.
func TestTraceHeadersAreCopies(t *testing.T) {
	tracestate := "vendor=" + strings.Repeat("t", 200)
	headers := map[string]string{
		"tracestate":  tracestate + strings.Repeat("p", 1<<20),
		"traceparent": strings.Repeat("0", maxPropagationHeader+1),
	}
	// The request's values are substrings of the request, as the gRPC
	// front end's are.
	raw := headers["tracestate"]
	headers["tracestate"] = raw[:len(tracestate)]
	start := uintptr(unsafe.Pointer(unsafe.StringData(raw)))
	inRequest := func(s string) bool {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		return len(s) > 0 && p >= start && p < start+uintptr(len(raw))
	}
	carrier := headerCarrier{func(name string) string { return headers[name] }}
	if got := carrier.Get("Tracestate"); got != tracestate || inRequest(got) {
		t.Errorf("tracestate %.20q… points into the request: %v", got, inRequest(got))
	}
	if got := carrier.Get("traceparent"); got != "" {
		t.Errorf("an oversized traceparent was read (%d bytes)", len(got))
	}
}
