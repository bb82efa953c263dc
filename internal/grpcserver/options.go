package grpcserver

import (
	"context"
	"time"

	grpcratelimit "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/ratelimit"
	"google.golang.org/grpc"

	"mtlsbank/internal/authz"
	"mtlsbank/internal/telemetry"
)

// Defaults of New, also the defaults of the services' flags. Each bounds what one
// hostile or broken client can take from the server.
const (
	// DefaultMaxRecvMsgSize limits the size of one received message. The bank's
	// largest request is well under 1 KiB; a unary request is read whole before any
	// interceptor runs, so this is memory a caller without any right can make the server
	// hold, per stream.
	DefaultMaxRecvMsgSize = 64 << 10
	// DefaultMaxConcurrentStreams limits concurrent streams (calls) per connection;
	// a client past it waits for a free stream (grpc-go queues), it does not fail.
	DefaultMaxConcurrentStreams = 64
	// DefaultMaxStreamsPerIdentity bounds the streaming calls (WatchLedger, health
	// Watch) one caller identity holds open at once, over all its connections.
	DefaultMaxStreamsPerIdentity = 32
	// DefaultMaxStreams bounds the streaming calls open at once in all (about 23 KB
	// each: some 50 MB).
	DefaultMaxStreams = 2048
	// DefaultMaxHeaderListSize limits the decoded size of one request's headers
	// (grpc-go's default is 16 MiB); a stream over it is reset before it exists.
	DefaultMaxHeaderListSize = 16 << 10
	// DefaultInitialWindowSize is the HTTP/2 flow-control window of one stream: request
	// bytes a client may send before the server has read them. Setting it also turns
	// grpc-go's BDP estimation off, which would otherwise grow windows up to 16 MiB.
	DefaultInitialWindowSize = 64 << 10
	// DefaultInitialConnWindowSize is the flow-control window of one connection, all
	// its streams together.
	DefaultInitialConnWindowSize = 256 << 10
	// DefaultBufferSize is the size of a connection's read and write buffers.
	DefaultBufferSize = 32 << 10
	// DefaultConnectionTimeout bounds the TLS handshake and HTTP/2 preface of a new
	// connection (grpc-go's own default is 120s). A TLS 1.3 mutual handshake and the
	// preface take two round trips, well under a second even across continents; each
	// second more is a second a silent stranger holds a handshaking slot.
	DefaultConnectionTimeout = 5 * time.Second
	// DefaultKeepaliveMinTime is the shortest interval between client pings tolerated.
	DefaultKeepaliveMinTime = 30 * time.Second
	// DefaultMaxConnectionAge is how long a connection lives before the server asks the
	// client to reconnect, which makes it handshake again against the current
	// certificates and CRL.
	DefaultMaxConnectionAge = 30 * time.Minute
	// DefaultMaxConnectionAgeGrace is how long calls still running on a connection past
	// its age may take before it is closed (longer than DefaultDeadline, so that only
	// streams are cut, and they resume).
	DefaultMaxConnectionAgeGrace = time.Minute
	// DefaultExpiryDrainLead is the least time before a peer certificate's NotAfter at
	// which its connection is told to go away (the lead is 10% of the certificate's
	// lifetime when that is longer).
	DefaultExpiryDrainLead = 5 * time.Second
	// DefaultMaxConnections caps the server's concurrent connections, handshaking ones
	// included (services clamp it under their file descriptor limit).
	DefaultMaxConnections = 4096
	// DefaultMaxConnectionsPerSource caps the concurrent connections of one source IP
	// address. A gRPC client holds one connection per server and multiplexes its calls
	// on it, so this is that many client processes behind one address (a NAT, a load
	// balancer that does not preserve client addresses: raise it to the total there).
	DefaultMaxConnectionsPerSource = 256
	// DefaultMaxHandshaking caps the connections whose mutual-TLS handshake has not
	// completed, in total: the budget of strangers. It is a sixteenth of
	// DefaultMaxConnections, so that connections without a verified certificate can never
	// take the slots of authenticated peers; a TLS 1.3 handshake takes two round trips,
	// so honest clients hold these slots for milliseconds.
	DefaultMaxHandshaking = 256
	// DefaultMaxHandshakingPerSource caps the handshaking connections of one source IP
	// address (behind a load balancer that hides client addresses, raise it to
	// DefaultMaxHandshaking).
	DefaultMaxHandshakingPerSource = 16
	// DefaultDeadline is the deadline a unary call gets when the client set none.
	DefaultDeadline = 30 * time.Second
)

// DefaultStreamWorkers is how many goroutines serve calls by default
// (grpc.NumStreamWorkers): a call runs on an idle one, else on a new goroutine as without
// workers. A worker keeps the stack the interceptor chain and the handlers grew it to; a
// new goroutine per call starts small and grows its stack through the chain on every
// call (runtime.newstack copying it: 12 to 16% of a WhoAmI's CPU, both ends, with no
// workers; 6 to 10% with 8; 1.4 to 4% with 64, at 50 concurrent calls: docs/benchmarks.md).
// 64 is one connection's worth of concurrent calls (DefaultMaxConcurrentStreams); an
// idle worker costs a parked goroutine and its stack, a few KiB.
const DefaultStreamWorkers = DefaultMaxConcurrentStreams

// Option configures New.
type Option func(*options)

type options struct {
	maxRecvMsgSize        int
	maxConcurrentStreams  uint32
	maxHeaderListSize     uint32
	connectionTimeout     time.Duration
	keepaliveMinTime      time.Duration
	keepaliveTime         time.Duration
	keepaliveTimeout      time.Duration
	maxConnectionAge      time.Duration
	maxConnectionAgeGrace time.Duration
	defaultDeadline       time.Duration
	streamWorkers         uint32
	expiryDrainLead       time.Duration
	maxConns, maxConnsPer int
	maxHS, maxHSPer       int
	handshakeHook         func(error)
	handshakeLogBurst     int
	handshakeLogInterval  time.Duration
	metrics               *telemetry.Metrics
	limiter               grpcratelimit.Limiter
	auditSink             authz.AuditSink
	maxStreamsPer         int
	maxStreams            int
	serverOptions         []grpc.ServerOption
	callContext           func(context.Context) context.Context
}

// defaults is the one place where the server's defaults are set.
func defaults() options {
	return options{
		maxRecvMsgSize:        DefaultMaxRecvMsgSize,
		maxConcurrentStreams:  DefaultMaxConcurrentStreams,
		maxStreamsPer:         DefaultMaxStreamsPerIdentity,
		maxStreams:            DefaultMaxStreams,
		maxHeaderListSize:     DefaultMaxHeaderListSize,
		connectionTimeout:     DefaultConnectionTimeout,
		keepaliveMinTime:      DefaultKeepaliveMinTime,
		keepaliveTime:         2 * time.Minute,
		keepaliveTimeout:      20 * time.Second,
		maxConnectionAge:      DefaultMaxConnectionAge,
		maxConnectionAgeGrace: DefaultMaxConnectionAgeGrace,
		defaultDeadline:       DefaultDeadline,
		streamWorkers:         DefaultStreamWorkers,
		expiryDrainLead:       DefaultExpiryDrainLead,
		maxConns:              DefaultMaxConnections,
		maxConnsPer:           DefaultMaxConnectionsPerSource,
		maxHS:                 DefaultMaxHandshaking,
		maxHSPer:              DefaultMaxHandshakingPerSource,
		handshakeLogBurst:     DefaultHandshakeLogBurst,
		handshakeLogInterval:  DefaultHandshakeLogInterval,
	}
}

// WithMaxRecvMsgSize limits the size of one received message (default 4 MiB).
func WithMaxRecvMsgSize(n int) Option {
	return func(o *options) { o.maxRecvMsgSize = n }
}

// WithMaxStreams bounds the streaming calls open at once: per caller identity (over all
// its connections) and in all (defaults DefaultMaxStreamsPerIdentity and
// DefaultMaxStreams; 0 for no cap). A stream past a cap is refused ResourceExhausted.
func WithMaxStreams(perIdentity, total int) Option {
	return func(o *options) { o.maxStreamsPer, o.maxStreams = perIdentity, total }
}

// WithMaxConcurrentStreams limits concurrent streams per connection (default 128).
func WithMaxConcurrentStreams(n uint32) Option {
	return func(o *options) { o.maxConcurrentStreams = n }
}

// WithMaxHeaderListSize limits the decoded size of one request's headers (default
// DefaultMaxHeaderListSize).
func WithMaxHeaderListSize(n uint32) Option {
	return func(o *options) { o.maxHeaderListSize = n }
}

// WithConnectionTimeout bounds the TLS handshake and HTTP/2 preface of a new connection,
// so that a client that connects and stays silent is dropped (default 5s; grpc-go's own
// is 120s).
func WithConnectionTimeout(d time.Duration) Option {
	return func(o *options) { o.connectionTimeout = d }
}

// WithKeepaliveMinTime is the shortest interval between client pings the server tolerates
// before closing the connection with "too many pings" (default 30s).
func WithKeepaliveMinTime(d time.Duration) Option {
	return func(o *options) { o.keepaliveMinTime = d }
}

// WithMaxConnectionAge makes the server send GOAWAY to a connection older than age (±10%
// jitter, grpc-go's) and close it grace later; clients reconnect, handshaking again
// against the current certificate, bundle and CRL. Zero means forever for either
// (defaults 30m and 1m).
func WithMaxConnectionAge(age, grace time.Duration) Option {
	return func(o *options) { o.maxConnectionAge, o.maxConnectionAgeGrace = age, grace }
}

// WithMaxConnections caps the connections Serve accepts, in total and per source IP
// address, before the TLS handshake: a connection over a cap is closed at once and
// counted in bank_connections_refused_total{reason} (defaults DefaultMaxConnections and
// DefaultMaxConnectionsPerSource; zero means no cap).
func WithMaxConnections(total, perSource int) Option {
	return func(o *options) { o.maxConns, o.maxConnsPer = total, perSource }
}

// WithMaxHandshaking caps the connections Serve holds whose mutual-TLS handshake has not
// completed (no verified client certificate yet: strangers, as far as the server
// knows), in total and per source IP address; a connection leaves this budget the
// moment its handshake succeeds. Over the per-source cap a new connection is refused;
// over the total, the oldest handshaking connection of the source holding the most is
// closed to make room, if that source holds at least two more than the newcomer's,
// otherwise the newcomer is refused. So a flood from a few addresses cannot keep a
// client from another address from handshaking, and strangers can never hold more
// than total of the WithMaxConnections slots. Each refusal is counted in
// bank_connections_refused_total{reason="handshaking"|"handshaking_per_source"}
// (defaults DefaultMaxHandshaking and DefaultMaxHandshakingPerSource; zero means no cap).
func WithMaxHandshaking(total, perSource int) Option {
	return func(o *options) { o.maxHS, o.maxHSPer = total, perSource }
}

// WithExpiryDrain sets the least time before the NotAfter of a peer's chain (its
// earliest) at which the server sends that connection a graceful GOAWAY (default
// DefaultExpiryDrainLead; the lead is 10% of the certificate's lifetime when longer).
// A client rotating short-lived certificates then reconnects with its new one before
// the old one expires, without a failed call; the connection is closed at the NotAfter.
// A negative lead turns draining off (an expired chain is still refused per call).
func WithExpiryDrain(minLead time.Duration) Option {
	return func(o *options) { o.expiryDrainLead = minLead }
}

// WithDefaultDeadline gives a unary call that arrives without a deadline this one, so
// that a handler stuck on a dependency cannot hold the call forever (default 30s; zero
// disables). Streams are left alone: a ledger watch is meant to last.
func WithDefaultDeadline(d time.Duration) Option {
	return func(o *options) { o.defaultDeadline = d }
}

// WithStreamWorkers sets how many goroutines serve calls (grpc.NumStreamWorkers; default
// DefaultStreamWorkers, 0 for a new goroutine per call).
func WithStreamWorkers(n uint32) Option {
	return func(o *options) { o.streamWorkers = n }
}

// WithHandshakeFailureHook calls fn with the error (a *tlsconfig.HandshakeError) of every
// rejected TLS handshake, after the server has logged it; such connections never reach an
// interceptor. tlsconfig.FailureReason classifies the error.
func WithHandshakeFailureHook(fn func(err error)) Option {
	return func(o *options) { o.handshakeHook = fn }
}

// WithHandshakeLogLimit limits the log lines of rejected handshakes, per reason
// (tlsconfig.FailureReason): the first burst of each interval are logged, then one line
// "TLS handshake rejections not logged" at the interval's end gives how many more there
// were (its count attribute). bank_tls_handshake_failures_total and the
// WithHandshakeFailureHook still see every one (defaults DefaultHandshakeLogBurst and
// DefaultHandshakeLogInterval; a burst of zero logs every rejection).
func WithHandshakeLogLimit(burst int, interval time.Duration) Option {
	return func(o *options) { o.handshakeLogBurst, o.handshakeLogInterval = burst, interval }
}

// WithMetrics records the server in m: grpc_server_* per method and code, authorization
// decisions, rejected handshakes by reason; Serve creates the zero series of every
// registered method.
func WithMetrics(m *telemetry.Metrics) Option {
	return func(o *options) { o.metrics = m }
}

// WithRateLimiter makes every call (a stream when it opens) take a token from l, such
// as a *ratelimit.Limiter keyed on the caller's identity; a refusal is ResourceExhausted.
// It runs before authorization, so a caller is throttled on methods it is denied too.
func WithRateLimiter(l grpcratelimit.Limiter) Option {
	return func(o *options) { o.limiter = l }
}

// WithAuditSink sends the audit record of every call to s (an *auditlog.Sink) rather
// than to the logger: see authz.WithAuditSink. Calls the rate limit refuses are not
// audited, as before.
func WithAuditSink(s authz.AuditSink) Option {
	return func(o *options) { o.auditSink = s }
}

// WithCallContext makes fn the first thing every call runs, before any interceptor: the
// context it returns is the call's, so that whatever fn puts there (the trace context of
// tracing.CallContext) is in every record of the call, the audit record included. Nil:
// nothing.
func WithCallContext(fn func(context.Context) context.Context) Option {
	return func(o *options) { o.callContext = fn }
}

// WithServerOptions appends raw grpc.ServerOptions after the ones New sets. Interceptors
// added this way with grpc.ChainUnaryInterceptor or grpc.ChainStreamInterceptor run
// inside (after) the built-in chain, so only for calls it authorized; New refuses
// grpc.UnaryInterceptor and grpc.StreamInterceptor, which would run before it.
func WithServerOptions(opts ...grpc.ServerOption) Option {
	return func(o *options) { o.serverOptions = append(o.serverOptions, opts...) }
}
