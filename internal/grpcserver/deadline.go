package grpcserver

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// handleWithDeadline runs handler with d as the deadline of a unary call that has none
// (the chain's default deadline stage). A handler that gives up on it with a plain
// context error answers DeadlineExceeded rather than Unknown.
//
// The deadline is lazy: the call's context reports it (Deadline, so outgoing calls and
// the database see it), but its timer starts only when something waits on the context
// (Done, or Err once the deadline has passed). A handler that answers from memory never
// waits, and a timer per call (context.WithTimeout: about 2.7 µs with its cancel, most of
// it the runtime's timer heap) was the largest single cost of such a call after logging.
func handleWithDeadline(ctx context.Context, req any, handler grpc.UnaryHandler, d time.Duration) (any, error) {
	if _, ok := ctx.Deadline(); ok {
		return handler(ctx, req)
	}
	lazy := newLazyDeadline(ctx, time.Now().Add(d))
	defer lazy.end()
	resp, err := handler(lazy, req)
	if err != nil && errors.Is(lazy.Err(), context.DeadlineExceeded) {
		if _, isStatus := status.FromError(err); !isStatus {
			err = status.Error(codes.DeadlineExceeded, "deadline exceeded")
		}
	}
	return resp, err
}

// lazyDeadline is a context with a deadline whose context.WithDeadline (and timer) is
// made only when the context is first waited on. Until then Deadline reports the
// deadline, Err compares it with the clock, and Value goes to the parent; after, every
// method goes to the made context, so context.WithCancel on a lazyDeadline links to it
// directly (no goroutine) and context.Cause finds its cause.
type lazyDeadline struct {
	parent   context.Context
	deadline time.Time
	made     atomic.Pointer[madeContext]
	ended    atomic.Bool
}

type madeContext struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func newLazyDeadline(parent context.Context, deadline time.Time) *lazyDeadline {
	return &lazyDeadline{parent: parent, deadline: deadline}
}

// start returns the made context, making it if needed. After end, what it makes is
// cancelled at once: a goroutine that outlives its call sees the call's context done, as
// with context.WithTimeout and its deferred cancel.
func (c *lazyDeadline) start() context.Context {
	if m := c.made.Load(); m != nil {
		return m.ctx
	}
	ctx, cancel := context.WithDeadline(c.parent, c.deadline)
	m := &madeContext{ctx: ctx, cancel: cancel}
	if !c.made.CompareAndSwap(nil, m) {
		cancel() // another goroutine made it first
		return c.made.Load().ctx
	}
	// end stores ended before it loads made, this stored made before it loads ended:
	// one of the two sees the other, so a context made concurrently with end is cancelled.
	if c.ended.Load() {
		cancel()
	}
	return ctx
}

// end cancels the context when the call returns (the deferred cancel of WithTimeout).
func (c *lazyDeadline) end() {
	c.ended.Store(true)
	if m := c.made.Load(); m != nil {
		m.cancel()
	}
}

// Deadline returns the deadline, without starting a timer.
func (c *lazyDeadline) Deadline() (time.Time, bool) { return c.deadline, true }

// Done starts the timer and returns the channel closed at the deadline, when the parent
// is done, or when the call has returned.
func (c *lazyDeadline) Done() <-chan struct{} { return c.start().Done() }

// Err is nil while the deadline has not passed, the parent is not done and the call has
// not returned; it starts the timer only when one of those has happened, so that Err
// and Done always agree.
func (c *lazyDeadline) Err() error {
	if m := c.made.Load(); m != nil {
		return m.ctx.Err()
	}
	if c.ended.Load() || c.parent.Err() != nil || !time.Now().Before(c.deadline) {
		return c.start().Err()
	}
	return nil
}

// Value looks key up in the parent, or in the made context once there is one.
func (c *lazyDeadline) Value(key any) any {
	if m := c.made.Load(); m != nil {
		return m.ctx.Value(key)
	}
	return c.parent.Value(key)
}

// String names the context as context.WithDeadline's do.
func (c *lazyDeadline) String() string {
	return "grpcserver.lazyDeadline(" + c.deadline.String() + ")"
}
