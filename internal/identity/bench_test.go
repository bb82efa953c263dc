package identity_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
)

// BenchmarkFromCertificate measures deriving an identity from a verified leaf, per key
// type: the checks, the SPIFFE ID parse, the serial in hex and the SHA-256 fingerprint.
// The bank's server credentials pay it once per connection, at handshake.
func BenchmarkFromCertificate(b *testing.B) {
	p := pkitest.New(b)
	for _, kt := range []pki.KeyType{pki.ECDSAP256, pki.Ed25519, pki.RSA2048} {
		b.Run(string(kt), func(b *testing.B) {
			leaf := p.Client(b, "spiffe://bank.local/customer/alice", pki.WithKeyType(kt)).Cert
			if _, err := identity.FromCertificate(leaf, td); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := identity.FromCertificate(leaf, td); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFromPeer measures what an RPC pays to learn its caller: with the bank's
// AuthInfo (the identity derived at handshake) it is a context lookup and a copy; with a
// plain credentials.TLSInfo (a server not using the bank's credentials) it parses the
// verified leaf on every call.
func BenchmarkFromPeer(b *testing.B) {
	p := pkitest.New(b)
	leaf := p.Client(b, "spiffe://bank.local/customer/alice")
	cached, err := identity.FromCertificate(leaf.Cert, td)
	if err != nil {
		b.Fatal(err)
	}
	state := tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf.Cert, p.Intermediate.Cert, p.Root.Cert}}}
	tests := []struct {
		name     string
		authInfo credentials.AuthInfo
	}{
		{name: "bank AuthInfo", authInfo: identity.AuthInfo{Identity: cached}},
		{name: "plain TLSInfo", authInfo: credentials.TLSInfo{State: state}},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{}, AuthInfo: tt.authInfo})
			if id, err := identity.FromPeer(ctx); err != nil || id.ID != cached.ID {
				b.Fatalf("FromPeer() = %v, %v", id.ID, err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := identity.FromPeer(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
