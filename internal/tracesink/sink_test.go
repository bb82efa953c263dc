package tracesink_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	collectortracev1 "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"mtlsbank/internal/tracesink"
)

func str(k, v string) *commonv1.KeyValue {
	return &commonv1.KeyValue{Key: k, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: v}}}
}

// export sends spans of service to s as an OTLP exporter would (plain gRPC: the sink is
// loopback-only test infrastructure).
func export(tb testing.TB, s *tracesink.Sink, service string, spans ...*tracev1.Span) {
	tb.Helper()
	cc, err := grpc.NewClient(strings.TrimPrefix(s.Endpoint(), "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	defer cc.Close()
	req := &collectortracev1.ExportTraceServiceRequest{ResourceSpans: []*tracev1.ResourceSpans{{
		Resource:   &resourcev1.Resource{Attributes: []*commonv1.KeyValue{str("service.name", service)}},
		ScopeSpans: []*tracev1.ScopeSpans{{Spans: spans}},
	}}}
	if _, err := collectortracev1.NewTraceServiceClient(cc).Export(tb.Context(), req); err != nil {
		tb.Fatal(err)
	}
}

func TestSink(t *testing.T) {
	s, err := tracesink.Start(tracesink.WithMaxSpans(2))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if !strings.HasPrefix(s.Endpoint(), "http://127.0.0.1:") {
		t.Errorf("Endpoint() = %q, want a loopback http URL", s.Endpoint())
	}
	parent := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	export(t, s, "accounts", &tracev1.Span{
		TraceId: make([]byte, 16), SpanId: []byte{8, 7, 6, 5, 4, 3, 2, 1}, ParentSpanId: parent, Name: "m",
		Kind:       tracev1.Span_SPAN_KIND_SERVER,
		Attributes: []*commonv1.KeyValue{str("rpc.response.status_code", "PERMISSION_DENIED"), {Key: "n", Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_IntValue{IntValue: 7}}}},
		Status:     &tracev1.Status{Code: tracev1.Status_STATUS_CODE_ERROR, Message: "denied"},
	})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	spans, err := s.Wait(ctx, func(s []tracesink.Span) bool { return len(s) == 1 })
	if err != nil {
		t.Fatal(err)
	}
	want := tracesink.Span{
		Service: "accounts", TraceID: strings.Repeat("0", 32), SpanID: "0807060504030201", ParentSpanID: "0102030405060708",
		Name: "m", Kind: "server", StatusCode: "error", StatusMessage: "denied",
	}
	got := spans[0]
	if got.Attributes["rpc.response.status_code"] != "PERMISSION_DENIED" || got.Attributes["n"] != "7" {
		t.Errorf("attributes %v", got.Attributes)
	}
	got.Attributes = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("span %+v, want %+v", got, want)
	}

	// Beyond WithMaxSpans, spans are counted, not kept.
	export(t, s, "payments", &tracev1.Span{Name: "a"}, &tracev1.Span{Name: "b"})
	if s.Count() != 3 || len(s.Spans()) != 2 || s.Spans()[1].ParentSpanID != "" || s.Spans()[1].StatusCode != "unset" {
		t.Errorf("Count() = %d, Spans() = %+v: want 3 counted, 2 kept, the second a root with status unset", s.Count(), s.Spans())
	}
	short, cancelShort := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancelShort()
	if _, err := s.Wait(short, func(s []tracesink.Span) bool { return len(s) > 2 }); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait for what never comes = %v, want the context's deadline", err)
	}
}
