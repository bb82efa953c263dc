package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// records is a slog.Handler keeping level, message and attributes of every record.
type records struct {
	mu    sync.Mutex
	level slog.Level
	got   []map[string]any
}

func (r *records) Enabled(_ context.Context, l slog.Level) bool { return l >= r.level }
func (r *records) WithAttrs([]slog.Attr) slog.Handler           { return r }
func (r *records) WithGroup(string) slog.Handler                { return r }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	m := map[string]any{"msg": rec.Message, "level": rec.Level}
	rec.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.Any(); return true })
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, m)
	return nil
}

// loggedUnary is the call log stage as an interceptor.
func loggedUnary(l callLog) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		l.unaryDone(ctx, info.FullMethod, start, err)
		return resp, err
	}
}

// TestCallLogLevels: every code gets the level go-grpc-middleware's logging gave it
// (OK writes nothing), the error's own text, and a context error its status code.
func TestCallLogLevels(t *testing.T) {
	want := map[codes.Code]slog.Level{
		codes.Canceled: slog.LevelInfo, codes.Unknown: slog.LevelError, codes.InvalidArgument: slog.LevelInfo,
		codes.DeadlineExceeded: slog.LevelWarn, codes.NotFound: slog.LevelInfo, codes.AlreadyExists: slog.LevelInfo,
		codes.PermissionDenied: slog.LevelWarn, codes.ResourceExhausted: slog.LevelWarn, codes.FailedPrecondition: slog.LevelWarn,
		codes.Aborted: slog.LevelWarn, codes.OutOfRange: slog.LevelWarn, codes.Unimplemented: slog.LevelError,
		codes.Internal: slog.LevelError, codes.Unavailable: slog.LevelWarn, codes.DataLoss: slog.LevelError,
		codes.Unauthenticated: slog.LevelInfo,
	}
	info := &grpc.UnaryServerInfo{FullMethod: "/bank.accounts.v1.AccountsService/GetAccount"}
	for code := codes.OK; code <= codes.Unauthenticated; code++ {
		t.Run(code.String(), func(t *testing.T) {
			rec := &records{level: slog.LevelDebug}
			var err error
			if code != codes.OK {
				err = status.Error(code, "detail for "+code.String())
			}
			_, got := loggedUnary(callLog{logger: slog.New(rec)})(context.Background(), nil, info,
				func(context.Context, any) (any, error) { return "resp", err })
			if got != err {
				t.Fatalf("interceptor returned %v, want the handler's %v", got, err)
			}
			if code == codes.OK {
				if len(rec.got) != 0 {
					t.Fatalf("OK call logged %v", rec.got)
				}
				return
			}
			if len(rec.got) != 1 {
				t.Fatalf("%d records, want 1", len(rec.got))
			}
			r := rec.got[0]
			if r["level"] != want[code] || r["grpc.code"] != code.String() || r["grpc.error"] != err.Error() ||
				r["grpc.service"] != "bank.accounts.v1.AccountsService" || r["grpc.method"] != "GetAccount" || r["msg"] != callLogMessage {
				t.Errorf("record %v, want level %s, code %s and the error's text", r, want[code], code)
			}
		})
	}
	for _, c := range []struct {
		err  error
		code codes.Code
	}{
		{context.Canceled, codes.Canceled},
		{fmt.Errorf("read: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{errors.New("disk on fire"), codes.Unknown},
	} {
		rec := &records{level: slog.LevelDebug}
		_, _ = loggedUnary(callLog{logger: slog.New(rec)})(context.Background(), nil, info,
			func(context.Context, any) (any, error) { return nil, c.err })
		if len(rec.got) != 1 || rec.got[0]["grpc.code"] != c.code.String() || rec.got[0]["grpc.error"] != c.err.Error() {
			t.Errorf("%v: records %v, want one with code %s and the full error", c.err, rec.got, c.code)
		}
	}
}

// TestCallLogStreams: a stream ending with io.EOF ended cleanly; other errors are logged
// with the stream's kind.
func TestCallLogStreams(t *testing.T) {
	tests := []struct {
		name     string
		info     *grpc.StreamServerInfo
		err      error
		wantType string // "" for no record
	}{
		{"OK", &grpc.StreamServerInfo{IsServerStream: true}, nil, ""},
		{"EOF", &grpc.StreamServerInfo{IsClientStream: true}, io.EOF, ""},
		{"server stream fails", &grpc.StreamServerInfo{IsServerStream: true}, status.Error(codes.Unavailable, "closing"), "server_stream"},
		{"client stream fails", &grpc.StreamServerInfo{IsClientStream: true}, status.Error(codes.Aborted, "x"), "client_stream"},
		{"bidi stream fails", &grpc.StreamServerInfo{IsClientStream: true, IsServerStream: true}, context.Canceled, "bidi_stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &records{level: slog.LevelDebug}
			tt.info.FullMethod = "/bank.accounts.v1.AccountsService/WatchLedger"
			got := callLog{logger: slog.New(rec)}.stream()(nil, &fakeStream{ctx: context.Background()}, tt.info,
				func(any, grpc.ServerStream) error { return tt.err })
			if got != tt.err {
				t.Fatalf("interceptor returned %v, want %v", got, tt.err)
			}
			switch {
			case tt.wantType == "" && len(rec.got) != 0:
				t.Errorf("logged %v, want nothing", rec.got)
			case tt.wantType != "" && (len(rec.got) != 1 || rec.got[0]["grpc.method_type"] != tt.wantType):
				t.Errorf("records %v, want one of method_type %s", rec.got, tt.wantType)
			}
		})
	}
}

// TestCallLogDisabledLevel: a record below the logger's level is not built.
func TestCallLogDisabledLevel(t *testing.T) {
	rec := &records{level: slog.LevelWarn}
	in := loggedUnary(callLog{logger: slog.New(rec)})
	info := &grpc.UnaryServerInfo{FullMethod: "/a.B/C"}
	_, _ = in(context.Background(), nil, info, func(context.Context, any) (any, error) {
		return nil, status.Error(codes.NotFound, "info level")
	})
	_, _ = in(context.Background(), nil, info, func(context.Context, any) (any, error) {
		return nil, status.Error(codes.Internal, "error level")
	})
	if len(rec.got) != 1 || rec.got[0]["grpc.code"] != "Internal" {
		t.Errorf("records %v, want only the Internal one", rec.got)
	}
	allocs := testing.AllocsPerRun(100, func() {
		_, _ = in(context.Background(), nil, info, func(context.Context, any) (any, error) { return nil, nil })
	})
	if allocs != 0 {
		t.Errorf("an OK call allocates %v times in the call log, want 0", allocs)
	}
}

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *fakeStream) Context() context.Context { return s.ctx }
