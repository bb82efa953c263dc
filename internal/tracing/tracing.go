package tracing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
)

// DefaultShutdownTimeout bounds the flush of the spans still queued when a process stops.
const DefaultShutdownTimeout = 5 * time.Second

// Tracing is a process's tracer provider and the gRPC stats handlers that use it. A nil
// *Tracing traces nothing.
type Tracing struct {
	sdk    *sdktrace.TracerProvider // nil unless exporting
	server stats.Handler            // nil when disabled
	client stats.Handler
}

// New returns the tracing of the process named name (service.name unless cfg.ServiceName
// or OTEL_SERVICE_NAME says otherwise), as cfg says:
//
//   - disabled: no stats handler, ServerOption and DialOption are no-ops;
//   - no endpoint (the default): the stats handlers only carry the W3C trace context (an
//     incoming traceparent is in the call's context, so in its log records and
//     in the calls it makes), as otelgrpc with a no-op tracer would, at a fraction of the
//     cost (contextHandler); nothing is recorded;
//   - an endpoint: otelgrpc's stats handlers make every call a span of the OpenTelemetry
//     SDK (sampled by cfg's sampler), batched and exported over OTLP/gRPC in the background.
//
// Exporting never blocks or fails a call: spans go to the batch span processor's bounded
// queue (OTEL_BSP_MAX_QUEUE_SIZE, 2048 by default), which drops spans rather than wait when
// the collector is slow or away, and export errors go to the OpenTelemetry error handler
// (see LogErrorsTo). The exporter connects lazily: New does not wait for the collector.
// Health checks are not traced. Shutdown flushes.
func New(ctx context.Context, name string, cfg Config) (*Tracing, error) {
	if cfg.Disabled {
		return &Tracing{}, nil
	}
	if !cfg.Exporting() {
		prop := newPropagator()
		return &Tracing{server: contextHandler{prop: prop}, client: contextHandler{client: true, prop: prop}}, nil
	}
	sampler, err := cfg.sampler()
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	if err := checkEndpoint(cfg.Endpoint); err != nil {
		return nil, fmt.Errorf("tracing: endpoint %q: %w", cfg.Endpoint, err)
	}
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(cfg.Endpoint))
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res, err := newResource(ctx, name, cfg.ServiceName)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("tracing: resource: %w", err), exp.Shutdown(ctx))
	}
	t := &Tracing{sdk: sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(sampler),
		sdktrace.WithResource(res),
	)}
	opts := []otelgrpc.Option{
		otelgrpc.WithTracerProvider(t.sdk),
		otelgrpc.WithPropagators(newPropagator()),
		// The services' metrics are Prometheus's (package telemetry): none from here.
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
		// Load balancers and readiness probes call health often; their spans say nothing.
		otelgrpc.WithFilter(filters.Not(filters.HealthCheck())),
	}
	t.server = otelgrpc.NewServerHandler(opts...)
	t.client = otelgrpc.NewClientHandler(opts...)
	return t, nil
}

// newResource describes the process: service.name (name, then OTEL_SERVICE_NAME or
// OTEL_RESOURCE_ATTRIBUTES, then serviceName, the later winning), the SDK and the host.
func newResource(ctx context.Context, name, serviceName string) (*resource.Resource, error) {
	opts := []resource.Option{
		resource.WithAttributes(attribute.String("service.name", name)),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithProcessPID(),
		resource.WithFromEnv(),
	}
	if serviceName != "" {
		opts = append(opts, resource.WithAttributes(attribute.String("service.name", serviceName)))
	}
	return resource.New(ctx, opts...)
}

// Exporting reports whether spans are recorded and exported.
func (t *Tracing) Exporting() bool { return t != nil && t.sdk != nil }

// ServerHandler returns the server's stats handler, nil when tracing is disabled.
func (t *Tracing) ServerHandler() stats.Handler {
	if t == nil {
		return nil
	}
	return t.server
}

// CallContext returns what puts the trace context of an incoming call into its context when
// spans are neither recorded nor exported (no endpoint, the default), for a server to run
// first on every call (grpcserver.WithCallContext) instead of installing ServerOption. It does
// what the stats handler of ServerOption does then, but as the first interceptor: with a
// stats handler installed, grpc-go builds its stats events for every call (measured: 18
// allocations and 1.2 KB per call, more than the whole interceptor chain), for a handler
// that reads only the incoming metadata. Nil when exporting (the stats handler records the
// span and carries the context) or when tracing is disabled (nothing is carried).
func (t *Tracing) CallContext() func(context.Context) context.Context {
	if t == nil || t.Exporting() {
		return nil
	}
	h, ok := t.server.(contextHandler)
	if !ok {
		return nil
	}
	return func(ctx context.Context) context.Context { return h.TagRPC(ctx, nil) }
}

// ServerOption installs the server's stats handler; a no-op when tracing is disabled.
// Stats handlers see a call before any interceptor, so the whole chain (and its log and
// audit records) runs inside the call's span.
func (t *Tracing) ServerOption() grpc.ServerOption {
	if t == nil || t.server == nil {
		return grpc.EmptyServerOption{}
	}
	return grpc.StatsHandler(t.server)
}

// DialOption installs the client's stats handler on a connection: each call (each attempt,
// when grpc-go retries) is a client span, child of the span in the call's context, and
// sends the trace context in its traceparent header. A no-op when tracing is disabled.
func (t *Tracing) DialOption() grpc.DialOption {
	if t == nil || t.client == nil {
		return grpc.EmptyDialOption{}
	}
	return grpc.WithStatsHandler(t.client)
}

// Shutdown ends the span pipeline, exporting what is still queued until ctx ends. Call it
// once the servers and clients using t have stopped.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil || t.sdk == nil {
		return nil
	}
	if err := t.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: flush spans: %w", err)
	}
	return nil
}
