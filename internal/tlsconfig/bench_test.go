package tlsconfig_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/big"
	"testing"
	"time"

	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/tlsconfig"
)

// crlSize is the number of revoked serials of the benchmark CRL: a large bank's worth.
const crlSize = 10_000

// bigCRL returns a PEM CRL of p's intermediate listing crlSize random serials plus the
// serials of extra.
func bigCRL(tb testing.TB, p *pkitest.PKI, extra ...*x509.Certificate) []byte {
	tb.Helper()
	serials := make([]*big.Int, 0, crlSize+len(extra))
	for range crlSize {
		s, err := pki.RandomSerial()
		if err != nil {
			tb.Fatal(err)
		}
		serials = append(serials, s)
	}
	for _, c := range extra {
		serials = append(serials, c.SerialNumber)
	}
	now := time.Now()
	der, err := p.Intermediate.CreateCRL(serials, big.NewInt(1), now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		tb.Fatal(err)
	}
	return pki.EncodeCRLPEM(der)
}

// BenchmarkCRL measures the per-RPC revocation checks against a CRL of 10k serials: a
// certificate nobody revoked (the common case, one map lookup), a revoked one (plus a
// signature check that tells apart two CAs of the same name), and the whole chain
// re-check every RPC runs (expiry and CRL for the leaf and the intermediate).
func BenchmarkCRL(b *testing.B) {
	p := pkitest.New(b)
	good := p.Client(b, "spiffe://bank.local/customer/alice")
	revoked := p.Client(b, "spiffe://bank.local/customer/mallory")
	crl, err := tlsconfig.ParseCRL(bigCRL(b, p, revoked.Cert), []*x509.Certificate{p.Intermediate.Cert})
	if err != nil {
		b.Fatal(err)
	}
	if crl.Len() != crlSize+1 {
		b.Fatalf("CRL lists %d serials, want %d", crl.Len(), crlSize+1)
	}
	src := newSource(b, p, good, tlsconfig.WithCRL(crl))
	goodChain := append(append([]*x509.Certificate(nil), good.Chain...), p.Root.Cert)

	b.Run("Revoked/not listed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if crl.Revoked(good.Cert) {
				b.Fatal("good certificate reported revoked")
			}
		}
	})
	b.Run("Revoked/listed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !crl.Revoked(revoked.Cert) {
				b.Fatal("revoked certificate not reported")
			}
		}
	})
	b.Run("CheckRevoked/not listed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := src.CheckRevoked(good.Cert); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The per-call check of an open connection whose material did not change: the
	// verification (chain against the current anchors, CRLs, freshness) is cached per leaf
	// and trust generation. BenchmarkVerifyPeer is the uncached cost, paid once per
	// connection and after every reload.
	b.Run("CheckChain/not listed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := src.CheckChain(goodChain); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("CheckRevoked/listed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := src.CheckRevoked(revoked.Cert); !errors.Is(err, tlsconfig.ErrRevoked) {
				b.Fatalf("CheckRevoked() = %v, want ErrRevoked", err)
			}
		}
	})
}

// BenchmarkParseCRL measures loading a 10k-serial CRL, what a reload costs.
func BenchmarkParseCRL(b *testing.B) {
	p := pkitest.New(b)
	data := bigCRL(b, p)
	issuers := []*x509.Certificate{p.Intermediate.Cert}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tlsconfig.ParseCRL(data, issuers); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetConfigForClient measures the config a server handshake gets: one per trust
// generation, so after the first handshake a pointer comparison.
func BenchmarkGetConfigForClient(b *testing.B) {
	p := pkitest.New(b)
	cfg := tlsconfig.ServerConfig(newSource(b, p, p.Server(b, "spiffe://bank.local/service/accounts")))
	hello := &tls.ClientHelloInfo{}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cfg.GetConfigForClient(hello); err != nil {
			b.Fatal(err)
		}
	}
}
