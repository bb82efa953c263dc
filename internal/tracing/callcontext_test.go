package tracing_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	"mtlsbank/internal/tracing"
)

// TestCallContext: without an endpoint CallContext carries an incoming traceparent into
// the call's context (and nothing else: no span, no baggage), and leaves a call without
// one as it is; exporting or disabled, there is none (the stats handler, or nothing).
func TestCallContext(t *testing.T) {
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	off := newTracing(t, "off", tracing.Config{})
	cc := off.CallContext()
	if cc == nil {
		t.Fatal("no CallContext without an endpoint")
	}
	in := metadata.NewIncomingContext(context.Background(), metadata.Pairs(
		"traceparent", "00-"+traceID+"-"+parentID+"-01", "baggage", "user=mallory"))
	sc := trace.SpanContextFromContext(cc(in))
	if !sc.IsRemote() || sc.TraceID().String() != traceID || sc.SpanID().String() != parentID || !sc.IsSampled() {
		t.Errorf("span context %+v, want the caller's trace %s/%s", sc, traceID, parentID)
	}
	plain := metadata.NewIncomingContext(context.Background(), metadata.MD{})
	if got := cc(plain); got != plain {
		t.Error("a call without traceparent got a new context")
	}
	for _, tt := range []struct {
		name string
		cfg  tracing.Config
	}{
		{"disabled", tracing.Config{Disabled: true}},
		{"exporting", tracing.Config{Endpoint: "http://127.0.0.1:1"}},
	} {
		if newTracing(t, tt.name, tt.cfg).CallContext() != nil {
			t.Errorf("%s: CallContext is not nil", tt.name)
		}
	}
}
