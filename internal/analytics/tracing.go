package analytics

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
)

// Tracing sends a span per check to an OTLP/gRPC collector. The span is a
// child of the trace the request carries in traceparent (W3C) or B3
// headers, so it shows up inside the caller's trace.
type Tracing struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
}

// NewTracing exports to endpoint (http://host:4317 for plaintext,
// https://host:4317 for TLS), sampling new traces at ratio and following
// the caller's decision for traces that arrive sampled or not.
func NewTracing(ctx context.Context, endpoint string, ratio float64, version string) (*Tracing, error) {
	exporter, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(endpoint))
	if err != nil {
		return nil, fmt.Errorf("OTLP exporter: %w", err)
	}
	res := resource.NewSchemaless(semconv.ServiceName("tollgate"), semconv.ServiceVersion(version))
	provider := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exporter, sdktrace.WithBatchTimeout(time.Second)),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		sdktrace.WithResource(res),
	)
	return &Tracing{
		provider: provider,
		tracer:   provider.Tracer("github.com/tollgate/tollgate"),
		prop:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, b3.New()),
	}, nil
}

// StartCheck starts the span of one check, continuing the trace its
// request's headers carry (header reads one request header by its
// lower-case name). The returned function ends it with the decision.
func (t *Tracing) StartCheck(ctx context.Context, frontend, method string, header func(name string) string) (context.Context, func(Decision)) {
	ctx = t.prop.Extract(ctx, headerCarrier{header})
	ctx, span := t.tracer.Start(ctx, "tollgate.check", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attribute.String("tollgate.frontend", frontend),
			attribute.String("http.request.method", clip(method, maxMethodLen)),
		))
	return ctx, func(d Decision) {
		decision := "allow"
		if !d.Allowed {
			decision = "deny"
		}
		span.SetAttributes(
			attribute.String("tollgate.api", d.API),
			attribute.String("tollgate.operation", d.Operation),
			attribute.String("tollgate.decision", decision),
			attribute.String("tollgate.code", cmp.Or(d.Code, AllowCode)),
		)
		if d.Allowed {
			span.SetStatus(codes.Ok, "")
		}
		span.End()
	}
}

// Shutdown flushes spans still buffered.
func (t *Tracing) Shutdown(ctx context.Context) error { return t.provider.Shutdown(ctx) }

// maxPropagationHeader bounds the trace headers read. A span outlives the
// check (it waits in the exporter's queue) and keeps parts of tracestate,
// so values are copies, and one longer than any sane value is ignored.
const maxPropagationHeader = 8 << 10

// headerCarrier reads propagation headers from a request.
type headerCarrier struct{ get func(string) string }

func (c headerCarrier) Get(key string) string {
	v := c.get(strings.ToLower(key))
	if len(v) > maxPropagationHeader {
		return ""
	}
	return strings.Clone(v)
}
func (c headerCarrier) Set(string, string) {}
func (c headerCarrier) Keys() []string     { return nil }
