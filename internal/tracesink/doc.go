// Package tracesink is a minimal trace collector: an OTLP/gRPC receiver on loopback that
// keeps the spans it is sent in memory, for the tests that follow one call across
// processes and for the bench's line with tracing exporting.
package tracesink
