package svidsource_test

import (
	"crypto/tls"
	"math/big"
	"net"
	"testing"
	"time"

	"mtlsbank/internal/tlsconfig"
)

// peerSerial handshakes a client of client with a server of server over loopback and
// returns the serial of the certificate the server presented.
func peerSerial(tb testing.TB, server, client *tlsconfig.Source) *big.Int {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer lis.Close()
	go func() {
		c, err := lis.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		s := tls.Server(c, tlsconfig.ServerConfig(server))
		if s.Handshake() == nil {
			s.Read(make([]byte, 1))
		}
	}()
	raw, err := net.DialTimeout("tcp", lis.Addr().String(), 10*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	c := tls.Client(raw, tlsconfig.ClientConfig(client, "localhost"))
	if err := c.Handshake(); err != nil {
		tb.Fatalf("handshake: %v", err)
	}
	return c.ConnectionState().PeerCertificates[0].SerialNumber
}
