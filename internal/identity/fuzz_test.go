package identity_test

import (
	"crypto/x509"
	"testing"

	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
)

// FuzzFromCertificate feeds arbitrary DER to the identity extraction: whatever
// x509.ParseCertificate accepts, FromCertificate must answer without panicking, and a
// returned identity must be consistent with its certificate.
func FuzzFromCertificate(f *testing.F) {
	p := pkitest.New(f)
	seeds := []*pki.Leaf{
		p.Client(f, "spiffe://bank.local/customer/alice"),
		p.Client(f, "spiffe://bank.local/customer/alice", pki.WithKeyType(pki.RSA1024)),
		p.Client(f, "spiffe://other.example/x", pki.WithKeyType(pki.Ed25519)),
		p.Issue(f, pki.Request{CommonName: "two", SPIFFEIDs: []string{"spiffe://bank.local/a", "spiffe://bank.local/b"}}),
		p.Issue(f, pki.Request{CommonName: "ca", SPIFFEIDs: []string{"spiffe://bank.local/a"}, IsCA: true}),
		p.Issue(f, pki.Request{CommonName: "none"}),
	}
	for _, l := range seeds {
		f.Add(l.Cert.Raw)
	}
	f.Add(p.Root.Cert.Raw)
	f.Add([]byte{})
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return
		}
		id, err := identity.FromCertificate(cert, td)
		if err != nil {
			return
		}
		if cert.IsCA || len(cert.URIs) != 1 || !id.ID.MemberOf(td) || id.Leaf != cert {
			t.Fatalf("accepted an identity that breaks the rules: %+v", id)
		}
	})
}
