package tlsconfig_test

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/tlsconfig"
)

var td = spiffeid.RequireTrustDomainFromString(identity.DefaultTrustDomain)

// newSource returns a Source presenting leaf and trusting p's bundle.
func newSource(tb testing.TB, p *pkitest.PKI, leaf *pki.Leaf, opts ...tlsconfig.SourceOption) *tlsconfig.Source {
	tb.Helper()
	src, err := tlsconfig.NewSource(td, leaf.TLSCertificate(), p.Bundle, opts...)
	if err != nil {
		tb.Fatalf("NewSource: %v", err)
	}
	return src
}

// handshake runs one TLS handshake over loopback TCP (buffered, unlike net.Pipe, so
// neither side's unsolicited writes, such as session tickets, can deadlock) and returns
// both sides' errors and the client's connection state. The client writes and reads one
// byte so that a TLS 1.3 rejection of its certificate (sent after the client's Finished)
// surfaces.
func handshake(tb testing.TB, server, client *tls.Config) (serverErr, clientErr error, cs tls.ConnectionState) {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer lis.Close()
	cc, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	sc, err := lis.Accept()
	if err != nil {
		tb.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	sc.SetDeadline(deadline)
	cc.SetDeadline(deadline)
	tb.Cleanup(func() { sc.Close(); cc.Close() })
	done := make(chan error, 1)
	go func() {
		s := tls.Server(sc, server)
		err := s.Handshake()
		if err == nil {
			buf := make([]byte, 1)
			if _, err = s.Read(buf); err == nil {
				_, err = s.Write(buf)
			}
		}
		s.Close()
		done <- err
	}()
	c := tls.Client(cc, client)
	clientErr = c.Handshake()
	if clientErr == nil {
		cs = c.ConnectionState()
		if _, clientErr = c.Write([]byte{1}); clientErr == nil {
			_, clientErr = c.Read(make([]byte, 1))
		}
	}
	c.Close()
	return <-done, clientErr, cs
}
