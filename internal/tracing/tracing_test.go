package tracing_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/tlsconfig"
	"mtlsbank/internal/tracesink"
	"mtlsbank/internal/tracing"
)

// waitFor bounds every wait on a condition.
const waitFor = 30 * time.Second

const (
	serverID = "spiffe://bank.local/service/accounts"
	clientID = "spiffe://bank.local/customer/alice"
)

// emptyRequest is the request of every EmptyCall.
var emptyRequest testgrpc.Empty

// testService answers EmptyCall with what handle returns.
type testService struct {
	testgrpc.UnimplementedTestServiceServer
	handle func(ctx context.Context) error
}

func (s *testService) EmptyCall(ctx context.Context, _ *testgrpc.Empty) (*testgrpc.Empty, error) {
	if err := s.handle(ctx); err != nil {
		return nil, err
	}
	return &testgrpc.Empty{}, nil
}

// bed is a PKI shared by the servers and clients of a test.
type bed struct{ p *pkitest.PKI }

func newBed(tb testing.TB) *bed { return &bed{p: pkitest.New(tb)} }

// serve runs a mutual-TLS server traced by tr whose EmptyCall runs handle; it returns the
// address.
func (b *bed) serve(tb testing.TB, tr *tracing.Tracing, handle func(ctx context.Context) error) string {
	tb.Helper()
	src, err := tlsconfig.NewSource(spiffeid.RequireTrustDomainFromString("bank.local"), b.p.Server(tb, serverID).TLSCertificate(), b.p.Bundle)
	if err != nil {
		tb.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(tlsconfig.ServerCredentials(src)), tr.ServerOption())
	testgrpc.RegisterTestServiceServer(srv, &testService{handle: handle})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	tb.Cleanup(func() {
		srv.Stop()
		if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			tb.Errorf("Serve: %v", err)
		}
	})
	return lis.Addr().String()
}

// client dials addr traced by tr.
func (b *bed) client(tb testing.TB, tr *tracing.Tracing, addr string) testgrpc.TestServiceClient {
	tb.Helper()
	src, err := tlsconfig.NewSource(spiffeid.RequireTrustDomainFromString("bank.local"), b.p.Client(tb, clientID).TLSCertificate(), b.p.Bundle)
	if err != nil {
		tb.Fatal(err)
	}
	creds := tlsconfig.ClientCredentials(src, "localhost", tlsconfig.WithServerID(spiffeid.RequireFromString(serverID)))
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds), tr.DialOption())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cc.Close() })
	return testgrpc.NewTestServiceClient(cc)
}

// newTracing returns the tracing of name with cfg, shut down (flushed) at cleanup.
func newTracing(tb testing.TB, name string, cfg tracing.Config) *tracing.Tracing {
	tb.Helper()
	tr, err := tracing.New(context.Background(), name, cfg)
	if err != nil {
		tb.Fatalf("tracing.New(%s): %v", name, err)
	}
	tb.Cleanup(func() { flush(tb, tr) })
	return tr
}

func flush(tb testing.TB, tr *tracing.Tracing) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		tb.Errorf("Shutdown: %v", err)
	}
}

// exportSoon makes the batch span processors of the test export every 10ms rather than
// every 5s. The test then waits for the spans at the receiver: a server span ends after the
// client has its answer, so a flush right after the call could come before it.
func exportSoon(t *testing.T) {
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "10") // read by the SDK
}

func startSink(tb testing.TB, opts ...tracesink.Option) *tracesink.Sink {
	tb.Helper()
	s, err := tracesink.Start(opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Error(err)
		}
	})
	return s
}

// logRecorder is a JSON logger wrapped by NewLogHandler, and what it wrote.
type logRecorder struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logRecorder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logRecorder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logRecorder) logger() *slog.Logger {
	return slog.New(tracing.NewLogHandler(slog.NewTextHandler(l, nil)))
}

func findSpan(spans []tracesink.Span, service, kind string) (tracesink.Span, bool) {
	for _, s := range spans {
		if s.Service == service && s.Kind == kind {
			return s, true
		}
	}
	return tracesink.Span{}, false
}

// TestDeniedCallIsOneTraceWithItsCode exports a call that the server refuses from both
// ends: the server span is the child of the client span, both carry the gRPC code, and the
// server's log record of the call names the trace and the server span.
func TestDeniedCallIsOneTraceWithItsCode(t *testing.T) {
	exportSoon(t)
	b, sink, logs := newBed(t), startSink(t), &logRecorder{}
	logger := logs.logger()
	server := newTracing(t, "server", tracing.Config{Endpoint: sink.Endpoint()})
	client := newTracing(t, "client", tracing.Config{Endpoint: sink.Endpoint()})
	if !server.Exporting() || !client.Exporting() {
		t.Fatal("Exporting() = false with an endpoint")
	}
	addr := b.serve(t, server, func(ctx context.Context) error {
		logger.WarnContext(ctx, "authz decision", "decision", "deny")
		return status.Error(codes.PermissionDenied, "permission denied")
	})
	_, err := b.client(t, client, addr).EmptyCall(t.Context(), &testgrpc.Empty{})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("EmptyCall: %v, want PermissionDenied", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitFor)
	defer cancel()
	spans, err := sink.Wait(ctx, func(s []tracesink.Span) bool { return len(s) >= 2 })
	if err != nil {
		t.Fatal(err)
	}
	cs, ok1 := findSpan(spans, "client", "client")
	ss, ok2 := findSpan(spans, "server", "server")
	if !ok1 || !ok2 {
		t.Fatalf("want a client span of service client and a server span of service server, got %+v", spans)
	}
	if ss.TraceID != cs.TraceID || ss.ParentSpanID != cs.SpanID {
		t.Errorf("server span %s/%s (parent %s) is not the child of client span %s/%s", ss.TraceID, ss.SpanID, ss.ParentSpanID, cs.TraceID, cs.SpanID)
	}
	for _, s := range []tracesink.Span{cs, ss} {
		if s.Name != "grpc.testing.TestService/EmptyCall" {
			t.Errorf("%s span name %q", s.Kind, s.Name)
		}
		if got := s.Attributes["rpc.response.status_code"]; got != "PERMISSION_DENIED" {
			t.Errorf("%s span rpc.response.status_code = %q, want PERMISSION_DENIED", s.Kind, got)
		}
	}
	// OpenTelemetry's semantic conventions: a refusal is the client's error, not the
	// server's (whose status stays unset, as for InvalidArgument or NotFound).
	if cs.StatusCode != "error" || cs.StatusMessage != "permission denied" {
		t.Errorf("client span status %s %q, want error \"permission denied\"", cs.StatusCode, cs.StatusMessage)
	}
	if ss.StatusCode != "unset" {
		t.Errorf("server span status %s, want unset", ss.StatusCode)
	}
	want := "trace_id=" + ss.TraceID + " span_id=" + ss.SpanID
	if !strings.Contains(logs.String(), want) {
		t.Errorf("the server's log record lacks %q:\n%s", want, logs)
	}
}

// TestNoEndpointCarriesTheTrace: a server without an endpoint records nothing but keeps the
// caller's trace in the call's context, so its log records name it and the calls it makes
// continue it.
func TestNoEndpointCarriesTheTrace(t *testing.T) {
	exportSoon(t)
	b, sink, logs := newBed(t), startSink(t), &logRecorder{}
	logger := logs.logger()
	middle := newTracing(t, "middle", tracing.Config{})
	if middle.Exporting() {
		t.Fatal("Exporting() = true without an endpoint")
	}
	backend := newTracing(t, "backend", tracing.Config{Endpoint: sink.Endpoint()})
	client := newTracing(t, "client", tracing.Config{Endpoint: sink.Endpoint()})
	backendAddr := b.serve(t, backend, func(context.Context) error { return nil })
	toBackend := b.client(t, middle, backendAddr)
	middleAddr := b.serve(t, middle, func(ctx context.Context) error {
		logger.InfoContext(ctx, "in the middle")
		_, err := toBackend.EmptyCall(ctx, &testgrpc.Empty{})
		return err
	})
	if _, err := b.client(t, client, middleAddr).EmptyCall(t.Context(), &testgrpc.Empty{}); err != nil {
		t.Fatalf("EmptyCall: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitFor)
	defer cancel()
	spans, err := sink.Wait(ctx, func(s []tracesink.Span) bool { return len(s) >= 2 })
	if err != nil {
		t.Fatal(err)
	}
	cs, ok1 := findSpan(spans, "client", "client")
	bs, ok2 := findSpan(spans, "backend", "server")
	if !ok1 || !ok2 || len(spans) != 2 {
		t.Fatalf("want exactly a client span and a backend server span, got %+v", spans)
	}
	// The middle made no span of its own: the backend's parent is the client's span.
	if bs.TraceID != cs.TraceID || bs.ParentSpanID != cs.SpanID {
		t.Errorf("backend span (trace %s, parent %s) does not continue the client span %s/%s", bs.TraceID, bs.ParentSpanID, cs.TraceID, cs.SpanID)
	}
	if want := "trace_id=" + cs.TraceID + " span_id=" + cs.SpanID; !strings.Contains(logs.String(), want) {
		t.Errorf("the middle's log record lacks %q:\n%s", want, logs)
	}
}

// TestDisabledCarriesNothing: with OTEL_SDK_DISABLED the server ignores a traceparent.
func TestDisabledCarriesNothing(t *testing.T) {
	b, sink := newBed(t), startSink(t)
	server := newTracing(t, "server", tracing.Config{Disabled: true, Endpoint: sink.Endpoint()})
	if server.Exporting() || server.ServerHandler() != nil {
		t.Fatal("a disabled Tracing exports or has a handler")
	}
	client := newTracing(t, "client", tracing.Config{Endpoint: sink.Endpoint()})
	var seen bool
	addr := b.serve(t, server, func(ctx context.Context) error {
		_, _, seen = tracing.IDs(ctx)
		return nil
	})
	if _, err := b.client(t, client, addr).EmptyCall(t.Context(), &testgrpc.Empty{}); err != nil {
		t.Fatalf("EmptyCall: %v", err)
	}
	if seen {
		t.Error("the disabled server's call context holds a span")
	}
	// The client did send one: the same server with tracing on sees it.
	on := b.serve(t, newTracing(t, "server", tracing.Config{}), func(ctx context.Context) error {
		_, _, seen = tracing.IDs(ctx)
		return nil
	})
	if _, err := b.client(t, client, on).EmptyCall(t.Context(), &testgrpc.Empty{}); err != nil {
		t.Fatalf("EmptyCall: %v", err)
	}
	if !seen {
		t.Error("the traced server's call context holds no span: the client sent no traceparent")
	}
	var nilTracing *tracing.Tracing
	if nilTracing.Exporting() || nilTracing.Shutdown(t.Context()) != nil {
		t.Error("a nil *Tracing exports or fails to shut down")
	}
}

// TestExportNeverHoldsCalls points the exporter at a collector that accepts connections and
// never answers: every call still succeeds (spans beyond the queue are dropped), and
// Shutdown gives up when its context ends instead of hanging.
func TestExportNeverHoldsCalls(t *testing.T) {
	t.Setenv("OTEL_BSP_MAX_QUEUE_SIZE", "8") // read by the SDK: overflow it quickly
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "10")
	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	held.Go(func() {
		for {
			c, err := hole.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		hole.Close()
		held.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})

	b := newBed(t)
	tr, err := tracing.New(t.Context(), "server", tracing.Config{Endpoint: "http://" + hole.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	addr := b.serve(t, tr, func(context.Context) error { return nil })
	c := b.client(t, nil, addr)
	for i := range 200 {
		ctx, cancel := context.WithTimeout(t.Context(), waitFor)
		_, err := c.EmptyCall(ctx, &testgrpc.Empty{})
		cancel()
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := tr.Shutdown(ctx); err == nil {
		t.Error("Shutdown reported success although nothing reached the collector")
	}
}

func TestLogHandler(t *testing.T) {
	logs := &logRecorder{}
	h := tracing.NewLogHandler(slog.NewTextHandler(logs, nil))
	if tracing.NewLogHandler(h) != h {
		t.Error("NewLogHandler wrapped its own handler again")
	}
	logger := slog.New(h).With("service", "accounts")
	logger.InfoContext(context.Background(), "no span")
	if _, _, ok := tracing.IDs(context.Background()); ok {
		t.Error("IDs found a span in an empty context")
	}
	if strings.Contains(logs.String(), "trace_id") {
		t.Errorf("a record without a span got a trace_id:\n%s", logs)
	}

	// A real span context, from a call through a traced server.
	b := newBed(t)
	var traceID, spanID string
	addr := b.serve(t, newTracing(t, "server", tracing.Config{}), func(ctx context.Context) error {
		logger.LogAttrs(ctx, slog.LevelWarn, "audit", slog.Bool("audit", true))
		traceID, spanID, _ = tracing.IDs(ctx)
		return nil
	})
	sink := startSink(t)
	if _, err := b.client(t, newTracing(t, "client", tracing.Config{Endpoint: sink.Endpoint()}), addr).EmptyCall(t.Context(), &testgrpc.Empty{}); err != nil {
		t.Fatal(err)
	}
	if len(traceID) != 32 || len(spanID) != 16 {
		t.Fatalf("IDs = %q, %q: want 32 and 16 hex digits", traceID, spanID)
	}
	want := "service=accounts audit=true trace_id=" + traceID + " span_id=" + spanID
	if !strings.Contains(logs.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, logs)
	}
}

// TestCallerContextIsChecked: what a caller sends is untrusted. A malformed traceparent is
// ignored (no trace id of the caller's making reaches the logs), a valid one is carried,
// and W3C baggage is never forwarded to the next service.
func TestCallerContextIsChecked(t *testing.T) {
	b := newBed(t)
	var forwarded []string
	backendAddr := b.serve(t, newTracing(t, "backend", tracing.Config{}), func(ctx context.Context) error {
		md, _ := metadata.FromIncomingContext(ctx)
		forwarded = append(md.Get("baggage"), md.Get("traceparent")...)
		return nil
	})
	middle := newTracing(t, "middle", tracing.Config{})
	toBackend := b.client(t, middle, backendAddr)
	var traceID string
	middleAddr := b.serve(t, middle, func(ctx context.Context) error {
		traceID, _, _ = tracing.IDs(ctx)
		_, err := toBackend.EmptyCall(ctx, &emptyRequest)
		return err
	})
	client := b.client(t, nil, middleAddr) // sends its metadata by hand
	tests := []struct {
		name, traceparent string
		wantTrace         string
	}{
		{"malformed", "00-zzzz-0000-01", ""},
		{"trailing text", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 level=ERROR msg=forged", ""},
		{"all-zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""},
		{"valid", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "4bf92f3577b34da6a3ce929d0e0e4736"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			traceID, forwarded = "unset", nil
			ctx := metadata.AppendToOutgoingContext(t.Context(), "traceparent", tt.traceparent, "baggage", "user=mallory")
			if _, err := client.EmptyCall(ctx, &emptyRequest); err != nil {
				t.Fatal(err)
			}
			if traceID != tt.wantTrace {
				t.Errorf("the call's trace id = %q, want %q", traceID, tt.wantTrace)
			}
			want := []string(nil)
			if tt.wantTrace != "" {
				want = []string{"00-" + tt.wantTrace + "-00f067aa0ba902b7-01"}
			}
			if !slices.Equal(forwarded, want) {
				t.Errorf("forwarded to the next service: %q, want %q (no baggage)", forwarded, want)
			}
		})
	}
}
