package grpcserver

import (
	"net"
	"sync"

	"mtlsbank/internal/telemetry"
)

// limitListener caps the connections a listener hands to the server, in total and per
// source address, before any TLS: a connection over a cap is closed the moment it is
// accepted (with a reset, so that it leaves no TIME_WAIT behind) and counted, and costs
// the server one file descriptor for a few microseconds. The accept loop never stops, so
// a flood cannot keep legitimate clients from reaching the queue; it can only compete
// for the caps, which is why the per-source one matters.
type limitListener struct {
	net.Listener
	total, perSource int // 0: no cap
	metrics          *telemetry.Metrics

	mu       sync.Mutex
	open     int
	bySource map[string]int
}

func newLimitListener(lis net.Listener, total, perSource int, m *telemetry.Metrics) *limitListener {
	return &limitListener{Listener: lis, total: total, perSource: perSource, metrics: m, bySource: make(map[string]int)}
}

// Accept returns the next connection within the caps, closing the others.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := sourceOf(c.RemoteAddr())
		if reason := l.admit(src); reason != "" {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			c.Close()
			if l.metrics != nil {
				l.metrics.ObserveConnectionRefused(reason)
			}
			continue
		}
		if l.metrics != nil {
			l.metrics.ObserveConnectionsOpen(1)
		}
		return &limitedConn{Conn: c, l: l, src: src}, nil
	}
}

// admit takes a slot for src, or returns why it cannot.
func (l *limitListener) admit(src string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.total > 0 && l.open >= l.total:
		return telemetry.RefusedTotal
	case l.perSource > 0 && l.bySource[src] >= l.perSource:
		return telemetry.RefusedPerSource
	}
	l.open++
	l.bySource[src]++
	return ""
}

func (l *limitListener) release(src string) {
	l.mu.Lock()
	l.open--
	if l.bySource[src]--; l.bySource[src] <= 0 {
		delete(l.bySource, src)
	}
	l.mu.Unlock()
	if l.metrics != nil {
		l.metrics.ObserveConnectionsOpen(-1)
	}
}

// sourceOf is the address a connection is counted under: its IP, without the port.
func sourceOf(a net.Addr) string {
	if tcp, ok := a.(*net.TCPAddr); ok {
		return tcp.IP.String()
	}
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}

// limitedConn gives its slot back when closed (once).
type limitedConn struct {
	net.Conn
	l    *limitListener
	src  string
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.src) })
	return err
}
