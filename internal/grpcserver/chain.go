package grpcserver

import (
	"context"
	"time"

	"google.golang.org/grpc"

	"mtlsbank/internal/authz"
	"mtlsbank/internal/telemetry"
	"mtlsbank/internal/validation"
)

// unaryChain is the server's unary interceptor chain (New's list, in its order) run as
// one interceptor: each stage is a call in sequence, not an interceptor wrapping the
// next. Seven nested interceptors cost a frame each plus grpc-go's chaining closure
// between them, on the goroutine that grpc-go hands the call to; the call's stack grows
// through them before the validation and the handler start (docs/benchmarks.md). The
// stages are the same pieces the nested chain used: telemetry's method series, the call
// log, go-grpc-middleware's rate limit interceptor (as a gate), the authorizer's two
// halves, the validator and the lazy default deadline.
type unaryChain struct {
	callContext func(context.Context) context.Context // nil: none
	conns       *connTracker
	// recovered turns a panic into the call's answer (Internal), logging it.
	recovered func(ctx context.Context, p any) error
	metrics   *telemetry.Metrics          // nil: none
	calls     callLog                     // calls that did not end OK
	limit     grpc.UnaryServerInterceptor // go-grpc-middleware's rate limit; nil: none
	authz     *authz.Authorizer
	validator *validation.Validator
	deadline  time.Duration // the default deadline; 0: none
}

// intercept is the chain. A panic anywhere in it becomes an Internal answer: in
// validation or the handler before the call's audit record is handed over (handle), in
// the stages before it as the call's outcome, which the metrics and the call log then
// count (finish), and in those two themselves as a last resort (lastResort).
func (c *unaryChain) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	if c.callContext != nil {
		ctx = c.callContext(ctx)
	}
	ctx = context.WithValue(ctx, checkerKey{}, c.conns) // CheckCaller in the handler
	start := time.Now()
	defer c.lastResort(ctx, &resp, &err)
	var counted telemetry.UnaryCall
	defer c.finish(ctx, info.FullMethod, start, &counted, &resp, &err)
	counted = c.metrics.StartUnary(info.FullMethod, start)
	if c.limit != nil {
		// Before authorization: a caller hammering a method it is denied is throttled too,
		// rather than costing an audit record per call.
		if _, err := c.limit(ctx, req, info, pass); err != nil {
			return nil, err
		}
	}
	callCtx, rec, err := c.authz.BeginUnary(ctx, info, start)
	if err != nil {
		return nil, err
	}
	resp, err = c.handle(callCtx, req, handler)
	if aerr := c.authz.EndUnary(ctx, info.FullMethod, rec, err); aerr != nil {
		return nil, aerr
	}
	return resp, err
}

// handle validates the request and runs the handler under the default deadline; a panic
// in either is the call's Internal answer, which its audit record then carries.
func (c *unaryChain) handle(ctx context.Context, req any, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			resp, err = nil, c.recovered(ctx, p)
		}
	}()
	// After authorization, so that strangers learn nothing from it.
	if err := c.validator.CheckRequest(ctx, req); err != nil {
		return nil, err
	}
	if c.deadline > 0 {
		return handleWithDeadline(ctx, req, handler, c.deadline)
	}
	return handler(ctx, req)
}

// finish ends a call: a panic of a stage before the handler becomes its Internal answer,
// then the metrics count the outcome and the call log writes a call that did not end OK.
func (c *unaryChain) finish(ctx context.Context, method string, start time.Time, counted *telemetry.UnaryCall, resp *any, err *error) {
	if p := recover(); p != nil {
		*resp, *err = nil, c.recovered(ctx, p)
	}
	counted.End(*err)
	c.calls.unaryDone(ctx, method, start, *err)
}

// lastResort makes a panic of the metrics or the call log an Internal answer too.
func (c *unaryChain) lastResort(ctx context.Context, resp *any, err *error) {
	if p := recover(); p != nil {
		*resp, *err = nil, c.recovered(ctx, p)
	}
}

// pass is the handler of a stage run as a gate: the interceptor either refuses the call
// or calls pass, which lets it through.
func pass(context.Context, any) (any, error) { return nil, nil }
