package grpcserver_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

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

// silentFlood keeps workers silent TCP connections open from each of ips, reopening each
// one as soon as the server drops it (the attack: the handshake timeout, a refusal or an
// eviction frees a slot, the attacker takes it again). It is bounded: every worker dials
// at most maxDials times, and everything stops and closes at the test's end.
type silentFlood struct {
	stop chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	stopped bool
	open    map[net.Conn]struct{}
}

func startSilentFlood(tb testing.TB, addr string, ips []string, workers, maxDials int) *silentFlood {
	tb.Helper()
	f := &silentFlood{stop: make(chan struct{}), open: make(map[net.Conn]struct{})}
	for _, ip := range ips {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
		for range workers {
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				for range maxDials {
					select {
					case <-f.stop:
						return
					default:
					}
					c, err := d.Dial("tcp", addr)
					if err != nil {
						continue // reset by a refusal before connect returned
					}
					f.mu.Lock()
					if f.stopped {
						f.mu.Unlock()
						c.Close()
						return
					}
					f.open[c] = struct{}{}
					f.mu.Unlock()
					_, _ = c.Read(make([]byte, 1)) // until the server drops it, or the end
					c.Close()
					f.mu.Lock()
					delete(f.open, c)
					f.mu.Unlock()
				}
			}()
		}
	}
	tb.Cleanup(func() {
		close(f.stop)
		f.mu.Lock()
		f.stopped = true
		for c := range f.open {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

// TestHandshakingBudget: strangers flood the server with silent TCP connections from
// eight addresses (six connections each, each reopened as soon as it is dropped; more
// than the 32 connection slots) while a client from another address connects afresh
// for each of its calls, as bankctl does, and an authenticated peer holds its
// connection. With the handshaking caps, the strangers are held to 12 slots (3 per
// address), the client's handshakes take the slot of a stranger from the address
// holding the most, and every call succeeds. Without them (the control), the flood
// takes every slot and the client's calls fail: the flood is strong enough to matter.
func TestHandshakingBudget(t *testing.T) {
	floodIPs := []string{"127.0.0.10", "127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14", "127.0.0.15", "127.0.0.16", "127.0.0.17"}
	const maxConns, hsTotal, hsPer, calls = 32, 12, 3, 10
	tests := []struct {
		name          string
		total, perSrc int
		wantCallsOK   bool
	}{
		{name: "handshaking caps", total: hsTotal, perSrc: hsPer, wantCallsOK: true},
		{name: "no handshaking caps (control)", wantCallsOK: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := telemetry.NewMetrics()
			h := start(t, "tcp", grpcserver.WithMetrics(m), grpcserver.WithMaxConnections(maxConns, maxConns),
				grpcserver.WithMaxHandshaking(tc.total, tc.perSrc), grpcserver.WithConnectionTimeout(time.Minute))
			gauge := func(name string) float64 { return counterValue(t, m, name, nil) }
			refused := func(reason string) float64 {
				return counterValue(t, m, "bank_connections_refused_total", map[string]string{"reason": reason})
			}
			held := h.connectFrom(t, "127.0.0.3")
			if _, err := echo(t.Context(), held, "before the flood"); err != nil {
				t.Fatal(err)
			}

			startSilentFlood(t, h.addr, floodIPs, 6, 200)
			if tc.total > 0 {
				waitFor(t, func() bool {
					return gauge("bank_connections_handshaking") == hsTotal && refused(telemetry.RefusedHandshakingPerSource) > 0
				})
			} else {
				waitFor(t, func() bool { return gauge("bank_connections_open") == maxConns && refused(telemetry.RefusedTotal) > 0 })
			}

			failed := 0
			for i := range calls {
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				cc := h.connectFrom(t, "127.0.0.2")
				_, err := echo(ctx, cc, "during the flood")
				cancel()
				cc.Close()
				if err != nil {
					failed++
					t.Logf("call %d: %v", i, err)
					if tc.wantCallsOK {
						t.Errorf("call %d from a fresh connection during the flood: %v", i, err)
					}
				}
			}
			if !tc.wantCallsOK && failed == 0 {
				t.Errorf("every call succeeded without the handshaking caps: the flood did not reach the connection cap")
			}
			if _, err := echo(t.Context(), held, "during the flood"); err != nil {
				t.Errorf("the connection authenticated before the flood: %v", err)
			}
			if tc.total > 0 {
				if v := refused(telemetry.RefusedHandshaking); v < calls {
					t.Errorf("bank_connections_refused_total{reason=handshaking} = %v, want at least one stranger evicted per call (%d)", v, calls)
				}
				if v := gauge("bank_connections_handshaking"); v > hsTotal {
					t.Errorf("bank_connections_handshaking = %v, over the cap %d", v, hsTotal)
				}
			}
		})
	}
}
