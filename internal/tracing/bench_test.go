package tracing_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"

	"mtlsbank/internal/tracesink"
	"mtlsbank/internal/tracing"
)

// BenchmarkServerHandler is what the server's stats handler adds to one unary call: the
// events grpc-go hands it for a call (tag, begin, headers, payloads, trailer, end), for a
// caller that sends a traceparent and one that does not. untraced is the baseline of no
// handler at all (OTEL_SDK_DISABLED); off is the default (no endpoint), and otelgrpc-noop
// what off would cost with otelgrpc and a no-op tracer; exporting records every call and
// exports it to an in-process OTLP receiver, exporting-1% samples one trace in a hundred
// (OTEL_TRACES_SAMPLER=traceidratio, OTEL_TRACES_SAMPLER_ARG=0.01). The events themselves (allocated here as
// grpc-go allocates them once a call has a stats handler) are part of the cost.
func BenchmarkServerHandler(b *testing.B) {
	sink := startSink(b, tracesink.WithMaxSpans(0)) // counts, keeps nothing
	configs := []struct {
		name string
		cfg  tracing.Config
	}{
		{"untraced", tracing.Config{Disabled: true}},
		{"off", tracing.Config{}},
		{"otelgrpc-noop", tracing.Config{}},
		{"exporting", tracing.Config{Endpoint: sink.Endpoint()}},
		{"exporting-1%", tracing.Config{Endpoint: sink.Endpoint(), Sampler: "traceidratio", SamplerArg: "0.01"}},
	}
	callers := []struct {
		name string
		md   metadata.MD
	}{
		{"no traceparent", metadata.Pairs("content-type", "application/grpc")},
		{"traceparent", metadata.Pairs("content-type", "application/grpc", "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")},
	}
	const method = "/bank.identity.v1.IdentityService/WhoAmI"
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50051}
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	for _, c := range configs {
		for _, caller := range callers {
			b.Run(c.name+"/"+caller.name, func(b *testing.B) {
				h := newTracing(b, "bench", c.cfg).ServerHandler()
				if c.name == "otelgrpc-noop" {
					// What off would cost with otelgrpc and a no-op tracer instead of contextHandler.
					h = otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(tracenoop.NewTracerProvider()),
						otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
						otelgrpc.WithPropagators(propagation.TraceContext{}))
				}
				base := metadata.NewIncomingContext(context.Background(), caller.md)
				b.ReportAllocs()
				for b.Loop() {
					if h == nil {
						continue
					}
					now := time.Now()
					ctx := h.TagRPC(base, &stats.RPCTagInfo{FullMethodName: method})
					h.HandleRPC(ctx, &stats.Begin{BeginTime: now})
					h.HandleRPC(ctx, &stats.InHeader{FullMethod: method, Header: caller.md, LocalAddr: local, RemoteAddr: remote})
					h.HandleRPC(ctx, &stats.InPayload{Length: 2, RecvTime: now})
					h.HandleRPC(ctx, &stats.OutHeader{})
					h.HandleRPC(ctx, &stats.OutPayload{Length: 120, SentTime: now})
					h.HandleRPC(ctx, &stats.OutTrailer{})
					h.HandleRPC(ctx, &stats.End{BeginTime: now, EndTime: now})
				}
			})
		}
	}
}

// BenchmarkLogHandler is what NewLogHandler adds to a record like the audit record: none
// without a span, two attributes with one.
func BenchmarkLogHandler(b *testing.B) {
	attrs := []slog.Attr{slog.Bool("audit", true), slog.String("decision", "allow"), slog.String("code", "OK"),
		slog.String("method", "/bank.accounts.v1.AccountsService/GetAccount"), slog.String("spiffe_id", clientID)}
	var spanCtx context.Context
	b.Run("plain", func(b *testing.B) {
		logger := slog.New(slog.NewTextHandler(io.Discard, nil))
		b.ReportAllocs()
		for b.Loop() {
			logger.LogAttrs(context.Background(), slog.LevelInfo, "authz decision", attrs...)
		}
	})
	// A context with a real span, from a call through a traced server.
	bd := newBed(b)
	addr := bd.serve(b, newTracing(b, "server", tracing.Config{}), func(ctx context.Context) error {
		spanCtx = context.WithoutCancel(ctx)
		return nil
	})
	sink := startSink(b)
	if _, err := bd.client(b, newTracing(b, "client", tracing.Config{Endpoint: sink.Endpoint()}), addr).EmptyCall(context.Background(), &emptyRequest); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		ctx  context.Context
	}{{"wrapped, no span", context.Background()}, {"wrapped, span", spanCtx}} {
		b.Run(c.name, func(b *testing.B) {
			logger := slog.New(tracing.NewLogHandler(slog.NewTextHandler(io.Discard, nil)))
			b.ReportAllocs()
			for b.Loop() {
				logger.LogAttrs(c.ctx, slog.LevelInfo, "authz decision", attrs...)
			}
		})
	}
}
