package grpcserver_test

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"

	"mtlsbank/internal/grpcserver"
	"mtlsbank/internal/telemetry"
	"mtlsbank/internal/tlsconfig"
)

// dialFrom opens a silent TCP connection to addr from the loopback address ip. A
// connection the server refuses may be reset before connect returns; it is nil then.
func dialFrom(tb testing.TB, ip, addr string) net.Conn {
	tb.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// connectFrom dials the harness as alice from the loopback address ip.
func (h *harness) connectFrom(tb testing.TB, ip string) *grpc.ClientConn {
	tb.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	creds := tlsconfig.ClientCredentials(h.clientSource(tb, h.pki.Client(tb, "spiffe://bank.local/customer/alice")), h.serverName)
	return dial(tb, h.addr, creds, grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", addr)
	}))
}

// TestConnectionCaps: silent TCP connections (no TLS) are capped per source address and
// in total before any handshake; a refused one is counted by reason; a client from
// another address still gets in while one address floods; slots come back on close.
func TestConnectionCaps(t *testing.T) {
	m := telemetry.NewMetrics()
	h := start(t, "tcp", grpcserver.WithMetrics(m), grpcserver.WithMaxConnections(6, 3))
	refused := func(reason string) float64 {
		return counterValue(t, m, "bank_connections_refused_total", map[string]string{"reason": reason})
	}
	open := func() float64 { return counterValue(t, m, "bank_connections_open", nil) }

	var flood []net.Conn
	for range 5 {
		flood = append(flood, dialFrom(t, "127.0.0.1", h.addr))
	}
	waitFor(t, func() bool { return refused(telemetry.RefusedPerSource) == 2 && open() == 3 })

	if _, err := echo(t.Context(), h.connectFrom(t, "127.0.0.2"), "during the flood"); err != nil {
		t.Fatalf("a client from another address during the flood: %v", err)
	}
	for range 3 {
		dialFrom(t, "127.0.0.3", h.addr)
	}
	waitFor(t, func() bool { return refused(telemetry.RefusedTotal) == 1 && open() == 6 })

	for _, c := range flood {
		if c != nil {
			c.Close()
		}
	}
	waitFor(t, func() bool { return open() == 3 })
	if _, err := echo(t.Context(), h.connectFrom(t, "127.0.0.4"), "after the flood"); err != nil {
		t.Fatalf("a client once slots are free: %v", err)
	}
}
