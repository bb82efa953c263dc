package grpcserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"mtlsbank/internal/identity"
	"mtlsbank/internal/telemetry"
	"mtlsbank/internal/tlsconfig"
)

// connTracker is the registry of the server's open, authenticated connections: every
// successful handshake registers its connection and peer identity, closing unregisters.
// It closes the connections whose chain stops checking (Recheck), and tells a client to
// go away ahead of the NotAfter of its certificate, or of the server's own certificate
// presented on that connection, whichever comes first (drain), closing at that NotAfter:
// with short-lived certificates (SPIFFE SVIDs) both sides rotate, and a client re-checks
// the server's chain on every call.
type connTracker struct {
	src     *tlsconfig.Source
	logger  *slog.Logger
	metrics *telemetry.Metrics
	minLead time.Duration // the least time before NotAfter a drain starts; <0: no drain
	mu      sync.Mutex
	conns   map[*serverConn]struct{}
}

// serverConn is a connection that completed its handshake: the TLS connection, the
// identity it authenticated, and the frame writer through which a GOAWAY can be injected.
type serverConn struct {
	net.Conn
	t      *connTracker
	auth   *identity.AuthInfo
	fw     *frameWriter
	timers []*time.Timer

	closeOnce sync.Once
	closeErr  error
}

// Write goes through the frame writer.
func (c *serverConn) Write(p []byte) (int, error) { return c.fw.Write(p) }

// Close unregisters and closes the connection (once).
func (c *serverConn) Close() error {
	c.close()
	return c.closeErr
}

// close is Close, reporting whether this call closed the connection (false: it was
// closed already, or is being closed by another goroutine).
func (c *serverConn) close() (closed bool) {
	c.closeOnce.Do(func() {
		closed = true
		c.t.mu.Lock()
		delete(c.t.conns, c)
		for _, tm := range c.timers {
			tm.Stop()
		}
		c.t.mu.Unlock()
		c.closeErr = c.Conn.Close()
	})
	return closed
}

func newConnTracker(src *tlsconfig.Source, logger *slog.Logger, m *telemetry.Metrics, minLead time.Duration) *connTracker {
	return &connTracker{src: src, logger: logger, metrics: m, minLead: minLead, conns: make(map[*serverConn]struct{})}
}

// trackingCreds wraps the server's transport credentials so that every connection they
// accept is registered with the tracker.
type trackingCreds struct {
	credentials.TransportCredentials
	t *connTracker
}

// ServerHandshake handshakes (every check of tlsconfig included) and registers the
// connection. It then checks the chain once more: a reload that lands between the
// handshake's checks and the registration would otherwise miss the connection until
// the next periodic recheck.
func (c trackingCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	before := c.t.src.Certificate()
	conn, ai, err := c.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		return nil, nil, err
	}
	auth, ok := ai.(*identity.AuthInfo)
	if !ok {
		conn.Close()
		return nil, nil, fmt.Errorf("grpcserver: unexpected auth info %T", ai)
	}
	// The peer is authenticated: its connection leaves the strangers' budget, unless it
	// lost its slot there to a newcomer an instant ago.
	if lc, ok := raw.(*limitedConn); ok && !lc.handshakeDone() {
		conn.Close()
		return nil, nil, &tlsconfig.HandshakeError{Remote: raw.RemoteAddr(), Err: errEvicted}
	}
	sc := c.t.add(conn, auth, presented(before, c.t.src.Certificate()))
	if err := c.t.src.CheckChain(auth.Identity.Chain); err != nil {
		c.t.closeFailed(sc, err)
		return nil, nil, &tlsconfig.HandshakeError{Remote: raw.RemoteAddr(), Err: err}
	}
	return sc, ai, nil
}

// errEvicted: a connection still handshaking gave its slot to a newcomer from a source
// holding fewer handshaking connections.
var errEvicted = errors.New("handshaking slot given to another source")

// Clone keeps the same tracker.
func (c trackingCreds) Clone() credentials.TransportCredentials {
	return trackingCreds{TransportCredentials: c.TransportCredentials.Clone(), t: c.t}
}

// presented returns the server certificate a handshake presented, given the source's
// certificate before and after it: the same one, or, if a rotation came in between, the
// one that expires first (the drain must come before the presented one's NotAfter).
func presented(before, after *tls.Certificate) *x509.Certificate {
	switch {
	case before == nil || before.Leaf == nil:
		if after == nil {
			return nil
		}
		return after.Leaf
	case after == nil || after.Leaf == nil || before.Leaf.NotAfter.Before(after.Leaf.NotAfter):
		return before.Leaf
	}
	return after.Leaf
}

// add registers conn and schedules its drain and its close at the earliest NotAfter of
// the peer's chain and own, the server's certificate presented on the connection.
func (t *connTracker) add(conn net.Conn, auth *identity.AuthInfo, own *x509.Certificate) *serverConn {
	sc := &serverConn{Conn: conn, t: t, auth: auth, fw: newFrameWriter(conn)}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.conns[sc] = struct{}{}
	certs := auth.Identity.Chain
	if own != nil {
		certs = append(append([]*x509.Certificate(nil), certs...), own)
	}
	if notAfter, lifetime, ok := chainWindow(certs); ok && t.minLead >= 0 {
		whose := "peer"
		if own != nil && own.NotAfter.Equal(notAfter) {
			whose = "server"
		}
		now := time.Now()
		if at, ok := drainTime(now, notAfter, lifetime, t.minLead); ok {
			sc.timers = append(sc.timers, time.AfterFunc(at.Sub(now), func() { t.drain(sc, notAfter, whose) }))
		}
		sc.timers = append(sc.timers, time.AfterFunc(notAfter.Sub(now), func() { t.expire(sc, notAfter, whose) }))
	}
	return sc
}

// minDrainNotice is the least time before the NotAfter worth a GOAWAY: less, and the
// connection is only closed at the NotAfter.
const minDrainNotice = time.Second

// drainTime is when a connection opened at now, whose chain's earliest NotAfter is
// notAfter (on a certificate living lifetime), is told to go away: lead before the
// NotAfter, lead being 10% of the lifetime or minLead if longer. A connection opened
// after that point (its client has not rotated yet, or reconnected with the same
// certificate) is drained halfway to the NotAfter instead, so that a client rotating late
// still moves gracefully and one that never rotates reconnects a logarithmic number of
// times, not in a loop. ok is false when too little time is left for a drain.
func drainTime(now, notAfter time.Time, lifetime, minLead time.Duration) (at time.Time, ok bool) {
	at = notAfter.Add(-max(lifetime/10, minLead))
	if !at.After(now) {
		at = now.Add(notAfter.Sub(now) / 2)
	}
	return at, notAfter.Sub(at) >= minDrainNotice
}

// chainWindow returns the earliest NotAfter of chain and the lifetime of the certificate
// that has it.
func chainWindow(chain []*x509.Certificate) (notAfter time.Time, lifetime time.Duration, ok bool) {
	for _, c := range chain {
		if c == nil {
			continue
		}
		if !ok || c.NotAfter.Before(notAfter) {
			notAfter, lifetime, ok = c.NotAfter, c.NotAfter.Sub(c.NotBefore), true
		}
	}
	return notAfter, lifetime, ok
}

// drain sends the graceful GOAWAY: the client opens its next streams on a new
// connection, with the certificate it has rotated to by then, while the calls running
// here finish.
func (t *connTracker) drain(sc *serverConn, notAfter time.Time, whose string) {
	sent, err := sc.fw.inject(gracefulGoAway())
	if !sent {
		return
	}
	if err != nil {
		t.logger.Debug("GOAWAY before certificate expiry not written", "err", err.Error())
		return
	}
	id := sc.auth.Identity
	t.logger.Info("connection drained ahead of certificate expiry", "spiffe_id", id.ID.String(), "serial", id.SerialHex,
		"expiring", whose, "not_after", notAfter.UTC().Format(time.RFC3339), "remote", sc.RemoteAddr().String())
	if t.metrics != nil {
		t.metrics.ObserveConnectionDrain()
	}
}

// expire closes a connection whose chain reached its NotAfter: its client was told to go
// away and had the drain lead to move.
func (t *connTracker) expire(sc *serverConn, notAfter time.Time, whose string) {
	t.mu.Lock()
	_, open := t.conns[sc]
	t.mu.Unlock()
	if !open {
		return
	}
	id := sc.auth.Identity
	t.logger.Info("connection closed at certificate expiry", "spiffe_id", id.ID.String(), "serial", id.SerialHex,
		"expiring", whose, "not_after", notAfter.UTC().Format(time.RFC3339), "remote", sc.RemoteAddr().String())
	if t.metrics != nil {
		t.metrics.ObserveConnectionClosed(telemetry.ClosedDrained)
	}
	sc.Close()
}

// recheck checks every open connection's chain with the source's CheckChain and closes
// those that fail; it returns how many it closed.
func (t *connTracker) recheck() int {
	t.mu.Lock()
	conns := make([]*serverConn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	closed := 0
	for _, c := range conns {
		if err := t.src.CheckChain(c.auth.Identity.Chain); err != nil && t.closeFailed(c, err) {
			closed++
		}
	}
	return closed
}

// closeFailed closes a connection whose chain failed err, logging and counting it once:
// a reload's recheck, the periodic one and a call's check may find the same connection
// failed at the same time, and only the one that closes it reports it (true).
func (t *connTracker) closeFailed(c *serverConn, err error) bool {
	if !c.close() {
		return false
	}
	id := &c.auth.Identity
	reason := tlsconfig.FailureReason(err)
	t.logger.Warn("connection closed: peer credentials no longer valid", "spiffe_id", id.ID.String(), "serial", id.SerialHex,
		"reason", reason, "err", err.Error(), "remote", c.RemoteAddr().String())
	if t.metrics != nil {
		t.metrics.ObserveConnectionClosed(reason)
	}
	return true
}

// snapshot lists the open connections.
func (t *connTracker) snapshot() []ConnInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]ConnInfo, 0, len(t.conns))
	for c := range t.conns {
		out = append(out, ConnInfo{ID: c.auth.Identity.ID.String(), Serial: c.auth.Identity.SerialHex, Remote: c.RemoteAddr()})
	}
	return out
}

// ConnInfo describes an open connection of the server.
type ConnInfo struct {
	// ID is the peer's SPIFFE ID and Serial its leaf's serial (hex).
	ID, Serial string
	// Remote is the peer's address.
	Remote net.Addr
}

// Connections lists the server's open, authenticated connections.
func (s *Server) Connections() []ConnInfo { return s.conns.snapshot() }

// RecheckConnections re-checks the certificate chain of every open connection with the
// source's CheckChain (revocation, expiry, trust) and closes those that fail: their
// streams end, their clients reconnect and are refused at the handshake. Each closing is
// logged (SPIFFE ID, serial, reason) and counted in bank_connections_closed_total. Call
// it after every reload of TLS material; RunConnectionChecks calls it periodically. It
// returns how many connections it closed.
func (s *Server) RecheckConnections() int { return s.conns.recheck() }

// RunConnectionChecks calls RecheckConnections every interval until ctx ends, so that
// a revocation or an expiry reaches open connections within one interval even without
// a reload.
func (s *Server) RunConnectionChecks(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		return
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.conns.recheck()
		}
	}
}

type checkerKey struct{}

// CheckCaller re-checks the certificate chain of the caller of a call served by a Server
// against the current CRL, bundle and clock. It returns nil while the chain is good, and
// an Unauthenticated status (generic message; the detail is logged) once it is not, or
// when ctx is not a call of a Server. A long-lived stream calls it before each message
// it sends, so that nothing is delivered to a peer after its revocation took effect.
func CheckCaller(ctx context.Context) error {
	t, ok := ctx.Value(checkerKey{}).(*connTracker)
	if !ok {
		return status.Error(codes.Unauthenticated, "no usable client identity")
	}
	id, err := identity.FromPeer(ctx)
	if err == nil {
		err = t.src.CheckChain(id.Chain)
	}
	if err != nil {
		method, _ := grpc.Method(ctx)
		t.logger.WarnContext(ctx, "call stopped: caller credentials no longer valid", "method", method,
			"spiffe_id", id.ID.String(), "serial", id.SerialHex, "reason", tlsconfig.FailureReason(err), "err", err.Error())
		return status.Error(codes.Unauthenticated, "no usable client identity")
	}
	return nil
}

// checkerStreamInterceptor makes CheckCaller work in the stream's handler.
func (t *connTracker) checkerStreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		w := middleware.WrapServerStream(ss)
		w.WrappedContext = context.WithValue(ss.Context(), checkerKey{}, t)
		return handler(srv, w)
	}
}
