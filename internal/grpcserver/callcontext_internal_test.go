package grpcserver

import (
	"context"
	"testing"

	"google.golang.org/grpc"
)

type callKey struct{}

// TestCallContext: the context WithCallContext's function returns is the one the rest of
// a stream sees; a function that changes nothing leaves the stream unwrapped. (A unary
// call's is the chain's first stage: TestChainStages, and internal/service
// TestTraceContextWithoutEndpoint through the services.)
func TestCallContext(t *testing.T) {
	mark := func(ctx context.Context) context.Context { return context.WithValue(ctx, callKey{}, "marked") }
	base := &fakeStream{ctx: context.Background()}
	_ = callContextStream(mark)(nil, base, &grpc.StreamServerInfo{}, func(_ any, ss grpc.ServerStream) error {
		if ss.Context().Value(callKey{}) != "marked" {
			t.Error("stream handler did not get the call context")
		}
		return nil
	})
	same := func(ctx context.Context) context.Context { return ctx }
	_ = callContextStream(same)(nil, base, &grpc.StreamServerInfo{}, func(_ any, ss grpc.ServerStream) error {
		if ss != grpc.ServerStream(base) {
			t.Error("an unchanged context wrapped the stream")
		}
		return nil
	})
}
