package extproc_test

import (
	"context"
	"io"
	"testing"
)

// BenchmarkRoundTrip is one ext_proc stream over loopback gRPC: the
// request headers sent, the answer received, the stream closed. "pass" is
// an operation with nothing to do; "interceptor" calls a request
// interceptor (headers and invocation context, over loopback HTTP, adding
// one header), as Envoy would for every request of such an operation.
func BenchmarkRoundTrip(b *testing.B) {
	ic := newInterceptor(b, func(string, map[string]any) (int, string) {
		return 200, `{"headersToAdd": {"x-intercepted": "1"}}`
	})
	f := start(b, configFor(ic.URL))
	for _, bc := range []struct{ name, path string }{{"pass", "/shop/plain"}, {"interceptor", "/shop/headers"}} {
		b.Run(bc.name, func(b *testing.B) {
			req := requestHeaders("GET", bc.path, true, "user-agent", "bench", "accept", "application/json")
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				s, err := f.client.Process(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Send(req); err != nil {
					b.Fatal(err)
				}
				resp, err := s.Recv()
				if err != nil {
					b.Fatal(err)
				}
				if resp.GetRequestHeaders() == nil {
					b.Fatalf("answer %v", resp)
				}
				s.CloseSend()
				if _, err := s.Recv(); err != io.EOF {
					b.Fatalf("stream end: %v", err)
				}
			}
		})
	}
}
