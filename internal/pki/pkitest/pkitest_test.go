package pkitest_test

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

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

	first := p.IntermediateCRL(t, bob.Cert)
	second := p.IntermediateCRL(t, bob.Cert)
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

// TestCRLIsCompleteSet: CRL, the helper most tests use, writes what a deployed crl.pem
// holds, one CRL per CA, so that a verifier requiring a CRL for every CA of a chain (the
// services' default) accepts it; each revoked certificate is on its issuer's CRL.
func TestCRLIsCompleteSet(t *testing.T) {
	p := pkitest.New(t)
	alice := p.Client(t, "spiffe://bank.local/customer/alice")
	tests := []struct {
		name        string
		revoked     []*x509.Certificate
		wantRoot    []*big.Int
		wantInter   []*big.Int
		wantNumbers int64
	}{
		{name: "nothing revoked", wantNumbers: 1},
		{name: "a leaf", revoked: []*x509.Certificate{alice.Cert}, wantInter: []*big.Int{alice.Cert.SerialNumber}, wantNumbers: 2},
		{name: "the intermediate", revoked: []*x509.Certificate{p.Intermediate.Cert}, wantRoot: []*big.Int{p.Intermediate.Cert.SerialNumber}, wantNumbers: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			crls := parseCRLs(t, mustRead(t, p.WriteCRL(t, p.CRL(t, tt.revoked...))))
			if len(crls) != 2 {
				t.Fatalf("CRL holds %d CRLs, want the root's and the intermediate's", len(crls))
			}
			for i, want := range []struct {
				issuer  *x509.Certificate
				serials []*big.Int
			}{{p.Root.Cert, tt.wantRoot}, {p.Intermediate.Cert, tt.wantInter}} {
				crl := crls[i]
				if err := crl.CheckSignatureFrom(want.issuer); err != nil {
					t.Fatalf("CRL %d not signed by %q: %v", i+1, want.issuer.Subject, err)
				}
				var got []*big.Int
				for _, e := range crl.RevokedCertificateEntries {
					got = append(got, e.SerialNumber)
				}
				if !slices.EqualFunc(got, want.serials, func(a, b *big.Int) bool { return a.Cmp(b) == 0 }) {
					t.Errorf("CRL of %q lists %v, want %v", want.issuer.Subject, got, want.serials)
				}
				if crl.Number.Int64() != tt.wantNumbers {
					t.Errorf("CRL of %q: number %v, want %d", want.issuer.Subject, crl.Number, tt.wantNumbers)
				}
			}
		})
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

// TestTwoIntermediates: one root, two intermediates, leaves under each, and a CRL set
// with one CRL per CA that lists each revoked certificate under its own issuer.
func TestTwoIntermediates(t *testing.T) {
	p := pkitest.New(t)
	second := p.NewIntermediate(t, "pkitest Second Intermediate CA")
	one := p.Client(t, "spiffe://bank.local/customer/alice")
	two := p.ClientFrom(t, second, "spiffe://bank.local/customer/bob")
	if err := pki.SignedBy(two.Cert, second.Cert); err != nil || !two.Chain[1].Equal(second.Cert) {
		t.Fatalf("ClientFrom(second): %v, chain ends %q", err, two.Chain[len(two.Chain)-1].Subject)
	}
	if got := p.Intermediates(); len(got) != 2 || !got[0].Equal(p.Intermediate.Cert) || !got[1].Equal(second.Cert) {
		t.Fatalf("Intermediates() = %d certs, want the first then the second", len(got))
	}
	inters, err := pki.ParseCertsPEM(mustRead(t, p.WriteIntermediates(t)))
	if err != nil || len(inters) != 2 {
		t.Fatalf("intermediates.crt: %d certs, %v", len(inters), err)
	}
	for _, leaf := range []*pki.Leaf{one, two} {
		opts := x509.VerifyOptions{Roots: p.Pool, Intermediates: pki.NewCertPool(inters...), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		if _, err := leaf.Cert.Verify(opts); err != nil {
			t.Errorf("%s does not verify with the root and intermediates.crt: %v", leaf.Cert.Subject, err)
		}
	}

	set := p.CRLSet(t, second.Cert, one.Cert)
	crls := parseCRLs(t, set)
	tests := []struct {
		name   string
		issuer *x509.Certificate
		want   []*big.Int
	}{
		{name: "root lists the second intermediate", issuer: p.Root.Cert, want: []*big.Int{second.Cert.SerialNumber}},
		{name: "first intermediate lists its leaf", issuer: p.Intermediate.Cert, want: []*big.Int{one.Cert.SerialNumber}},
		{name: "second intermediate lists nothing", issuer: second.Cert},
	}
	if len(crls) != len(tests) {
		t.Fatalf("CRLSet holds %d CRLs, want one per CA (%d)", len(crls), len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			crl := crls[i]
			if err := crl.CheckSignatureFrom(tt.issuer); err != nil {
				t.Fatalf("CRL %d not signed by %q: %v", i, tt.issuer.Subject, err)
			}
			var got []*big.Int
			for _, e := range crl.RevokedCertificateEntries {
				got = append(got, e.SerialNumber)
			}
			if !slices.EqualFunc(got, tt.want, func(a, b *big.Int) bool { return a.Cmp(b) == 0 }) {
				t.Errorf("lists %v, want %v", got, tt.want)
			}
			if crl.Number == nil || crl.Number.Int64() != 1 || !crl.NextUpdate.After(time.Now()) {
				t.Errorf("number %v next update %s; want 1 and in the future", crl.Number, crl.NextUpdate)
			}
		})
	}
	again := parseCRLs(t, p.CRLSet(t))
	for i, crl := range again {
		if crl.Number.Int64() != 2 {
			t.Errorf("second set, CRL %d: number %v, want 2 (numbers are per issuer)", i, crl.Number)
		}
	}
	if _, err := pki.ParseCRL(p.IntermediateCRL(t), p.Intermediate.Cert); err != nil {
		t.Errorf("IntermediateCRL after CRLSet: %v", err)
	}
}

// TestSignCRL: the knobs a verifier's tests need to make bad CRLs.
func TestSignCRL(t *testing.T) {
	p := pkitest.New(t)
	past := time.Now().Add(-48 * time.Hour)
	tests := []struct {
		name       string
		spec       pkitest.CRLSpec
		wantNumber int64
		wantExt    asn1.ObjectIdentifier
		wantStale  bool
	}{
		{name: "explicit number", spec: pkitest.CRLSpec{Number: big.NewInt(10)}, wantNumber: 10},
		{name: "next continues after it", spec: pkitest.CRLSpec{}, wantNumber: 11},
		{name: "rollback", spec: pkitest.CRLSpec{Number: big.NewInt(3)}, wantNumber: 3},
		{name: "stale", spec: pkitest.CRLSpec{ThisUpdate: past, NextUpdate: past.Add(time.Hour)}, wantNumber: 4, wantStale: true},
		{name: "delta", spec: pkitest.CRLSpec{Delta: true}, wantNumber: 5, wantExt: pkitest.OIDDeltaCRLIndicator},
		{name: "issuing distribution point", spec: pkitest.CRLSpec{IssuingDistributionPoint: true}, wantNumber: 6, wantExt: pkitest.OIDIssuingDistributionPoint},
		{name: "root", spec: pkitest.CRLSpec{Issuer: p.Root}, wantNumber: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			issuer := p.Intermediate.Cert
			if tt.spec.Issuer != nil {
				issuer = tt.spec.Issuer.Cert
			}
			data := p.SignCRL(t, tt.spec)
			crl, err := pki.ParseCRL(data, issuer)
			if err != nil {
				t.Fatalf("ParseCRL: %v", err)
			}
			if crl.Number.Int64() != tt.wantNumber {
				t.Errorf("number %v, want %d", crl.Number, tt.wantNumber)
			}
			if stale := crl.NextUpdate.Before(time.Now()); stale != tt.wantStale {
				t.Errorf("next update %s: stale=%v, want %v", crl.NextUpdate, stale, tt.wantStale)
			}
			var found bool
			for _, ext := range crl.Extensions {
				if ext.Id.Equal(tt.wantExt) {
					found = ext.Critical
				}
			}
			if tt.wantExt != nil && !found {
				t.Errorf("no critical %v extension in %v", tt.wantExt, crl.Extensions)
			}
			if tt.wantExt != nil {
				// OpenSSL must read the extension as the one it claims to be.
				name := map[string]string{pkitest.OIDDeltaCRLIndicator.String(): "Delta CRL Indicator",
					pkitest.OIDIssuingDistributionPoint.String(): "Only User Certificates"}[tt.wantExt.String()]
				out := opensslCRLText(t, p, data)
				if !strings.Contains(out, name) {
					t.Errorf("openssl crl -text lacks %q:\n%s", name, out)
				}
			}
		})
	}
}

func parseCRLs(tb testing.TB, data []byte) []*x509.RevocationList {
	tb.Helper()
	var crls []*x509.RevocationList
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		crl, err := x509.ParseRevocationList(block.Bytes)
		if err != nil {
			tb.Fatalf("CRL %d: %v", len(crls)+1, err)
		}
		crls = append(crls, crl)
	}
	return crls
}

func opensslCRLText(tb testing.TB, p *pkitest.PKI, data []byte) string {
	tb.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		tb.Fatalf("openssl is required for this test: %v", err)
	}
	name := p.WriteCRL(tb, data)
	out, err := exec.Command(bin, "crl", "-noout", "-text", "-in", name).CombinedOutput()
	if err != nil {
		tb.Fatalf("openssl crl: %v\n%s", err, out)
	}
	return string(out)
}
