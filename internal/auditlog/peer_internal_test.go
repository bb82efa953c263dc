package auditlog

import (
	"math/rand/v2"
	"net"
	"testing"
)

// TestAppendPeerMatchesString: the peer field is the address as its String method
// writes it, whatever the address: IPv4 in 4 or 16 bytes, IPv6 of every shape (zeros
// to compress, embedded IPv4), zones, odd ports, no IP, a nil address, other types.
func TestAppendPeerMatchesString(t *testing.T) {
	addrs := []net.Addr{
		&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 443},
		&net.TCPAddr{IP: net.IPv4(10, 1, 2, 3).To4(), Port: 0},
		&net.TCPAddr{IP: net.IPv6loopback, Port: 65535},
		&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 8443, Zone: "eth0"},
		&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 1, Zone: `we"ird`},
		&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 9},
		&net.TCPAddr{IP: net.ParseIP("::192.0.2.1"), Port: 9},
		&net.TCPAddr{IP: net.ParseIP("2001:db8::"), Port: 80},
		&net.TCPAddr{IP: net.ParseIP("2001:db8:0:0:1:0:0:1"), Port: 80},
		&net.TCPAddr{IP: net.IPv6zero, Port: 80},
		&net.TCPAddr{IP: nil, Port: 80},
		&net.TCPAddr{IP: net.IP{1, 2, 3}, Port: 80}, // malformed length
		&net.TCPAddr{IP: net.IPv4(1, 2, 3, 4), Port: -1},
		&net.TCPAddr{IP: net.IPv4(1, 2, 3, 4), Port: 70000},
		(*net.TCPAddr)(nil),
		&net.UnixAddr{Name: "/run/bank.sock", Net: "unix"},
		&net.UDPAddr{IP: net.IPv4(1, 2, 3, 4), Port: 53},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		ip := make(net.IP, []int{4, 16, 16}[r.IntN(3)])
		for i := range ip {
			// Few distinct bytes, so that runs of zeros and embedded IPv4 come up often.
			ip[i] = []byte{0, 0, 0, 1, 0xff, byte(r.Uint32())}[r.IntN(6)]
		}
		if len(ip) == 16 && r.IntN(4) == 0 {
			ip[10], ip[11] = 0xff, 0xff
			clear(ip[:10])
		}
		addrs = append(addrs, &net.TCPAddr{IP: ip, Port: r.IntN(70000)})
	}
	for _, a := range addrs {
		want := string(appendField(nil, "peer", a.String()))
		if got := string(appendPeer(nil, a)); got != want {
			t.Fatalf("appendPeer(%#v) = %s, want %s", a, got, want)
		}
	}
}

func BenchmarkAppendPeer(b *testing.B) {
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50123}
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendPeer(buf[:0], addr)
	}
}
