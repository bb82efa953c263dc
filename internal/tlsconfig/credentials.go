package tlsconfig

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"

	"mtlsbank/internal/identity"
)

// CredentialsOption configures ServerCredentials.
type CredentialsOption func(*serverCreds)

// WithHandshakeFailureHook calls fn with the error, a *HandshakeError, of every failed
// server handshake (rejections never reach an interceptor; this is where they can be
// logged and counted). FailureReason classifies the error.
func WithHandshakeFailureHook(fn func(err error)) CredentialsOption {
	return func(c *serverCreds) { c.onFailure = fn }
}

// ServerCredentials returns gRPC transport credentials serving ServerConfig(src). Each
// accepted connection's AuthInfo is an *identity.AuthInfo holding the peer identity derived
// once at handshake time.
func ServerCredentials(src *Source, opts ...CredentialsOption) credentials.TransportCredentials {
	c := &serverCreds{TransportCredentials: credentials.NewTLS(ServerConfig(src)), src: src}
	for _, opt := range opts {
		opt(c)
	}
	return c
}

type serverCreds struct {
	credentials.TransportCredentials
	src       *Source
	onFailure func(error)
}

// HandshakeError is a failed server handshake and the client it was with.
type HandshakeError struct {
	Remote net.Addr
	Err    error
}

// Error names the client and the failure.
func (e *HandshakeError) Error() string {
	return fmt.Sprintf("TLS handshake with %v: %v", e.Remote, e.Err)
}

// Unwrap returns the underlying failure.
func (e *HandshakeError) Unwrap() error { return e.Err }

// ServerHandshake runs the TLS handshake (ServerConfig's checks included), reports and
// lingers on failure, and on success returns an *identity.AuthInfo.
func (c *serverCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	lc := &lingeringConn{Conn: raw}
	lc.deferClose.Store(true)
	conn, ai, err := c.TransportCredentials.ServerHandshake(lc)
	if err != nil {
		err = &HandshakeError{Remote: raw.RemoteAddr(), Err: err}
		c.fail(err)
		if r := FailureReason(err); r == ReasonTimeout || r == ReasonClosed {
			lc.deferClose.Store(false)
			lc.Close() // nobody is listening for an alert
		} else {
			lc.linger()
		}
		return nil, nil, err
	}
	lc.deferClose.Store(false)
	id, err := c.identity(ai)
	if err != nil {
		conn.Close()
		err = &HandshakeError{Remote: raw.RemoteAddr(), Err: err}
		c.fail(err)
		return nil, nil, err
	}
	return conn, id, nil
}

func (c *serverCreds) identity(ai credentials.AuthInfo) (*identity.AuthInfo, error) {
	tlsInfo, ok := ai.(credentials.TLSInfo)
	if !ok {
		return nil, fmt.Errorf("tlsconfig: unexpected auth info %T", ai)
	}
	chains := tlsInfo.State.VerifiedChains
	if len(chains) == 0 || len(chains[0]) == 0 {
		return nil, ErrNoVerifiedChain
	}
	id, err := identity.FromCertificate(chains[0][0], c.src.td)
	if err != nil {
		return nil, err
	}
	id.Chain = chains[0]
	return &identity.AuthInfo{TLSInfo: tlsInfo, Identity: id}, nil
}

// Lingering after a rejected handshake: with TLS 1.3 the client finishes its handshake
// before the server has checked the client certificate, writes its HTTP/2 preface, and only
// then reads the server's alert. Closing at once would make the client's write fail with
// "broken pipe" or "connection reset" (the kernel may even discard the unread alert), so the
// rejected user would never learn why. Instead the connection stays open for a bounded time,
// discarding what the client sends, until the client hangs up.
const (
	lingerTimeout = 2 * time.Second
	lingerBytes   = 64 << 10
)

// lingeringConn defers Close during the handshake so that a failed handshake can linger.
type lingeringConn struct {
	net.Conn
	deferClose atomic.Bool
}

func (l *lingeringConn) Close() error {
	if l.deferClose.Load() {
		return nil
	}
	return l.Conn.Close()
}

// linger drains the client's bytes until it hangs up, lingerTimeout passes or lingerBytes
// are read, then closes.
func (l *lingeringConn) linger() {
	l.deferClose.Store(false)
	if err := l.Conn.SetReadDeadline(time.Now().Add(lingerTimeout)); err == nil {
		_, _ = io.CopyN(io.Discard, l.Conn, lingerBytes)
	}
	l.Conn.Close()
}

func (c *serverCreds) fail(err error) {
	if c.onFailure != nil {
		c.onFailure(err)
	}
}

func (c *serverCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, fmt.Errorf("tlsconfig: server credentials used by a client")
}

func (c *serverCreds) Clone() credentials.TransportCredentials {
	return &serverCreds{TransportCredentials: c.TransportCredentials.Clone(), src: c.src, onFailure: c.onFailure}
}

// ClientCredentials returns gRPC transport credentials dialing with ClientConfig. The
// config is rebuilt for every connection, so a swapped certificate or bundle in src is
// used by the next connection.
func ClientCredentials(src *Source, serverName string, opts ...ClientOption) credentials.TransportCredentials {
	return &clientCreds{src: src, serverName: serverName, opts: opts}
}

type clientCreds struct {
	src        *Source
	serverName string
	opts       []ClientOption
}

func (c *clientCreds) tls() credentials.TransportCredentials {
	return credentials.NewTLS(ClientConfig(c.src, c.serverName, c.opts...))
}

func (c *clientCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return c.tls().ClientHandshake(ctx, authority, raw)
}

func (c *clientCreds) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, fmt.Errorf("tlsconfig: client credentials used by a server")
}

func (c *clientCreds) Info() credentials.ProtocolInfo { return c.tls().Info() }

func (c *clientCreds) Clone() credentials.TransportCredentials {
	return &clientCreds{src: c.src, serverName: c.serverName, opts: append([]ClientOption(nil), c.opts...)}
}

// OverrideServerName is deprecated in grpc but still part of the interface.
func (c *clientCreds) OverrideServerName(name string) error {
	c.serverName = name
	return nil
}
