package grpcserver_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"mtlsbank/internal/grpcserver"
)

// TestCallLog drives calls that end in each way through a real mTLS connection and checks
// the call log: nothing for a call that ended OK (its audit record says who called what),
// one record with the detail for every other outcome, at the level go-grpc-middleware's
// logging gave that code.
func TestCallLog(t *testing.T) {
	h := start(t, "bufconn", grpcserver.WithDefaultDeadline(100*time.Millisecond))
	alice := h.connect(t, h.pki.Client(t, "spiffe://bank.local/customer/alice"))
	intern := h.connect(t, h.pki.Client(t, "spiffe://bank.local/intern/ivan"))

	tests := []struct {
		name       string
		call       func(ctx context.Context) error
		code       codes.Code
		level      string // "" for no record
		methodType string
		peer       string
		errText    string // in grpc.error
		deadline   bool   // the record names the call's deadline
	}{
		{name: "OK unary", code: codes.OK,
			call: func(ctx context.Context) error { _, err := echo(ctx, alice, "hi"); return err }},
		{name: "OK stream", code: codes.OK,
			call: func(ctx context.Context) error { return readStream(ctx, alice, "/test.v1.TestService/Stream") }},
		{name: "invalid argument", code: codes.InvalidArgument, level: "INFO", methodType: "unary", peer: "spiffe://bank.local/customer/alice", errText: "value is required",
			call: func(ctx context.Context) error { _, err := echo(ctx, alice, ""); return err }},
		{name: "denied", code: codes.PermissionDenied, level: "WARN", methodType: "unary", peer: "spiffe://bank.local/intern/ivan", errText: "permission denied",
			call: func(ctx context.Context) error { _, err := echo(ctx, intern, "hi"); return err }},
		{name: "handler panic", code: codes.Internal, level: "ERROR", methodType: "unary", peer: "spiffe://bank.local/customer/alice", errText: "internal error",
			call: func(ctx context.Context) error { _, err := echo(ctx, alice, "panic"); return err }},
		{name: "with a client deadline", code: codes.InvalidArgument, level: "INFO", methodType: "unary", peer: "spiffe://bank.local/customer/alice", errText: "value is required", deadline: true,
			call: func(ctx context.Context) error {
				ctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				_, err := echo(ctx, alice, "")
				return err
			}},
		{name: "server's default deadline", code: codes.DeadlineExceeded, level: "WARN", methodType: "unary", peer: "spiffe://bank.local/customer/alice", errText: "deadline exceeded",
			call: func(ctx context.Context) error {
				return alice.Invoke(ctx, "/test.v1.TestService/Block", wrapperspb.String("x"), new(wrapperspb.StringValue))
			}},
		{name: "stream denied", code: codes.PermissionDenied, level: "WARN", methodType: "server_stream", peer: "spiffe://bank.local/intern/ivan", errText: "permission denied",
			call: func(ctx context.Context) error { return readStream(ctx, intern, "/test.v1.TestService/Stream") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(h.logs.find(map[string]any{"msg": "finished call"}))
			if err := tt.call(context.Background()); status.Code(err) != tt.code {
				t.Fatalf("call: %v, want %s", err, tt.code)
			}
			var records []map[string]any
			if tt.level != "" {
				// The server logs after it answered: wait for the record.
				waitFor(t, func() bool { return len(h.logs.find(map[string]any{"msg": "finished call"})) > before })
			}
			records = h.logs.find(map[string]any{"msg": "finished call"})[before:]
			if tt.level == "" {
				if len(records) != 0 {
					t.Fatalf("a call that ended OK wrote %d call records: %v", len(records), records)
				}
				return
			}
			if len(records) != 1 {
				t.Fatalf("%d call records, want 1: %v", len(records), records)
			}
			r := records[0]
			want := map[string]any{
				"level": tt.level, "grpc.code": tt.code.String(), "grpc.service": "test.v1.TestService",
				"grpc.method_type": tt.methodType, "peer.spiffe_id": tt.peer, "protocol": "grpc", "grpc.component": "server",
			}
			for k, v := range want {
				if r[k] != v {
					t.Errorf("%s = %v, want %v (record %v)", k, r[k], v, r)
				}
			}
			if e, _ := r["grpc.error"].(string); !strings.Contains(e, tt.errText) {
				t.Errorf("grpc.error = %q, want it to contain %q", e, tt.errText)
			}
			if ms, err := strconv.ParseFloat(r["grpc.time_ms"].(string), 64); err != nil || ms < 0 {
				t.Errorf("grpc.time_ms = %v, want a duration in ms", r["grpc.time_ms"])
			}
			if a, _ := r["peer.address"].(string); a == "" {
				t.Errorf("no peer.address in %v", r)
			}
			if _, ok := r["grpc.request.deadline"]; ok != tt.deadline {
				t.Errorf("grpc.request.deadline present %v, want %v", ok, tt.deadline)
			}
		})
	}
	// The panic kept its own record, with the stack.
	if p := h.logs.find(map[string]any{"msg": "panic in gRPC call"}); len(p) == 0 || !strings.Contains(fmt.Sprint(p[0]["stack"]), "goroutine") {
		t.Errorf("panic records %v, want one with the stack", p)
	}
}

// readStream opens a server stream, sends one request and reads until the stream ends.
func readStream(ctx context.Context, cc *grpc.ClientConn, method string) error {
	s, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, method)
	if err != nil {
		return err
	}
	if err := s.SendMsg(wrapperspb.String("x")); err != nil {
		return err
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	for {
		if err := s.RecvMsg(new(wrapperspb.StringValue)); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}
