package validation

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// UnaryServerInterceptor checks each request with Check before the handler sees it.
func (v *Validator) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := v.CheckRequest(ctx, req); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor checks each message the handler receives with Check: a server
// stream's one request before the handler sees it, each message of a client stream as it
// arrives.
func (v *Validator) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &checkedStream{ServerStream: ss, v: v})
	}
}

// CheckRequest is Check for a request as an interceptor receives it: one that is not a
// protobuf message is refused (Internal) rather than let through unchecked, since every
// bank method takes one and another is a wiring bug.
func (v *Validator) CheckRequest(ctx context.Context, req any) error {
	msg, ok := req.(proto.Message)
	if !ok {
		return status.Error(codes.Internal, "internal error")
	}
	return v.Check(ctx, msg)
}

// checkedStream is a ServerStream whose received messages are checked.
type checkedStream struct {
	grpc.ServerStream
	v *Validator
}

func (s *checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.v.CheckRequest(s.Context(), m)
}
