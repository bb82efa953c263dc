// Package tracing is the bank's OpenTelemetry tracing: a tracer provider configured by the
// standard OTEL_* environment variables, the otelgrpc stats handlers that put every gRPC
// call of a server or client in a span and carry the W3C trace context across processes,
// and the trace and span ids of a call for its log and audit records.
//
// It is a package of its own, not part of telemetry (metrics and probes), so that a client
// (bankctl) and the audit sink can use it without the server's metrics.
package tracing
