package grpcserver

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// waitDone waits for ctx to be done, failing the test after 10 s.
func waitDone(tb testing.TB, ctx context.Context) {
	tb.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		tb.Fatal("context not done within 10s")
	}
}

type ctxKey struct{}

// TestLazyDeadlineBehavesAsWithDeadline: what a handler can observe of the call's context
// is what context.WithDeadline gives it: the deadline, values, Done closing at the
// deadline or with the parent, Err and Cause agreeing with Done, children cancelled.
func TestLazyDeadlineBehavesAsWithDeadline(t *testing.T) {
	t.Run("deadline and values without a timer", func(t *testing.T) {
		parent := context.WithValue(context.Background(), ctxKey{}, "v")
		at := time.Now().Add(time.Hour)
		c := newLazyDeadline(parent, at)
		defer c.end()
		if d, ok := c.Deadline(); !ok || !d.Equal(at) {
			t.Errorf("Deadline() = %v, %v; want %v", d, ok, at)
		}
		if c.Value(ctxKey{}) != "v" || c.Err() != nil {
			t.Errorf("Value = %v, Err = %v; want v and nil", c.Value(ctxKey{}), c.Err())
		}
		if c.made.Load() != nil {
			t.Error("a timer was made without anyone waiting")
		}
		if c.Value(ctxKey{}) != "v" {
			t.Error("value lost")
		}
	})
	t.Run("Done closes at the deadline", func(t *testing.T) {
		c := newLazyDeadline(context.Background(), time.Now().Add(20*time.Millisecond))
		defer c.end()
		waitDone(t, c)
		if !errors.Is(c.Err(), context.DeadlineExceeded) || !errors.Is(context.Cause(c), context.DeadlineExceeded) {
			t.Errorf("Err = %v, Cause = %v; want DeadlineExceeded", c.Err(), context.Cause(c))
		}
	})
	t.Run("Err after the deadline without Done", func(t *testing.T) {
		c := newLazyDeadline(context.Background(), time.Now().Add(-time.Millisecond))
		defer c.end()
		if !errors.Is(c.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err = %v, want DeadlineExceeded", c.Err())
		}
		select {
		case <-c.Done():
		default:
			t.Error("Err said DeadlineExceeded but Done is open")
		}
	})
	t.Run("parent cancelled", func(t *testing.T) {
		parent, cancel := context.WithCancelCause(context.Background())
		c := newLazyDeadline(parent, time.Now().Add(time.Hour))
		defer c.end()
		cause := errors.New("client went away")
		cancel(cause)
		if !errors.Is(c.Err(), context.Canceled) {
			t.Fatalf("Err = %v, want Canceled", c.Err())
		}
		waitDone(t, c)
		if context.Cause(c) != cause {
			t.Errorf("Cause = %v, want the parent's", context.Cause(c))
		}
	})
	t.Run("parent cancelled while waiting", func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		c := newLazyDeadline(parent, time.Now().Add(time.Hour))
		defer c.end()
		done := c.Done()
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("parent's cancel did not reach Done")
		}
	})
	t.Run("child contexts", func(t *testing.T) {
		c := newLazyDeadline(context.Background(), time.Now().Add(20*time.Millisecond))
		defer c.end()
		child, cancel := context.WithCancel(c)
		defer cancel()
		if d, ok := child.Deadline(); !ok || !d.Equal(c.deadline) {
			t.Errorf("child deadline %v, %v", d, ok)
		}
		waitDone(t, child)
		if !errors.Is(child.Err(), context.DeadlineExceeded) {
			t.Errorf("child Err = %v, want DeadlineExceeded", child.Err())
		}
	})
	t.Run("end cancels", func(t *testing.T) {
		c := newLazyDeadline(context.Background(), time.Now().Add(time.Hour))
		done := c.Done()
		c.end()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("end did not cancel")
		}
		if !errors.Is(c.Err(), context.Canceled) {
			t.Errorf("Err = %v, want Canceled", c.Err())
		}
	})
	t.Run("waited on after end", func(t *testing.T) {
		// A goroutine that outlives its call sees the call's context done.
		c := newLazyDeadline(context.Background(), time.Now().Add(time.Hour))
		c.end()
		if !errors.Is(c.Err(), context.Canceled) {
			t.Errorf("Err after end = %v, want Canceled", c.Err())
		}
		waitDone(t, c)
	})
	t.Run("concurrent waiters and end", func(t *testing.T) {
		for range 100 {
			c := newLazyDeadline(context.Background(), time.Now().Add(time.Hour))
			var wg sync.WaitGroup
			chans := make([]<-chan struct{}, 4)
			for i := range chans {
				wg.Go(func() { chans[i] = c.Done() })
			}
			wg.Go(c.end)
			wg.Wait()
			for _, ch := range chans {
				if ch != chans[0] {
					t.Fatal("Done returned different channels")
				}
				select {
				case <-ch:
				case <-time.After(10 * time.Second):
					t.Fatal("a Done made concurrently with end was never closed")
				}
			}
		}
	})
}

// defaultDeadline is the default deadline stage as an interceptor.
func defaultDeadline(d time.Duration) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return handleWithDeadline(ctx, req, handler, d)
	}
}

// TestDefaultDeadlineInterceptor: a call without a deadline gets the default, one with a
// deadline keeps its own, a handler that never waits makes no timer, and a plain context
// error after the default deadline is DeadlineExceeded.
func TestDefaultDeadlineInterceptor(t *testing.T) {
	in := defaultDeadline(time.Hour)
	info := &grpc.UnaryServerInfo{FullMethod: "/a.B/C"}

	var seen context.Context
	_, _ = in(context.Background(), nil, info, func(ctx context.Context, _ any) (any, error) {
		seen = ctx
		return nil, nil
	})
	lazy, ok := seen.(*lazyDeadline)
	if !ok {
		t.Fatalf("handler got %T, want the lazy deadline", seen)
	}
	if d, _ := lazy.Deadline(); time.Until(d) < 59*time.Minute {
		t.Errorf("deadline %v, want an hour from now", d)
	}
	if lazy.made.Load() != nil {
		t.Error("made a timer for a handler that never waited")
	}
	// After the call, the context reads as cancelled.
	if !errors.Is(lazy.Err(), context.Canceled) {
		t.Errorf("after the call Err = %v, want Canceled", lazy.Err())
	}

	own, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _ = in(own, nil, info, func(ctx context.Context, _ any) (any, error) {
		seen = ctx
		return nil, nil
	})
	if seen != own {
		t.Errorf("a call with its own deadline got %T, want its context untouched", seen)
	}

	short := defaultDeadline(20 * time.Millisecond)
	_, err := short(context.Background(), nil, info, func(ctx context.Context, _ any) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("handler giving up on the default deadline: %v, want DeadlineExceeded", err)
	}
	statusErr := status.Error(codes.Unavailable, "dependency down")
	if _, err := short(context.Background(), nil, info, func(ctx context.Context, _ any) (any, error) {
		<-ctx.Done()
		return nil, statusErr
	}); err != statusErr {
		t.Errorf("a status error after the deadline became %v, want it kept", err)
	}
}

// BenchmarkDefaultDeadline measures what the default deadline costs a call whose handler
// never waits (WhoAmI, a cached GetAccount): the lazy deadline, and the timer per call
// (context.WithTimeout and its cancel) that it replaced.
func BenchmarkDefaultDeadline(b *testing.B) {
	info := &grpc.UnaryServerInfo{FullMethod: "/a.B/C"}
	handler := func(ctx context.Context, _ any) (any, error) { return nil, nil }
	ctx, cancel := context.WithCancel(context.Background()) // grpc-go's stream context is a cancelCtx
	defer cancel()
	timerPerCall := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, cancel := context.WithTimeout(ctx, DefaultDeadline)
		defer cancel()
		return handler(ctx, req)
	}
	for _, c := range []struct {
		name string
		in   grpc.UnaryServerInterceptor
	}{
		{"lazy", defaultDeadline(DefaultDeadline)},
		{"timer per call", timerPerCall},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = c.in(ctx, nil, info, handler)
			}
		})
	}
}
