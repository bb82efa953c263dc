package tracesink

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	collectortracev1 "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// DefaultMaxSpans is how many spans a Sink keeps unless WithMaxSpans says otherwise.
const DefaultMaxSpans = 100_000

// Span is one received span, flattened with its resource's service.name.
type Span struct {
	Service      string // the resource's service.name
	TraceID      string // 32 hex digits
	SpanID       string // 16 hex digits
	ParentSpanID string // 16 hex digits; empty for a root span
	Name         string // otelgrpc: the full method without its leading slash
	Kind         string // "server", "client", "internal", "producer", "consumer" or "unspecified"
	Attributes   map[string]string
	// StatusCode is "unset", "ok" or "error"; StatusMessage goes with "error".
	StatusCode    string
	StatusMessage string
}

// Option configures Start.
type Option func(*Sink)

// WithMaxSpans keeps the first n spans only (Count still counts all): a bench's sink keeps
// none.
func WithMaxSpans(n int) Option { return func(s *Sink) { s.max = n } }

// Sink is a running receiver.
type Sink struct {
	collectortracev1.UnimplementedTraceServiceServer

	srv  *grpc.Server
	lis  net.Listener
	done chan error
	max  int

	count atomic.Int64
	mu    sync.Mutex
	spans []Span
	// changed is closed (and replaced) on every export, for Wait.
	changed chan struct{}
}

// Start serves OTLP/gRPC on 127.0.0.1 (a free port), in plain text: it is for loopback
// only. Stop it when done.
func Start(opts ...Option) (*Sink, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("tracesink: %w", err)
	}
	s := &Sink{srv: grpc.NewServer(), lis: lis, done: make(chan error, 1), max: DefaultMaxSpans, changed: make(chan struct{})}
	for _, opt := range opts {
		opt(s)
	}
	collectortracev1.RegisterTraceServiceServer(s.srv, s)
	go func() { s.done <- s.srv.Serve(lis) }()
	return s, nil
}

// Endpoint is the value of OTEL_EXPORTER_OTLP_ENDPOINT that exports to s.
func (s *Sink) Endpoint() string { return "http://" + s.lis.Addr().String() }

// Stop stops the receiver; exporters still sending get Unavailable.
func (s *Sink) Stop() error {
	s.srv.Stop()
	if err := <-s.done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("tracesink: %w", err)
	}
	return nil
}

// Export implements the OTLP trace service.
func (s *Sink) Export(_ context.Context, req *collectortracev1.ExportTraceServiceRequest) (*collectortracev1.ExportTraceServiceResponse, error) {
	var n int64
	var got []Span
	keep := s.max > 0 && s.count.Load() < int64(s.max)
	for _, rs := range req.GetResourceSpans() {
		service := attributes(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.GetScopeSpans() {
			n += int64(len(ss.GetSpans()))
			if !keep {
				continue
			}
			for _, sp := range ss.GetSpans() {
				got = append(got, flatten(service, sp))
			}
		}
	}
	s.count.Add(n)
	s.mu.Lock()
	if room := s.max - len(s.spans); room > 0 {
		s.spans = append(s.spans, got[:min(room, len(got))]...)
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return &collectortracev1.ExportTraceServiceResponse{}, nil
}

// Count returns how many spans s has received, kept or not.
func (s *Sink) Count() int64 { return s.count.Load() }

// Spans returns a copy of the spans kept so far, in the order received.
func (s *Sink) Spans() []Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Span(nil), s.spans...)
}

// Wait returns the spans kept once cond holds for them, or ctx's error with the spans
// kept by then.
func (s *Sink) Wait(ctx context.Context, cond func([]Span) bool) ([]Span, error) {
	for {
		s.mu.Lock()
		spans, changed := append([]Span(nil), s.spans...), s.changed
		s.mu.Unlock()
		if cond(spans) {
			return spans, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return spans, fmt.Errorf("tracesink: waiting for spans (%d so far): %w", len(spans), context.Cause(ctx))
		}
	}
}

func flatten(service string, sp *tracev1.Span) Span {
	out := Span{
		Service:    service,
		TraceID:    hex.EncodeToString(sp.GetTraceId()),
		SpanID:     hex.EncodeToString(sp.GetSpanId()),
		Name:       sp.GetName(),
		Kind:       kind(sp.GetKind()),
		Attributes: attributes(sp.GetAttributes()),
		StatusCode: "unset",
	}
	if p := sp.GetParentSpanId(); len(p) > 0 {
		out.ParentSpanID = hex.EncodeToString(p)
	}
	switch sp.GetStatus().GetCode() {
	case tracev1.Status_STATUS_CODE_OK:
		out.StatusCode = "ok"
	case tracev1.Status_STATUS_CODE_ERROR:
		out.StatusCode, out.StatusMessage = "error", sp.GetStatus().GetMessage()
	}
	return out
}

func kind(k tracev1.Span_SpanKind) string {
	switch k {
	case tracev1.Span_SPAN_KIND_SERVER:
		return "server"
	case tracev1.Span_SPAN_KIND_CLIENT:
		return "client"
	case tracev1.Span_SPAN_KIND_INTERNAL:
		return "internal"
	case tracev1.Span_SPAN_KIND_PRODUCER:
		return "producer"
	case tracev1.Span_SPAN_KIND_CONSUMER:
		return "consumer"
	default:
		return "unspecified"
	}
}

// attributes returns scalar attributes as strings (integers in decimal, booleans as
// true/false); arrays, maps and bytes are left out.
func attributes(kvs []*commonv1.KeyValue) map[string]string {
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		switch v := kv.GetValue().GetValue().(type) {
		case *commonv1.AnyValue_StringValue:
			out[kv.GetKey()] = v.StringValue
		case *commonv1.AnyValue_IntValue:
			out[kv.GetKey()] = strconv.FormatInt(v.IntValue, 10)
		case *commonv1.AnyValue_BoolValue:
			out[kv.GetKey()] = strconv.FormatBool(v.BoolValue)
		case *commonv1.AnyValue_DoubleValue:
			out[kv.GetKey()] = strconv.FormatFloat(v.DoubleValue, 'g', -1, 64)
		}
	}
	return out
}
