package grpcserver

import (
	"context"
	"log/slog"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"mtlsbank/internal/identity"
)

// streamCap bounds the streaming calls (WatchLedger, health Watch) that stay open: per
// caller identity and in all. Each open stream holds memory (about 23 KB) for as long as
// its connection lives, and the per-connection and connection caps alone let one
// certificate hold 256 x 64 of them from one address. Unary calls end by themselves and
// are bounded by --max-concurrent-streams per connection; they are not counted here.
type streamCap struct {
	logger         *slog.Logger
	maxPer, maxAll int
	mu             sync.Mutex
	open           map[string]int // by SPIFFE ID
	total          int
}

func newStreamCap(logger *slog.Logger, maxPer, maxAll int) *streamCap {
	return &streamCap{logger: logger, maxPer: maxPer, maxAll: maxAll, open: make(map[string]int)}
}

// acquire takes a slot for id, or reports which cap is full.
func (c *streamCap) acquire(id string) (ok bool, which string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.maxAll > 0 && c.total >= c.maxAll:
		return false, "total"
	case c.maxPer > 0 && c.open[id] >= c.maxPer:
		return false, "per_identity"
	}
	c.open[id]++
	c.total++
	return true, ""
}

func (c *streamCap) release(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total--
	if c.open[id]--; c.open[id] <= 0 {
		delete(c.open, id)
	}
}

// interceptor runs after authorization, so only a caller the policy lets open the stream
// takes a slot: strangers and refused calls hold none.
func (c *streamCap) interceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		// The authorization interceptor before this one put the caller's identity in the
		// stream's context; a stream without it never got past authorization.
		id, ok := identity.FromContext(ss.Context())
		if !ok {
			return status.Error(codes.Unauthenticated, "unauthenticated")
		}
		key := id.ID.String()
		if ok, which := c.acquire(key); !ok {
			c.logger.LogAttrs(context.Background(), slog.LevelWarn, "stream refused: too many open streams",
				slog.String("cap", which), slog.String("spiffe_id", key), slog.String("method", info.FullMethod))
			return status.Error(codes.ResourceExhausted, "too many open streams")
		}
		defer c.release(key)
		return handler(srv, ss)
	}
}
