package telemetry

import (
	"context"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

// rpcMetrics are the server RPC metrics of go-grpc-middleware's providers/prometheus
// (grpc_server_started_total, grpc_server_handled_total, grpc_server_handling_seconds,
// grpc_server_msg_received_total, grpc_server_msg_sent_total: the same names, help,
// labels and counting rules), with each method's series resolved once rather than
// looked up by label values on every call.
//
// The library's interceptor allocates a reporter and label slices per call and resolves
// each series through CounterVec.WithLabelValues (hashing the label values, a map
// lookup under a lock) four times per unary call: about 0.5 to 0.9 µs, a quarter of what
// the whole interceptor chain may cost. Here a call does one map lookup by its full
// method name and then only atomic additions.
type rpcMetrics struct {
	started, handled, received, sent *prometheus.CounterVec
	handling                         *prometheus.HistogramVec

	mu      sync.Mutex                               // serializes writers of methods
	methods atomic.Pointer[map[string]*methodSeries] // copied on write
}

// methodSeries are the series of one method.
type methodSeries struct {
	started, received, sent prometheus.Counter
	handling                prometheus.Observer
	handled                 [numCodes]prometheus.Counter
	labels                  [3]string // grpc_type, grpc_service, grpc_method
}

// numCodes is the number of gRPC status codes, OK to Unauthenticated.
const numCodes = int(codes.Unauthenticated) + 1

func newRPCMetrics(buckets []float64) *rpcMetrics {
	labels := []string{"grpc_type", "grpc_service", "grpc_method"}
	m := &rpcMetrics{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_started_total",
			Help: "Total number of RPCs started on the server.",
		}, labels),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_handled_total",
			Help: "Total number of RPCs completed on the server, regardless of success or failure.",
		}, append(labels[:3:3], "grpc_code")),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_msg_received_total",
			Help: "Total number of RPC stream messages received on the server.",
		}, labels),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_msg_sent_total",
			Help: "Total number of gRPC stream messages sent by the server.",
		}, labels),
		handling: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "grpc_server_handling_seconds",
			Help:    "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
			Buckets: buckets,
		}, labels),
	}
	m.methods.Store(&map[string]*methodSeries{})
	return m
}

func (m *rpcMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.started, m.handled, m.received, m.sent, m.handling}
}

// initialize resolves the series of every method registered on s, creating them at zero
// (every code of grpc_server_handled_total included).
func (m *rpcMetrics) initialize(s reflection.ServiceInfoProvider) {
	for service, info := range s.GetServiceInfo() {
		for _, mi := range info.Methods {
			var stream *grpc.StreamServerInfo
			if mi.IsClientStream || mi.IsServerStream {
				stream = &grpc.StreamServerInfo{IsClientStream: mi.IsClientStream, IsServerStream: mi.IsServerStream}
			}
			m.series("/"+service+"/"+mi.Name, stream)
		}
	}
}

// series returns the series of fullMethod (a unary method if stream is nil), resolving
// them the first time. Only methods registered on the server reach an interceptor, so
// the map is bounded by the service's methods.
func (m *rpcMetrics) series(fullMethod string, stream *grpc.StreamServerInfo) *methodSeries {
	if s := (*m.methods.Load())[fullMethod]; s != nil {
		return s
	}
	meta := interceptors.NewServerCallMeta(fullMethod, stream, nil)
	typ, service, method := string(meta.Typ), meta.Service, meta.Method
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.methods.Load()
	if s := old[fullMethod]; s != nil {
		return s
	}
	s := &methodSeries{labels: [3]string{typ, service, method}}
	s.started = m.started.WithLabelValues(s.labels[:]...)
	s.received = m.received.WithLabelValues(s.labels[:]...)
	s.sent = m.sent.WithLabelValues(s.labels[:]...)
	s.handling = m.handling.WithLabelValues(s.labels[:]...)
	for c := range s.handled {
		s.handled[c] = m.handled.WithLabelValues(typ, service, method, codes.Code(c).String())
	}
	methods := make(map[string]*methodSeries, len(old)+1)
	maps.Copy(methods, old)
	methods[fullMethod] = s
	m.methods.Store(&methods)
	return s
}

// done counts a finished call with err, and its duration.
func (m *rpcMetrics) done(s *methodSeries, err error, start time.Time) {
	code := CallCode(err)
	if int(code) < numCodes {
		s.handled[code].Inc()
	} else {
		m.handled.WithLabelValues(s.labels[0], s.labels[1], s.labels[2], code.String()).Inc()
	}
	s.handling.Observe(time.Since(start).Seconds())
}

// CallCode is the status code grpc-go answers a call whose handler returned err: the
// error's status, a context error's (Canceled, DeadlineExceeded), Unknown otherwise.
func CallCode(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	s, ok := status.FromError(err)
	if !ok {
		s = status.FromContextError(err)
	}
	return s.Code()
}

func (m *rpcMetrics) unaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		call := m.startUnary(info.FullMethod, time.Now())
		resp, err := handler(ctx, req)
		call.End(err)
		return resp, err
	}
}

// UnaryCall is the metrics of one unary call from StartUnary to End.
type UnaryCall struct {
	m     *rpcMetrics
	s     *methodSeries
	start time.Time
}

func (m *rpcMetrics) startUnary(fullMethod string, start time.Time) UnaryCall {
	s := m.series(fullMethod, nil)
	s.started.Inc()
	s.received.Inc() // the request, read before any interceptor runs
	return UnaryCall{m: m, s: s, start: start}
}

// End counts the call as finished with err (the message sent when err is nil) and
// observes its duration. The zero UnaryCall (no metrics) does nothing.
func (c UnaryCall) End(err error) {
	if c.m == nil {
		return
	}
	if err == nil {
		c.s.sent.Inc()
	}
	c.m.done(c.s, err, c.start)
}

func (m *rpcMetrics) streamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		s := m.series(info.FullMethod, info)
		start := time.Now()
		s.started.Inc()
		err := handler(srv, &countedStream{ServerStream: ss, s: s})
		m.done(s, err, start)
		return err
	}
}

// countedStream counts the messages a stream sent and received successfully.
type countedStream struct {
	grpc.ServerStream
	s *methodSeries
}

func (c *countedStream) SendMsg(msg any) error {
	err := c.ServerStream.SendMsg(msg)
	if err == nil {
		c.s.sent.Inc()
	}
	return err
}

func (c *countedStream) RecvMsg(msg any) error {
	err := c.ServerStream.RecvMsg(msg)
	if err == nil {
		c.s.received.Inc()
	}
	return err
}
