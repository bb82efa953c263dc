package pkitest_test

import (
	"crypto/x509"
	"os"
	"slices"
	"testing"

	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
)

func TestLeaves(t *testing.T) {
	p := pkitest.New(t)
	tests := []struct {
		name     string
		leaf     *pki.Leaf
		wantCN   string
		wantEKU  []x509.ExtKeyUsage
		wantDNS  []string
		serverOK bool
	}{
		{
			name:    "client",
			leaf:    p.Client(t, "spiffe://bank.local/teller/tina"),
			wantCN:  "tina",
			wantEKU: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		},
		{
			name:     "server",
			leaf:     p.Server(t, "spiffe://bank.local/service/accounts"),
			wantCN:   "accounts",
			wantEKU:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			wantDNS:  []string{"localhost", "bufnet"},
			serverOK: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.leaf.Cert
			if c.Subject.CommonName != tt.wantCN || !slices.Equal(c.ExtKeyUsage, tt.wantEKU) || !slices.Equal(c.DNSNames, tt.wantDNS) {
				t.Errorf("CN %q EKU %v DNS %v; want %q %v %v", c.Subject.CommonName, c.ExtKeyUsage, c.DNSNames, tt.wantCN, tt.wantEKU, tt.wantDNS)
			}
			if len(c.URIs) != 1 {
				t.Errorf("%d URI SANs, want 1", len(c.URIs))
			}
			opts := x509.VerifyOptions{
				Roots:         p.Pool,
				Intermediates: pki.NewCertPool(tt.leaf.Chain[1:]...),
				KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			}
			if _, err := c.Verify(opts); err != nil {
				t.Errorf("verify as client: %v", err)
			}
			opts.KeyUsages, opts.DNSName = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, "localhost"
			if _, err := c.Verify(opts); (err == nil) != tt.serverOK {
				t.Errorf("verify as server for localhost: %v, want ok=%v", err, tt.serverOK)
			}
		})
	}
}

func TestFilesAndCRL(t *testing.T) {
	p := pkitest.New(t)
	alice := p.Client(t, "spiffe://bank.local/customer/alice")
	bob := p.Client(t, "spiffe://bank.local/customer/bob")

	certPath, keyPath := p.WriteLeaf(t, "alice", alice)
	certs, err := pki.ParseCertsPEM(mustRead(t, certPath))
	if err != nil || len(certs) != 2 || !certs[0].Equal(alice.Cert) || !certs[1].Equal(p.Intermediate.Cert) {
		t.Fatalf("alice.crt: %d certs, %v; want leaf + intermediate", len(certs), err)
	}
	key, err := pki.ParseKeyPEM(mustRead(t, keyPath))
	if err != nil || pki.KeyMatches(alice.Cert, key) != nil {
		t.Fatalf("alice.key does not hold alice's key: %v", err)
	}
	if info, err := os.Stat(keyPath); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("alice.key mode %v, %v; want 0600", info.Mode().Perm(), err)
	}

	bundle, err := pki.ParseCertsPEM(mustRead(t, p.WriteBundle(t)))
	if err != nil || len(bundle) != 1 || !bundle[0].Equal(p.Root.Cert) {
		t.Fatalf("ca.crt: %d certs, %v; want the root", len(bundle), err)
	}

	first := p.CRL(t, bob.Cert)
	second := p.CRL(t, bob.Cert)
	crl, err := pki.ParseCRL(mustRead(t, p.WriteCRL(t, second)), p.Intermediate.Cert)
	if err != nil {
		t.Fatalf("crl.pem: %v", err)
	}
	older, err := pki.ParseCRL(first, p.Intermediate.Cert)
	if err != nil {
		t.Fatalf("first CRL: %v", err)
	}
	if crl.Number.Cmp(older.Number) <= 0 {
		t.Errorf("CRL numbers %v then %v, want increasing", older.Number, crl.Number)
	}
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(bob.Cert.SerialNumber) != 0 {
		t.Errorf("CRL entries %v, want only bob's serial", crl.RevokedCertificateEntries)
	}
}

func mustRead(tb testing.TB, name string) []byte {
	tb.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}
