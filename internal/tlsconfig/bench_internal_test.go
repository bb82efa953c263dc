package tlsconfig

import (
	"crypto/x509"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"mtlsbank/internal/pki/pkitest"
)

// BenchmarkVerifyPeer is what CheckChain costs on a cache miss (the first call of a
// connection, or the first after a reload): the chain verified again against the current
// anchors and chain material, then the CRL and freshness checks. Compare with
// BenchmarkCRL/CheckChain, the cached per-call cost.
func BenchmarkVerifyPeer(b *testing.B) {
	p := pkitest.New(b)
	alice := p.Client(b, "spiffe://bank.local/customer/alice")
	src, err := NewSource(spiffeid.RequireTrustDomainFromString("bank.local"), p.Server(b, "spiffe://bank.local/service/accounts").TLSCertificate(), p.Bundle)
	if err != nil {
		b.Fatal(err)
	}
	chain := append(append([]*x509.Certificate(nil), alice.Chain...), p.Root.Cert)
	t := src.trust.Load()
	now := src.now()
	b.ReportAllocs()
	for b.Loop() {
		if v := src.verifyPeer(t, chain, now); v.err != nil {
			b.Fatal(v.err)
		}
	}
}
