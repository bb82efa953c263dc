package service_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestTraceContextWithoutEndpoint: with tracing as deployed by default (no exporter
// endpoint) a caller's traceparent reaches every record of its call, the audit record of
// an allowed call and both records of a denied one, although the server installs no stats
// handler (the first interceptor carries it: tracing.CallContext). A call without one
// names no trace.
func TestTraceContextWithoutEndpoint(t *testing.T) {
	const (
		traceID  = "4bf92f3577b34da6a3ce929d0e0e4736"
		parentID = "00f067aa0ba902b7"
	)
	f := newFixture(t)
	r := f.start(t)
	traced := metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-"+traceID+"-"+parentID+"-01")
	ids := `"trace_id":"` + traceID + `","span_id":"` + parentID + `"`

	alice := r.dial(t, f.pki.Client(t, aliceID))
	if err := alice.Invoke(traced, echo, wrapperspb.String("hi"), new(wrapperspb.StringValue)); err != nil {
		t.Fatal(err)
	}
	intern := r.dial(t, f.pki.Client(t, internID))
	if err := intern.Invoke(traced, echo, wrapperspb.String("hi"), new(wrapperspb.StringValue)); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("intern: %v, want PermissionDenied", err)
	}
	if _, err := call(alice); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the records of the calls", func() bool {
		return r.logs.contains(`"msg":"finished call"`, `"grpc.code":"PermissionDenied"`)
	})
	for _, rec := range [][]string{
		{`"msg":"authz decision"`, `"decision":"allow"`, ids},
		{`"msg":"authz decision"`, `"decision":"deny"`, ids},
		{`"msg":"finished call"`, `"grpc.code":"PermissionDenied"`, ids},
	} {
		if !r.logs.contains(rec...) {
			t.Errorf("no record with %q", rec)
		}
	}
	if n := r.logs.count(`"msg":"authz decision"`); n != 3 {
		t.Errorf("%d audit records, want 3", n)
	}
	if n := r.logs.count(`"msg":"authz decision"`, `"trace_id"`); n != 2 {
		t.Errorf("%d audit records name a trace, want the 2 traced calls'", n)
	}
}
