package grpcserver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"

	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	grpcratelimit "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/ratelimit"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"mtlsbank/internal/authz"
	"mtlsbank/internal/telemetry"
	"mtlsbank/internal/tlsconfig"
	"mtlsbank/internal/validation"
)

// Server is a hardened *grpc.Server with the bank's credentials, interceptors, health
// and reflection. Register services on it, then Serve.
type Server struct {
	grpc    *grpc.Server
	authz   *authz.Authorizer
	health  *health.Server
	logger  *slog.Logger
	metrics *telemetry.Metrics
	conns   *connTracker
	// caps are the caps Serve puts on its listener.
	caps connCaps
	// unary is the unary chain New installed, as one interceptor (for its benchmark).
	unary *unaryChain
}

// New assembles a server accepting only mutual-TLS peers of src's trust domain and
// authorizing every call with policy. The interceptor chain, outermost first:
//
//  0. the call's context (WithCallContext: the trace context when no span is recorded);
//  1. recovery: a panic in a stage below becomes codes.Internal, logged with its stack (in a
//     unary call, one the metrics and the call log then count);
//  2. metrics (WithMetrics): grpc_server_* by method and code, every call included;
//  3. call log: one record per call that did not end OK, rejections included (callLog;
//     a successful call's record is its audit record);
//  4. rate limit (WithRateLimiter): ResourceExhausted, keyed on the identity verified at
//     handshake; before authorization, so that a caller hammering a method it is denied
//     is throttled too instead of costing an audit record per call;
//  5. authorization: Unauthenticated / PermissionDenied before any handler runs (the
//     caller's chain re-checked against the current CRL and clock), one audit record per
//     call (WithAuditSink: handed over with the call's outcome before the answer leaves),
//     the caller's identity and Decision put in the context;
//     Streaming calls then take a slot of WithMaxStreams (per identity and in all), so
//     that long-lived streams cannot hold the server's memory;
//  6. validation: every request is checked against the protovalidate rules of its proto
//     (package validation), InvalidArgument with BadRequest and ErrorInfo otherwise;
//     after authorization, so strangers learn nothing from it;
//  7. default deadline (unary calls without one, WithDefaultDeadline; its timer starts
//     only if the handler waits on the context);
//  8. recovery again, around validation and the handler (the handler alone in a stream),
//     so that their panic is an Internal the audit record, the metrics and the call log
//     see rather than an unwinding that skips them.
//
// A unary call runs these stages as one interceptor (unaryChain: each stage a call in
// sequence rather than an interceptor nesting the next); a stream runs them as nested
// interceptors. Calls run on a pool of stream workers (WithStreamWorkers), which keep
// their grown stacks, rather than on a new goroutine each.
func New(src *tlsconfig.Source, policy *authz.Policy, logger *slog.Logger, opts ...Option) (*Server, error) {
	if policy.TrustDomain() != src.TrustDomain() {
		return nil, fmt.Errorf("grpcserver: policy trust domain %s differs from TLS trust domain %s", policy.TrustDomain(), src.TrustDomain())
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o := defaults()
	for _, opt := range opts {
		opt(&o)
	}
	rejections := newRejectionLog(logger, o.handshakeLogBurst, o.handshakeLogInterval)
	onHandshakeFailure := func(err error) {
		level := slog.LevelWarn
		reason := tlsconfig.FailureReason(err)
		if reason == tlsconfig.ReasonClosed || reason == tlsconfig.ReasonTimeout {
			level = slog.LevelDebug // port probes and idle connections, not rejections
		}
		rejections.log(level, reason, err)
		if o.metrics != nil {
			o.metrics.ObserveHandshakeFailure(err)
		}
		if o.handshakeHook != nil {
			o.handshakeHook(err)
		}
	}
	azOpts := []authz.Option{authz.WithCertificateCheck(src.CheckChain)}
	if o.metrics != nil {
		m := o.metrics
		azOpts = append(azOpts, authz.WithDecisionObserver(func(method string, code codes.Code, d authz.Decision) {
			m.ObserveAuthz(method, code, d.Roles)
		}))
	}
	if o.auditSink != nil {
		azOpts = append(azOpts, authz.WithAuditSink(o.auditSink))
	}
	az := authz.NewAuthorizer(policy, logger, azOpts...)

	recovered := func(ctx context.Context, p any) error {
		method, _ := grpc.Method(ctx)
		logger.ErrorContext(ctx, "panic in gRPC call", "method", method, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	}
	recoverOpt := recovery.WithRecoveryHandlerContext(recovered)
	calls := callLog{logger: logger}
	conns := newConnTracker(src, logger, o.metrics, o.expiryDrainLead)
	v, err := validation.New(logger)
	if err != nil {
		return nil, fmt.Errorf("grpcserver: %w", err)
	}
	unary := &unaryChain{
		callContext: o.callContext, conns: conns, recovered: recovered, metrics: o.metrics,
		calls: calls, authz: az, validator: v, deadline: o.defaultDeadline,
	}
	var stream []grpc.StreamServerInterceptor
	if o.callContext != nil {
		stream = append(stream, callContextStream(o.callContext))
	}
	stream = append(stream, conns.checkerStreamInterceptor(), recovery.StreamServerInterceptor(recoverOpt))
	if o.metrics != nil {
		stream = append(stream, o.metrics.StreamServerInterceptor())
	}
	stream = append(stream, calls.stream())
	if o.limiter != nil {
		unary.limit = grpcratelimit.UnaryServerInterceptor(o.limiter)
		stream = append(stream, grpcratelimit.StreamServerInterceptor(o.limiter))
	}
	stream = append(stream, az.StreamServerInterceptor(), newStreamCap(logger, o.maxStreamsPer, o.maxStreams).interceptor(), v.StreamServerInterceptor())
	stream = append(stream, recovery.StreamServerInterceptor(recoverOpt))

	serverOpts := []grpc.ServerOption{
		grpc.Creds(trackingCreds{TransportCredentials: tlsconfig.ServerCredentials(src, tlsconfig.WithHandshakeFailureHook(onHandshakeFailure)), t: conns}),
		// Ours as grpc-go's "the" interceptors, which run first and can be set once: an
		// interceptor a caller adds with WithServerOptions runs after the chain (grpc-go
		// chains the Chain*Interceptor ones after them), or, set with
		// grpc.UnaryInterceptor or grpc.StreamInterceptor, makes New fail.
		grpc.UnaryInterceptor(unary.intercept),
		grpc.StreamInterceptor(stream[0]),
		grpc.ChainStreamInterceptor(stream[1:]...),
		grpc.MaxRecvMsgSize(o.maxRecvMsgSize),
		grpc.MaxConcurrentStreams(o.maxConcurrentStreams),
		grpc.MaxHeaderListSize(o.maxHeaderListSize),
		grpc.InitialWindowSize(DefaultInitialWindowSize),
		grpc.InitialConnWindowSize(DefaultInitialConnWindowSize),
		grpc.ReadBufferSize(DefaultBufferSize),
		grpc.WriteBufferSize(DefaultBufferSize),
		grpc.ConnectionTimeout(o.connectionTimeout),
		grpc.NumStreamWorkers(o.streamWorkers),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: o.keepaliveMinTime, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:                  o.keepaliveTime,
			Timeout:               o.keepaliveTimeout,
			MaxConnectionAge:      o.maxConnectionAge,
			MaxConnectionAgeGrace: o.maxConnectionAgeGrace,
		}),
	}
	gs, err := newGRPCServer(append(serverOpts, o.serverOptions...))
	if err != nil {
		return nil, err
	}
	s := &Server{
		grpc:    gs,
		authz:   az,
		health:  health.NewServer(),
		logger:  logger,
		metrics: o.metrics,
		conns:   conns,

		caps:  connCaps{total: o.maxConns, perSource: o.maxConnsPer, handshaking: o.maxHS, handshakingPerSource: o.maxHSPer},
		unary: unary,
	}
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	return s, nil
}

// callContextStream runs fn on a stream's context (WithCallContext).
func callContextStream(fn func(context.Context) context.Context) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if ctx := fn(ss.Context()); ctx != ss.Context() {
			w := middleware.WrapServerStream(ss)
			w.WrappedContext = ctx
			ss = w
		}
		return handler(srv, ss)
	}
}

// newGRPCServer is grpc.NewServer, with the panic of an option it refuses as an error:
// grpc-go panics when an option sets the first interceptor, which New sets.
func newGRPCServer(opts []grpc.ServerOption) (s *grpc.Server, err error) {
	defer func() {
		if p := recover(); p != nil {
			s, err = nil, fmt.Errorf("grpcserver: a server option was refused (%v): an interceptor added with WithServerOptions "+
				"must come with grpc.ChainUnaryInterceptor or grpc.ChainStreamInterceptor, so that it runs after "+
				"the bank's authorization and recovery", p)
		}
	}()
	return grpc.NewServer(opts...), nil
}

// RegisterService registers a service implementation (Server is a grpc.ServiceRegistrar).
func (s *Server) RegisterService(desc *grpc.ServiceDesc, impl any) {
	s.grpc.RegisterService(desc, impl)
}

// GRPC returns the underlying *grpc.Server.
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// Authorizer returns the authorizer, whose policy can be swapped while serving.
func (s *Server) Authorizer() *authz.Authorizer { return s.authz }

// Check verifies that the policy grants every registered method to some role; the error
// names each method without a rule.
func (s *Server) Check() error {
	return s.authz.Policy().Check(s.grpc.GetServiceInfo())
}

// CheckWith is Check with descs counted as registered too: a main calls it before it
// opens what the implementations of descs need (a database), so that a policy that
// leaves a method uncovered refuses to start without touching anything.
func (s *Server) CheckWith(descs ...*grpc.ServiceDesc) error {
	info := s.grpc.GetServiceInfo()
	for _, d := range descs {
		methods := make([]grpc.MethodInfo, 0, len(d.Methods)+len(d.Streams))
		for _, m := range d.Methods {
			methods = append(methods, grpc.MethodInfo{Name: m.MethodName})
		}
		for _, st := range d.Streams {
			methods = append(methods, grpc.MethodInfo{Name: st.StreamName, IsClientStream: st.ClientStreams, IsServerStream: st.ServerStreams})
		}
		info[d.ServiceName] = grpc.ServiceInfo{Methods: methods, Metadata: d.Metadata}
	}
	return s.authz.Policy().Check(info)
}

// Serve runs Check, refusing to start (and naming the uncovered methods) if it fails,
// warns about policy rules that match no registered method (usually a typo), marks every
// service SERVING, and serves lis, within the connection caps (WithMaxConnections),
// until Stop or Shutdown.
func (s *Server) Serve(lis net.Listener) error {
	if err := s.Check(); err != nil {
		lis.Close()
		return fmt.Errorf("refusing to serve: %w", err)
	}
	info := s.grpc.GetServiceInfo()
	p := s.authz.Policy()
	for _, pattern := range p.Unused(info) {
		s.logger.Warn("policy rule matches no registered method", "policy", p.Name(), "method", pattern)
	}
	if s.metrics != nil {
		s.metrics.InitializeMethods(s.grpc)
	}
	for name := range info {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	if s.caps != (connCaps{}) {
		lis = newLimitListener(lis, s.caps, s.metrics)
	}
	return s.grpc.Serve(lis)
}

// Shutdown marks every service NOT_SERVING, stops accepting connections and waits for
// in-flight calls to finish; when ctx ends first it closes what is left.
func (s *Server) Shutdown(ctx context.Context) {
	s.health.Shutdown()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.grpc.Stop()
		<-done
	}
}
