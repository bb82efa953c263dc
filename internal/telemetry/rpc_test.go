package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The tests of go-grpc-middleware's providers/prometheus server metrics
// (server_test.go), run against rpcMetrics, plus checks that both produce the same
// series for the same calls.

const (
	testService = "test.v1.TestService"
	unaryMethod = "/" + testService + "/Ping"
	listMethod  = "/" + testService + "/PingList"
	bidiMethod  = "/" + testService + "/PingStream"
)

var (
	listInfo = &grpc.StreamServerInfo{FullMethod: listMethod, IsServerStream: true}
	bidiInfo = &grpc.StreamServerInfo{FullMethod: bidiMethod, IsClientStream: true, IsServerStream: true}
)

// services is a reflection.ServiceInfoProvider with the test service's three methods.
type services map[string]grpc.ServiceInfo

func (s services) GetServiceInfo() map[string]grpc.ServiceInfo { return s }

var testServices = services{testService: {Methods: []grpc.MethodInfo{
	{Name: "Ping"},
	{Name: "PingList", IsServerStream: true},
	{Name: "PingStream", IsClientStream: true, IsServerStream: true},
}}}

// counter returns the value of a counter series, or -1 if it does not exist.
func counter(tb testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	tb.Helper()
	m := find(tb, reg, name, labels...)
	if m == nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// histogramCount returns the sample count of a histogram series, or -1.
func histogramCount(tb testing.TB, reg *prometheus.Registry, name string, labels ...string) int {
	tb.Helper()
	m := find(tb, reg, name, labels...)
	if m == nil {
		return -1
	}
	return int(m.GetHistogram().GetSampleCount())
}

// find returns the series of name whose label values, in label name order of the
// grpc_* metrics (grpc_code, grpc_method, grpc_service, grpc_type sorted), are labels:
// given here as type, service, method[, code].
func find(tb testing.TB, reg *prometheus.Registry, name string, labels ...string) *dto.Metric {
	tb.Helper()
	want := map[string]string{"grpc_type": labels[0], "grpc_service": labels[1], "grpc_method": labels[2]}
	if len(labels) == 4 {
		want["grpc_code"] = labels[3]
	}
	fams, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(want) {
				continue
			}
			for _, l := range m.GetLabel() {
				if want[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			return m
		}
	}
	return nil
}

func newTestRPCMetrics(tb testing.TB) (*rpcMetrics, *prometheus.Registry) {
	tb.Helper()
	m := newRPCMetrics(prometheus.DefBuckets)
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.collectors()...)
	return m, reg
}

func unaryCall(m *rpcMetrics, method string, err error) error {
	_, got := m.unaryInterceptor()(context.Background(), "req", &grpc.UnaryServerInfo{FullMethod: method},
		func(context.Context, any) (any, error) { return "resp", err })
	return got
}

func TestRPCMetricsInitializePresets(t *testing.T) {
	m, reg := newTestRPCMetrics(t)
	m.initialize(testServices)
	for _, c := range []struct{ typ, method string }{{"unary", "Ping"}, {"server_stream", "PingList"}, {"bidi_stream", "PingStream"}} {
		for _, name := range []string{"grpc_server_started_total", "grpc_server_msg_received_total", "grpc_server_msg_sent_total"} {
			if v := counter(t, reg, name, c.typ, testService, c.method); v != 0 {
				t.Errorf("%s{%s %s} = %v, want a zero series", name, c.typ, c.method, v)
			}
		}
		if n := histogramCount(t, reg, "grpc_server_handling_seconds", c.typ, testService, c.method); n != 0 {
			t.Errorf("grpc_server_handling_seconds{%s} count = %d, want a zero series", c.method, n)
		}
		for code := codes.OK; code <= codes.Unauthenticated; code++ {
			if v := counter(t, reg, "grpc_server_handled_total", c.typ, testService, c.method, code.String()); v != 0 {
				t.Errorf("grpc_server_handled_total{%s %s} = %v, want a zero series", c.method, code, v)
			}
		}
	}
}

func TestRPCMetricsUnaryIncrementsMetrics(t *testing.T) {
	m, reg := newTestRPCMetrics(t)
	m.initialize(testServices)
	if err := unaryCall(m, unaryMethod, nil); err != nil {
		t.Fatal(err)
	}
	wantErr := status.Error(codes.FailedPrecondition, "no")
	if err := unaryCall(m, unaryMethod, wantErr); err != wantErr {
		t.Fatalf("the interceptor returned %v, want the handler's error", err)
	}
	u := []string{"unary", testService, "Ping"}
	checks := []struct {
		name string
		got  float64
		want float64
	}{
		{"started", counter(t, reg, "grpc_server_started_total", u...), 2},
		{"handled OK", counter(t, reg, "grpc_server_handled_total", append(u, "OK")...), 1},
		{"handled FailedPrecondition", counter(t, reg, "grpc_server_handled_total", append(u, "FailedPrecondition")...), 1},
		{"handling seconds observed", float64(histogramCount(t, reg, "grpc_server_handling_seconds", u...)), 2},
		{"sent: only the successful call's response", counter(t, reg, "grpc_server_msg_sent_total", u...), 1},
		{"received: both requests", counter(t, reg, "grpc_server_msg_received_total", u...), 2},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// scriptedStream answers RecvMsg and SendMsg with the next of its errors.
type scriptedStream struct {
	grpc.ServerStream
	ctx        context.Context
	recvErrors []error
	sendErrors []error
}

func (s *scriptedStream) Context() context.Context { return s.ctx }

func (s *scriptedStream) RecvMsg(any) error {
	err := s.recvErrors[0]
	s.recvErrors = s.recvErrors[1:]
	return err
}

func (s *scriptedStream) SendMsg(any) error {
	err := s.sendErrors[0]
	s.sendErrors = s.sendErrors[1:]
	return err
}

func TestRPCMetricsStreamingIncrementsMetrics(t *testing.T) {
	m, reg := newTestRPCMetrics(t)
	const responses = 5
	list := func(fail error) error {
		ss := &scriptedStream{ctx: context.Background(), recvErrors: []error{nil}, sendErrors: make([]error, responses)}
		return m.streamInterceptor()(nil, ss, listInfo, func(_ any, s grpc.ServerStream) error {
			if err := s.RecvMsg(new(struct{})); err != nil {
				return err
			}
			if fail != nil {
				return fail
			}
			for range responses {
				if err := s.SendMsg(struct{}{}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := list(nil); err != nil {
		t.Fatal(err)
	}
	l := []string{"server_stream", testService, "PingList"}
	if v := counter(t, reg, "grpc_server_started_total", l...); v != 1 {
		t.Errorf("started = %v, want 1", v)
	}
	if v := counter(t, reg, "grpc_server_handled_total", append(l, "OK")...); v != 1 {
		t.Errorf("handled OK = %v, want 1", v)
	}
	if v := counter(t, reg, "grpc_server_msg_sent_total", l...); v != responses {
		t.Errorf("sent = %v, want %d", v, responses)
	}
	if v := counter(t, reg, "grpc_server_msg_received_total", l...); v != 1 {
		t.Errorf("received = %v, want 1", v)
	}
	if err := list(status.Error(codes.FailedPrecondition, "no")); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("failing stream returned %v", err)
	}
	if v := counter(t, reg, "grpc_server_started_total", l...); v != 2 {
		t.Errorf("started = %v, want 2", v)
	}
	if v := counter(t, reg, "grpc_server_handled_total", append(l, "FailedPrecondition")...); v != 1 {
		t.Errorf("handled FailedPrecondition = %v, want 1", v)
	}
	if n := histogramCount(t, reg, "grpc_server_handling_seconds", l...); n != 2 {
		t.Errorf("handling seconds count = %d, want 2", n)
	}
}

// TestRPCMetricsStreamMessageCountersOnlyCountSuccessfulCalls is the library's test of
// the same name: a message counts only when its send or receive succeeded, io.EOF ends a
// stream cleanly, and a context error is its status code.
func TestRPCMetricsStreamMessageCountersOnlyCountSuccessfulCalls(t *testing.T) {
	invalidArgErr := status.Error(codes.InvalidArgument, "send failed")
	invalidArgRecvErr := status.Error(codes.InvalidArgument, "receive failed")
	tests := []struct {
		name         string
		recvErrors   []error
		sendErrors   []error
		operation    string
		callErr      error
		handledCode  codes.Code
		wantReceived float64
		wantSent     float64
	}{
		{name: "receive EOF", recvErrors: []error{nil, nil, io.EOF}, operation: "receive", handledCode: codes.OK, wantReceived: 2},
		{name: "receive invalid argument", recvErrors: []error{nil, nil, invalidArgRecvErr}, operation: "receive", callErr: invalidArgRecvErr, handledCode: codes.InvalidArgument, wantReceived: 2},
		{name: "receive canceled", recvErrors: []error{nil, nil, context.Canceled}, operation: "receive", callErr: context.Canceled, handledCode: codes.Canceled, wantReceived: 2},
		{name: "send invalid argument", sendErrors: []error{nil, nil, invalidArgErr}, operation: "send", callErr: invalidArgErr, handledCode: codes.InvalidArgument, wantSent: 2},
		{name: "send deadline exceeded", sendErrors: []error{nil, nil, context.DeadlineExceeded}, operation: "send", callErr: context.DeadlineExceeded, handledCode: codes.DeadlineExceeded, wantSent: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newTestRPCMetrics(t)
			ss := &scriptedStream{ctx: context.Background(), recvErrors: tt.recvErrors, sendErrors: tt.sendErrors}
			err := m.streamInterceptor()(nil, ss, bidiInfo, func(_ any, s grpc.ServerStream) error {
				for range 3 {
					var err error
					if tt.operation == "receive" {
						err = s.RecvMsg(new(struct{}))
					} else {
						err = s.SendMsg(struct{}{})
					}
					if errors.Is(err, io.EOF) {
						return nil
					}
					if err != nil {
						return err
					}
				}
				return nil
			})
			if err != tt.callErr {
				t.Fatalf("interceptor returned %v, want %v", err, tt.callErr)
			}
			b := []string{"bidi_stream", testService, "PingStream"}
			if v := counter(t, reg, "grpc_server_msg_received_total", b...); v != tt.wantReceived {
				t.Errorf("received = %v, want %v", v, tt.wantReceived)
			}
			if v := counter(t, reg, "grpc_server_msg_sent_total", b...); v != tt.wantSent {
				t.Errorf("sent = %v, want %v", v, tt.wantSent)
			}
			if v := counter(t, reg, "grpc_server_started_total", b...); v != 1 {
				t.Errorf("started = %v, want 1", v)
			}
			if v := counter(t, reg, "grpc_server_handled_total", append(b, tt.handledCode.String())...); v != 1 {
				t.Errorf("handled %s = %v, want 1", tt.handledCode, v)
			}
		})
	}
}

func TestRPCMetricsCodes(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, "OK"},
		{"status", status.Error(codes.PermissionDenied, "no"), "PermissionDenied"},
		{"wrapped status", fmt.Errorf("ctx: %w", status.Error(codes.Unavailable, "down")), "Unavailable"},
		{"context canceled", context.Canceled, "Canceled"},
		{"context deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), "DeadlineExceeded"},
		{"plain error", errors.New("boom"), "Unknown"},
		{"code outside the table", status.Error(codes.Code(42), "odd"), "Code(42)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newTestRPCMetrics(t)
			_ = unaryCall(m, unaryMethod, tt.err)
			if v := counter(t, reg, "grpc_server_handled_total", "unary", testService, "Ping", tt.want); v != 1 {
				t.Errorf("handled{grpc_code=%s} = %v, want 1", tt.want, v)
			}
		})
	}
}

// TestRPCMetricsLateMethod: a method registered after InitializeMethods (or a server
// never initialized) is resolved at its first call, and a malformed name is "unknown" as
// in the library.
func TestRPCMetricsLateMethod(t *testing.T) {
	m, reg := newTestRPCMetrics(t)
	if err := unaryCall(m, "/late.v1.Late/Call", nil); err != nil {
		t.Fatal(err)
	}
	if v := counter(t, reg, "grpc_server_handled_total", "unary", "late.v1.Late", "Call", "OK"); v != 1 {
		t.Errorf("late method handled = %v, want 1", v)
	}
	_ = unaryCall(m, "no-slash", nil)
	if v := counter(t, reg, "grpc_server_started_total", "unary", "unknown", "unknown"); v != 1 {
		t.Errorf("malformed method started = %v, want 1 under unknown/unknown", v)
	}
}

// TestRPCMetricsConcurrent counts calls from many goroutines, methods resolved while
// others are being counted (run with -race).
func TestRPCMetricsConcurrent(t *testing.T) {
	m, reg := newTestRPCMetrics(t)
	const workers, calls = 8, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range calls {
				_ = unaryCall(m, fmt.Sprintf("/test.v1.S%d/M", (w+i)%4), nil)
			}
		})
	}
	wg.Wait()
	total := 0.0
	for s := range 4 {
		total += counter(t, reg, "grpc_server_handled_total", "unary", fmt.Sprintf("test.v1.S%d", s), "M", "OK")
	}
	if total != workers*calls {
		t.Errorf("handled %v calls, want %d", total, workers*calls)
	}
}

// TestRPCMetricsMatchLibrary runs the same calls through rpcMetrics and through
// go-grpc-middleware's ServerMetrics, each on its own registry, and compares everything
// they expose: names, help, types, labels, values (histogram sums aside, which are
// durations).
func TestRPCMetricsMatchLibrary(t *testing.T) {
	ours, ourReg := newTestRPCMetrics(t)
	lib := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
	libReg := prometheus.NewRegistry()
	libReg.MustRegister(lib)
	ours.initialize(testServices)
	lib.InitializeMetrics(testServices)

	unaryIn := []grpc.UnaryServerInterceptor{ours.unaryInterceptor(), lib.UnaryServerInterceptor()}
	streamIn := []grpc.StreamServerInterceptor{ours.streamInterceptor(), lib.StreamServerInterceptor()}
	for i := range 2 {
		for _, err := range []error{nil, status.Error(codes.NotFound, "x"), context.Canceled, errors.New("boom")} {
			_, _ = unaryIn[i](context.Background(), "req", &grpc.UnaryServerInfo{FullMethod: unaryMethod},
				func(context.Context, any) (any, error) { return "resp", err })
		}
		ss := &scriptedStream{ctx: context.Background(), recvErrors: []error{nil, nil, io.EOF}, sendErrors: []error{nil, status.Error(codes.Unavailable, "gone")}}
		_ = streamIn[i](nil, ss, bidiInfo, func(_ any, s grpc.ServerStream) error {
			for s.RecvMsg(new(struct{})) == nil {
			}
			if err := s.SendMsg(1); err != nil {
				return err
			}
			return s.SendMsg(2)
		})
	}
	got, want := exposition(t, ourReg), exposition(t, libReg)
	if !slices.Equal(got, want) {
		t.Errorf("exposition differs from go-grpc-middleware's:\nours:\n%s\nlibrary:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// exposition returns every series of reg as "name{labels} type help value" lines, sorted.
func exposition(tb testing.TB, reg *prometheus.Registry) []string {
	tb.Helper()
	fams, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			value := fmt.Sprint(m.GetCounter().GetValue())
			if h := m.GetHistogram(); h != nil {
				value = fmt.Sprintf("count=%d buckets=%d", h.GetSampleCount(), len(h.GetBucket()))
			}
			out = append(out, fmt.Sprintf("%s{%s} %s %q %s", f.GetName(), strings.Join(labels, ","), f.GetType(), f.GetHelp(), value))
		}
	}
	slices.Sort(out)
	return out
}
