package grpcserver

import (
	"time"

	"google.golang.org/grpc"
)

// Option configures New.
type Option func(*options)

type options struct {
	maxRecvMsgSize       int
	maxConcurrentStreams uint32
	connectionTimeout    time.Duration
	keepaliveMinTime     time.Duration
	keepaliveTime        time.Duration
	keepaliveTimeout     time.Duration
	handshakeHook        func(error)
	serverOptions        []grpc.ServerOption
}

// defaults is the one place where the server's defaults are set.
func defaults() options {
	return options{
		maxRecvMsgSize:       4 << 20,
		maxConcurrentStreams: 128,
		connectionTimeout:    10 * time.Second,
		keepaliveMinTime:     30 * time.Second,
		keepaliveTime:        2 * time.Minute,
		keepaliveTimeout:     20 * time.Second,
	}
}

// WithMaxRecvMsgSize limits the size of one received message (default 4 MiB).
func WithMaxRecvMsgSize(n int) Option {
	return func(o *options) { o.maxRecvMsgSize = n }
}

// WithMaxConcurrentStreams limits concurrent streams per connection (default 128).
func WithMaxConcurrentStreams(n uint32) Option {
	return func(o *options) { o.maxConcurrentStreams = n }
}

// WithConnectionTimeout bounds the TLS handshake of a new connection, so that a client
// that connects and stays silent is dropped (default 10s; grpc-go's own is 120s).
func WithConnectionTimeout(d time.Duration) Option {
	return func(o *options) { o.connectionTimeout = d }
}

// WithKeepaliveMinTime is the shortest interval between client pings the server tolerates
// before closing the connection with "too many pings" (default 30s).
func WithKeepaliveMinTime(d time.Duration) Option {
	return func(o *options) { o.keepaliveMinTime = d }
}

// WithHandshakeFailureHook calls fn with the error (a *tlsconfig.HandshakeError) of every
// rejected TLS handshake, after the server has logged it; such connections never reach an
// interceptor. tlsconfig.FailureReason classifies the error.
func WithHandshakeFailureHook(fn func(err error)) Option {
	return func(o *options) { o.handshakeHook = fn }
}

// WithServerOptions appends raw grpc.ServerOptions after the ones New sets. Interceptors
// added this way run inside (after) the built-in chain.
func WithServerOptions(opts ...grpc.ServerOption) Option {
	return func(o *options) { o.serverOptions = append(o.serverOptions, opts...) }
}
