package ratelimit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"mtlsbank/internal/identity"
	"mtlsbank/internal/ratelimit"
)

var (
	alice    = spiffeid.RequireFromString("spiffe://bank.local/customer/alice")
	bob      = spiffeid.RequireFromString("spiffe://bank.local/customer/bob")
	carol    = spiffeid.RequireFromString("spiffe://bank.local/customer/carol")
	payments = spiffeid.RequireFromString("spiffe://bank.local/service/payments")
)

const method = "/bank.accounts.v1.AccountsService/GetAccount"

// clock is a manual clock: time moves only when the test says so.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time          { return c.now }
func (c *clock) Advance(d time.Duration) { c.now = c.now.Add(d) }

func newLimiter(tb testing.TB, c *clock, limit rate.Limit, burst int, opts ...ratelimit.Option) *ratelimit.Limiter {
	tb.Helper()
	l, err := ratelimit.New(limit, burst, append([]ratelimit.Option{ratelimit.WithClock(c.Now)}, opts...)...)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return l
}

// asCaller returns a context as the authorization interceptor leaves it for id.
func asCaller(id spiffeid.ID) context.Context {
	return identity.NewContext(context.Background(), &identity.Identity{ID: id})
}

// asPeer returns a context as the bank's server credentials leave it for id, before
// authorization has run.
func asPeer(id spiffeid.ID) context.Context {
	return peer.NewContext(context.Background(), &peer.Peer{AuthInfo: identity.AuthInfo{Identity: identity.Identity{ID: id}}})
}

// call runs one unary call through the limiter's interceptor and returns its code.
func call(ctx context.Context, l *ratelimit.Limiter) codes.Code {
	handler := func(context.Context, any) (any, error) { return "ok", nil }
	_, err := l.UnaryServerInterceptor()(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, handler)
	return status.Code(err)
}

func TestBurstExhaustsThenRefills(t *testing.T) {
	c := &clock{now: time.Unix(1_700_000_000, 0)}
	l := newLimiter(t, c, 2, 3) // 2 per second, bursts of 3
	ctx := asCaller(alice)
	steps := []struct {
		name    string
		advance time.Duration
		want    []codes.Code
	}{
		{"burst of 3 then exhausted", 0, []codes.Code{codes.OK, codes.OK, codes.OK, codes.ResourceExhausted, codes.ResourceExhausted}},
		{"half a second refills one token", 500 * time.Millisecond, []codes.Code{codes.OK, codes.ResourceExhausted}},
		{"a long pause refills to the burst, not beyond", time.Hour, []codes.Code{codes.OK, codes.OK, codes.OK, codes.ResourceExhausted}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			c.Advance(step.advance)
			for i, want := range step.want {
				if got := call(ctx, l); got != want {
					t.Fatalf("call %d: %v, want %v", i+1, got, want)
				}
			}
		})
	}
}

func TestIdentitiesDoNotShareBuckets(t *testing.T) {
	c := &clock{now: time.Unix(1_700_000_000, 0)}
	l := newLimiter(t, c, 1, 2)
	for range 2 {
		if got := call(asCaller(alice), l); got != codes.OK {
			t.Fatalf("alice within burst: %v", got)
		}
	}
	tests := []struct {
		name string
		ctx  context.Context
		want codes.Code
	}{
		{"alice exhausted", asCaller(alice), codes.ResourceExhausted},
		{"alice as a peer before authorization: same bucket", asPeer(alice), codes.ResourceExhausted},
		{"bob unaffected", asCaller(bob), codes.OK},
		{"bob as a peer", asPeer(bob), codes.OK},
		{"bob now exhausted too", asCaller(bob), codes.ResourceExhausted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := call(tc.ctx, l); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestStreamInterceptor(t *testing.T) {
	c := &clock{now: time.Unix(1_700_000_000, 0)}
	l := newLimiter(t, c, 1, 1)
	open := func() codes.Code {
		err := l.StreamServerInterceptor()(nil, &stream{ctx: asCaller(alice)}, &grpc.StreamServerInfo{FullMethod: method},
			func(any, grpc.ServerStream) error { return nil })
		return status.Code(err)
	}
	if got := open(); got != codes.OK {
		t.Fatalf("first stream: %v", got)
	}
	if got := open(); got != codes.ResourceExhausted {
		t.Fatalf("second stream: %v, want ResourceExhausted", got)
	}
}

type stream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *stream) Context() context.Context { return s.ctx }

func TestLimitReturnsErrLimited(t *testing.T) {
	c := &clock{now: time.Unix(1_700_000_000, 0)}
	l := newLimiter(t, c, 1, 1)
	ctx := asCaller(alice)
	if err := l.Limit(ctx); err != nil {
		t.Fatalf("first: %v", err)
	}
	if err := l.Limit(ctx); !errors.Is(err, ratelimit.ErrLimited) {
		t.Fatalf("second: %v, want ErrLimited", err)
	}
}

func TestMemoryIsBounded(t *testing.T) {
	t.Run("least recently used dropped at the cap", func(t *testing.T) {
		c := &clock{now: time.Unix(1_700_000_000, 0)}
		l := newLimiter(t, c, 1, 1, ratelimit.WithMaxIdentities(2))
		call(asCaller(alice), l)
		call(asCaller(bob), l)
		call(asCaller(carol), l) // drops alice
		if n := l.Len(); n != 2 {
			t.Fatalf("Len = %d, want 2", n)
		}
		if got := call(asCaller(bob), l); got != codes.ResourceExhausted {
			t.Fatalf("bob kept his bucket: got %v, want ResourceExhausted", got)
		}
		if got := call(asCaller(alice), l); got != codes.OK {
			t.Fatalf("alice, dropped, starts full again: got %v, want OK", got)
		}
	})
	t.Run("refilled buckets swept", func(t *testing.T) {
		c := &clock{now: time.Unix(1_700_000_000, 0)}
		l := newLimiter(t, c, 1, 3) // full again 3s after last use
		call(asCaller(alice), l)
		call(asCaller(bob), l)
		c.Advance(2 * time.Second)
		call(asCaller(carol), l)
		if n := l.Len(); n != 3 {
			t.Fatalf("Len = %d before any bucket refilled, want 3", n)
		}
		c.Advance(time.Second) // alice and bob are full again; carol is not
		call(asCaller(carol), l)
		if n := l.Len(); n != 1 {
			t.Fatalf("Len = %d after alice and bob refilled, want 1", n)
		}
	})
}

func TestIdentityLimitOverride(t *testing.T) {
	c := &clock{now: time.Unix(1_700_000_000, 0)}
	l := newLimiter(t, c, 1, 1, ratelimit.WithIdentityLimit(payments, rate.Inf, 0))
	for i := range 100 {
		if got := call(asCaller(payments), l); got != codes.OK {
			t.Fatalf("payments call %d: %v, want OK (unlimited)", i+1, got)
		}
	}
	if n := l.Len(); n != 0 {
		t.Fatalf("Len = %d, want 0: an unlimited identity needs no bucket", n)
	}
	call(asCaller(alice), l)
	if got := call(asCaller(alice), l); got != codes.ResourceExhausted {
		t.Fatalf("alice keeps the default: got %v", got)
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name  string
		limit rate.Limit
		burst int
		opts  []ratelimit.Option
	}{
		{"zero rate", 0, 1, nil},
		{"negative rate", -1, 1, nil},
		{"zero burst", 1, 0, nil},
		{"zero max identities", 1, 1, []ratelimit.Option{ratelimit.WithMaxIdentities(0)}},
		{"bad override", 1, 1, []ratelimit.Option{ratelimit.WithIdentityLimit(alice, 1, 0)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ratelimit.New(tc.limit, tc.burst, tc.opts...); err == nil {
				t.Fatal("New succeeded, want an error")
			}
		})
	}
}
