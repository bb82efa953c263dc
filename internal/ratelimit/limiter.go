package ratelimit

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	grpcratelimit "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/ratelimit"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	"mtlsbank/internal/identity"
)

// ErrLimited is the error Limit returns to a caller over its rate; the go-grpc-middleware
// ratelimit interceptor turns it into codes.ResourceExhausted.
var ErrLimited = errors.New("rate limit exceeded")

// anonymous keys the one bucket shared by calls without a verified identity (none should
// reach here behind the bank's credentials and authorization).
const anonymous = ""

// Defaults; New sets them in one place.
const (
	// DefaultMaxIdentities bounds how many buckets are kept; beyond it the least recently
	// used one is dropped (its identity starts again with a full bucket).
	DefaultMaxIdentities = 10000
)

// Option configures New.
type Option func(*Limiter)

// WithMaxIdentities bounds the number of buckets kept (default DefaultMaxIdentities).
func WithMaxIdentities(n int) Option {
	return func(l *Limiter) { l.maxEntries = n }
}

// WithClock sets the clock buckets refill by (default time.Now), for tests.
func WithClock(now func() time.Time) Option {
	return func(l *Limiter) { l.now = now }
}

// WithIdentityLimit gives one identity its own rate and burst instead of the default,
// e.g. rate.Inf for the payments service calling accounts on behalf of users it has
// already limited at its own edge.
func WithIdentityLimit(id spiffeid.ID, limit rate.Limit, burst int) Option {
	return func(l *Limiter) { l.overrides[id.String()] = bucketSpec{limit, burst} }
}

type bucketSpec struct {
	limit rate.Limit
	burst int
}

// idleAfter is how long a bucket left alone takes to fill up again; after that it is
// indistinguishable from a new one and can be dropped.
func (s bucketSpec) idleAfter() time.Duration {
	if s.limit == rate.Inf || s.limit <= 0 {
		return 0
	}
	secs := float64(s.burst) / float64(s.limit)
	if secs >= math.MaxInt64/float64(time.Second) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(secs * float64(time.Second))
}

// Limiter is a token bucket per caller SPIFFE ID. It implements the Limiter interface of
// go-grpc-middleware's interceptors/ratelimit. Memory is bounded: buckets idle long enough
// to be full again are dropped as calls come in, and at most maxEntries are kept.
type Limiter struct {
	def        bucketSpec
	overrides  map[string]bucketSpec
	maxEntries int
	now        func() time.Time

	mu      sync.Mutex
	entries map[string]*list.Element // of *entry
	lru     list.List                // front: most recently used
}

type entry struct {
	key      string
	bucket   *rate.Limiter
	lastUsed time.Time
	idle     time.Duration
}

// New returns a Limiter allowing each identity limit calls per second on average and
// bursts of up to burst calls. limit must be positive (rate.Inf disables limiting) and
// burst at least 1.
func New(limit rate.Limit, burst int, opts ...Option) (*Limiter, error) {
	l := &Limiter{
		def:        bucketSpec{limit, burst},
		overrides:  make(map[string]bucketSpec),
		maxEntries: DefaultMaxIdentities,
		now:        time.Now,
		entries:    make(map[string]*list.Element),
	}
	for _, opt := range opts {
		opt(l)
	}
	if err := l.def.validate(); err != nil {
		return nil, fmt.Errorf("ratelimit: %w", err)
	}
	for id, s := range l.overrides {
		if err := s.validate(); err != nil {
			return nil, fmt.Errorf("ratelimit: %s: %w", id, err)
		}
	}
	if l.maxEntries < 1 {
		return nil, fmt.Errorf("ratelimit: max identities %d, want at least 1", l.maxEntries)
	}
	return l, nil
}

func (s bucketSpec) validate() error {
	switch {
	case s.limit == rate.Inf:
		return nil
	case s.limit <= 0 || math.IsNaN(float64(s.limit)):
		return fmt.Errorf("rate %v per second, want more than 0", float64(s.limit))
	case s.burst < 1:
		return fmt.Errorf("burst %d, want at least 1", s.burst)
	}
	return nil
}

// Limit takes a token from the bucket of the caller in ctx: the identity the
// authorization interceptor stored (identity.FromContext), else the verified peer
// certificate's (identity.FromPeer). It returns ErrLimited when the bucket is empty.
func (l *Limiter) Limit(ctx context.Context) error {
	key := anonymous
	if id, ok := identity.FromContext(ctx); ok {
		key = id.ID.String()
	} else if p, _ := peer.FromContext(ctx); p != nil {
		if id, err := identity.OfPeer(p); err == nil { // read only: no copy
			key = id.ID.String()
		}
	}
	if l.Allow(key) {
		return nil
	}
	return ErrLimited
}

// Allow takes a token from key's bucket (a SPIFFE ID) and reports whether there was one.
func (l *Limiter) Allow(key string) bool {
	spec, ok := l.overrides[key]
	if !ok {
		spec = l.def
	}
	if spec.limit == rate.Inf {
		return true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evictIdle(now)
	var e *entry
	if el, ok := l.entries[key]; ok {
		e = el.Value.(*entry)
		l.lru.MoveToFront(el)
	} else {
		if l.lru.Len() >= l.maxEntries {
			l.remove(l.lru.Back())
		}
		e = &entry{key: key, bucket: rate.NewLimiter(spec.limit, spec.burst), idle: spec.idleAfter()}
		l.entries[key] = l.lru.PushFront(e)
	}
	e.lastUsed = now
	return e.bucket.AllowN(now, 1)
}

// Len returns the number of buckets kept.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

// evictIdle drops, from the least recently used end, buckets that have refilled: the
// sweep costs nothing when there are none and needs no goroutine.
func (l *Limiter) evictIdle(now time.Time) {
	for el := l.lru.Back(); el != nil; el = l.lru.Back() {
		e := el.Value.(*entry)
		if now.Sub(e.lastUsed) < e.idle {
			return
		}
		l.remove(el)
	}
}

func (l *Limiter) remove(el *list.Element) {
	delete(l.entries, el.Value.(*entry).key)
	l.lru.Remove(el)
}

// UnaryServerInterceptor returns go-grpc-middleware's ratelimit interceptor over l: a
// caller over its rate gets codes.ResourceExhausted.
func (l *Limiter) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return grpcratelimit.UnaryServerInterceptor(l)
}

// StreamServerInterceptor returns the streaming counterpart: opening a stream takes a token.
func (l *Limiter) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return grpcratelimit.StreamServerInterceptor(l)
}
