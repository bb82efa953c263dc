package grpcserver

import (
	"net"
	"testing"

	"mtlsbank/internal/telemetry"
)

// TestHandshakingEviction: with the handshaking budget full, a newcomer takes the slot
// of the oldest handshaking connection of the source holding the most, only if that
// source holds at least two more than the newcomer's; an authenticated connection is
// never taken.
func TestHandshakingEviction(t *testing.T) {
	type arrival struct {
		src         string
		wantReason  string
		wantEvicted int // index of the arrival evicted, -1 none
	}
	tests := []struct {
		name          string
		authenticated []int // arrivals whose handshake completes right after admission
		arrivals      []arrival
	}{
		{name: "newcomer evicts the oldest of the largest source", arrivals: []arrival{
			{"a", "", -1}, {"a", "", -1}, {"b", "", -1}, {"c", "", -1},
			{"d", "", 0},                            // a held 2, d none
			{"e", telemetry.RefusedHandshaking, -1}, // a, b, c, d hold one each: shares are even
			{"a", telemetry.RefusedHandshaking, -1},
		}},
		{name: "equal shares refuse the newcomer", arrivals: []arrival{
			{"a", "", -1}, {"a", "", -1}, {"b", "", -1}, {"b", "", -1},
			{"a", telemetry.RefusedHandshaking, -1}, // a holds 2, the most 2: no eviction
			{"c", "", 0},                            // c holds 0, a and b 2: a's oldest (a tie, the older head)
		}},
		{name: "per-source cap refuses first", arrivals: []arrival{
			{"a", "", -1}, {"a", "", -1}, {"a", "", -1},
			{"a", telemetry.RefusedHandshakingPerSource, -1},
		}},
		{name: "authenticated connections are out of the budget", authenticated: []int{0, 1, 2, 3}, arrivals: []arrival{
			{"a", "", -1}, {"a", "", -1}, {"b", "", -1}, {"c", "", -1},
			{"a", "", -1}, {"a", "", -1}, {"a", "", -1}, {"b", "", -1},
			{"c", "", 4},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLimitListener(nil, connCaps{total: 100, handshaking: 4, handshakingPerSource: 3}, nil)
			var conns []*limitedConn
			for i, a := range tt.arrivals {
				c := &limitedConn{l: l, src: a.src, Conn: nopConn{}}
				conns = append(conns, c)
				reason, evicted := l.admit(c)
				if reason != a.wantReason {
					t.Fatalf("arrival %d from %s: reason %q, want %q", i, a.src, reason, a.wantReason)
				}
				switch {
				case a.wantEvicted < 0 && evicted != nil:
					t.Fatalf("arrival %d from %s evicted a connection of %s, want none", i, a.src, evicted.src)
				case a.wantEvicted >= 0 && evicted != conns[a.wantEvicted]:
					t.Fatalf("arrival %d from %s evicted %v, want arrival %d", i, a.src, evicted, a.wantEvicted)
				}
				if evicted != nil {
					evicted.Close()
				}
				for _, j := range tt.authenticated {
					if j == i && !c.handshakeDone() {
						t.Fatalf("arrival %d: handshakeDone = false", i)
					}
				}
				if l.hsCount > 4 {
					t.Fatalf("after arrival %d: %d handshaking, over the cap 4", i, l.hsCount)
				}
			}
		})
	}
}

// nopConn is a net.Conn that only closes.
type nopConn struct{ net.Conn }

func (nopConn) Close() error { return nil }
