package grpcserver

import (
	"container/list"
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
//
// Connections whose mutual-TLS handshake has not completed (strangers, as far as the
// server knows) have a budget of their own, much smaller than the total, in all and per
// source: silent connections can then never take the slots of authenticated peers. When
// that budget is full, a newcomer takes the slot of the oldest handshaking connection
// of the source holding the most, if that source holds at least two more than the
// newcomer's (so that shares only ever even out, without churn between equals): a flood
// from a few addresses cannot keep a client from another address from handshaking; it
// would take as many flooding addresses as the budget has slots.
type limitListener struct {
	net.Listener
	connCaps
	metrics *telemetry.Metrics

	mu       sync.Mutex
	open     int
	bySource map[string]int
	// handshaking holds, per source, its connections still handshaking, oldest first;
	// hsCount is their number over every source.
	handshaking map[string]*list.List
	hsCount     int
	seq         uint64
}

// connCaps are the caps of a limitListener; 0: no cap.
type connCaps struct {
	total, perSource                  int
	handshaking, handshakingPerSource int
}

func newLimitListener(lis net.Listener, caps connCaps, m *telemetry.Metrics) *limitListener {
	return &limitListener{Listener: lis, connCaps: caps, metrics: m, bySource: make(map[string]int), handshaking: make(map[string]*list.List)}
}

// Accept returns the next connection within the caps, closing the others.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		lc := &limitedConn{Conn: c, l: l, src: sourceOf(c.RemoteAddr())}
		reason, evicted := l.admit(lc)
		if evicted != nil {
			l.refuse(evicted, telemetry.RefusedHandshaking)
		}
		if reason != "" {
			l.refuse(lc, reason)
			continue
		}
		if l.metrics != nil {
			l.metrics.ObserveConnectionsOpen(1)
			l.metrics.ObserveConnectionsHandshaking(1)
		}
		return lc, nil
	}
}

// refuse closes c with a reset and counts it.
func (l *limitListener) refuse(c *limitedConn, reason string) {
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	if c.admitted {
		c.Close()
	} else {
		c.Conn.Close()
	}
	if l.metrics != nil {
		l.metrics.ObserveConnectionRefused(reason)
	}
}

// admit takes a slot for c, or returns why it cannot; evicted is a handshaking
// connection that gave its slot to c, to be closed.
func (l *limitListener) admit(c *limitedConn) (reason string, evicted *limitedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	hs := l.handshakingOf(c.src)
	switch {
	case l.total > 0 && l.open >= l.total:
		return telemetry.RefusedTotal, nil
	case l.perSource > 0 && l.bySource[c.src] >= l.perSource:
		return telemetry.RefusedPerSource, nil
	case l.handshakingPerSource > 0 && hs >= l.handshakingPerSource:
		return telemetry.RefusedHandshakingPerSource, nil
	}
	if l.connCaps.handshaking > 0 && l.hsCount >= l.connCaps.handshaking {
		evicted = l.victim()
		if evicted == nil || l.handshakingOf(evicted.src) < hs+2 {
			return telemetry.RefusedHandshaking, nil
		}
		l.authenticatedLocked(evicted)
	}
	l.open++
	l.bySource[c.src]++
	q := l.handshaking[c.src]
	if q == nil {
		q = list.New()
		l.handshaking[c.src] = q
	}
	l.seq++
	c.seq, c.hs, c.admitted = l.seq, q.PushBack(c), true
	l.hsCount++
	return "", evicted
}

// handshakingOf is how many connections of src are handshaking; l.mu is held.
func (l *limitListener) handshakingOf(src string) int {
	if q := l.handshaking[src]; q != nil {
		return q.Len()
	}
	return 0
}

// victim is the oldest handshaking connection of the source that holds the most (the
// oldest among the heads of those sources on a tie). The scan is over at most
// l.handshaking sources, and runs only when that budget is full.
func (l *limitListener) victim() *limitedConn {
	var v *limitedConn
	most := 0
	for _, q := range l.handshaking {
		head := q.Front().Value.(*limitedConn)
		if n := q.Len(); n > most || n == most && head.seq < v.seq {
			v, most = head, n
		}
	}
	return v
}

// authenticatedLocked takes c out of the handshaking budget; l.mu is held. It reports
// whether c was in it.
func (l *limitListener) authenticatedLocked(c *limitedConn) bool {
	if c.hs == nil {
		return false
	}
	q := l.handshaking[c.src]
	q.Remove(c.hs)
	if q.Len() == 0 {
		delete(l.handshaking, c.src)
	}
	c.hs = nil
	l.hsCount--
	if l.metrics != nil {
		l.metrics.ObserveConnectionsHandshaking(-1)
	}
	return true
}

func (l *limitListener) release(c *limitedConn) {
	l.mu.Lock()
	l.authenticatedLocked(c)
	l.open--
	if l.bySource[c.src]--; l.bySource[c.src] <= 0 {
		delete(l.bySource, c.src)
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
	l        *limitListener
	src      string
	admitted bool // holds a slot; set before Accept returns it

	// Guarded by l.mu.
	seq uint64        // admission order
	hs  *list.Element // in l.handshaking while its handshake runs; nil after

	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c) })
	return err
}

// handshakeDone moves c out of the handshaking budget once its mutual-TLS handshake
// succeeded. It reports false if c lost its slot to a newcomer meanwhile (it is being
// closed then).
func (c *limitedConn) handshakeDone() bool {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	return c.l.authenticatedLocked(c)
}
