package grpcserver

import (
	"context"
	"time"

	"google.golang.org/grpc"

	"mtlsbank/internal/auditlog"
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
// validation or the handler inside handle, anywhere else in finish, and in finish itself
// in lastResort. A handler that ends its goroutine (runtime.Goexit) cannot be stopped and
// never answers, but its call is still audited, counted and logged, as Internal.
func (c *unaryChain) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	if c.callContext != nil {
		ctx = c.callContext(ctx)
	}
	ctx = context.WithValue(ctx, checkerKey{}, c.conns) // CheckCaller in the handler
	call := unaryCall{method: info.FullMethod, start: time.Now()}
	defer c.lastResort(ctx, &resp, &err)
	defer c.finish(ctx, &call, &resp, &err)
	resp, err = c.stages(ctx, req, info, handler, &call)
	call.returned = true
	return resp, err
}

// unaryCall is what finish needs to know of a call.
type unaryCall struct {
	method   string
	start    time.Time
	counted  telemetry.UnaryCall
	rec      *auditlog.Record // the authorized call's audit record, handed over by finish
	returned bool             // the stages returned: false in finish means a panic or runtime.Goexit
}

// stages runs the stages from the metrics to the handler.
func (c *unaryChain) stages(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler, call *unaryCall) (any, error) {
	call.counted = c.metrics.StartUnary(info.FullMethod, call.start)
	if c.limit != nil {
		// Before authorization: a caller hammering a method it is denied is throttled too,
		// rather than costing an audit record per call.
		if _, err := c.limit(ctx, req, info, pass); err != nil {
			return nil, err
		}
	}
	callCtx, rec, err := c.authz.BeginUnary(ctx, info, call.start)
	if err != nil {
		return nil, err // refused: BeginUnary handed its record over
	}
	call.rec = rec
	return c.handle(callCtx, req, handler)
}

// handle validates the request and runs the handler under the default deadline; a panic
// in either is the call's Internal answer, which its audit record then carries. So is an
// error that panics when formatted: grpc-go formats it for the answer, and the audit
// record, the metrics and the call log need its code.
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
		resp, err = handleWithDeadline(ctx, req, handler, c.deadline)
	} else {
		resp, err = handler(ctx, req)
	}
	if err != nil {
		telemetry.CallCode(err) // formats err, as grpc-go will: a panic here is recovered above
	}
	return resp, err
}

// finish ends a call: a panic of a stage outside handle, or a runtime.Goexit (the call
// will never answer), becomes its Internal outcome; the audit record of an authorized
// call is handed over with the outcome (a failure to keep it replaces the answer:
// Unavailable); then the metrics count the outcome and the call log writes a call that
// did not end OK.
func (c *unaryChain) finish(ctx context.Context, call *unaryCall, resp *any, err *error) {
	if p := recover(); p != nil {
		*resp, *err = nil, c.recovered(ctx, p)
	} else if !call.returned {
		*resp, *err = nil, c.goexit(ctx)
	}
	if aerr := c.authz.EndUnary(ctx, call.method, call.rec, *err); aerr != nil {
		*resp, *err = nil, aerr
	}
	call.counted.End(*err)
	c.calls.unaryDone(ctx, call.method, call.start, *err)
}

// goexit logs a call whose goroutine a stage or the handler ended with runtime.Goexit
// (it never answers: grpc-go's goroutine for it is gone) and returns the Internal its
// records carry.
func (c *unaryChain) goexit(ctx context.Context) error {
	return c.recovered(ctx, "runtime.Goexit in a gRPC call: it never answers")
}

// lastResort makes a panic in finish (the audit hand-over, the metrics, the call log) an
// Internal answer too.
func (c *unaryChain) lastResort(ctx context.Context, resp *any, err *error) {
	if p := recover(); p != nil {
		*resp, *err = nil, c.recovered(ctx, p)
	}
}

// pass is the handler of a stage run as a gate: the interceptor either refuses the call
// or calls pass, which lets it through.
func pass(context.Context, any) (any, error) { return nil, nil }
