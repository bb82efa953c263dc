package tlsconfig_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/tlsconfig"
)

func TestLoadSource(t *testing.T) {
	p := pkitest.New(t)
	srv := p.Server(t, "spiffe://bank.local/service/accounts")
	other := p.Client(t, "spiffe://bank.local/customer/bob")
	revoked := p.Client(t, "spiffe://bank.local/customer/eve")
	certPath, keyPath := p.WriteLeaf(t, "accounts", srv)
	_, otherKey := p.WriteLeaf(t, "bob", other)
	caPath := p.WriteBundle(t)
	crlPath := p.WriteCRL(t, p.CRL(t, revoked.Cert))

	rogue := pkitest.New(t)
	rogueCRL := filepath.Join(t.TempDir(), "rogue-crl.pem")
	mustWrite(t, rogueCRL, rogue.IntermediateCRL(t, revoked.Cert))
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	mustWrite(t, garbage, []byte("not pem at all"))
	leafAsCA := filepath.Join(t.TempDir(), "leaf-bundle.pem")
	mustWrite(t, leafAsCA, pki.EncodeCertsPEM(srv.Cert))
	missing := filepath.Join(t.TempDir(), "missing.pem")
	interOnly := filepath.Join(t.TempDir(), "inter-only.pem")
	mustWrite(t, interOnly, pki.EncodeCertsPEM(p.Intermediate.Cert))
	foreignInters := filepath.Join(t.TempDir(), "foreign-intermediates.pem")
	mustWrite(t, foreignInters, pki.EncodeCertsPEM(rogue.Intermediate.Cert))
	emptyInters := filepath.Join(t.TempDir(), "empty-intermediates.pem")
	mustWrite(t, emptyInters, []byte("\n"))

	tests := []struct {
		name    string
		files   tlsconfig.Files
		wantErr []string // substrings of the error: the file and the reason
	}{
		{name: "ok", files: tlsconfig.Files{Cert: certPath, Key: keyPath, CA: caPath, CRL: crlPath}},
		{name: "ok without CRL", files: tlsconfig.Files{Cert: certPath, Key: keyPath, CA: caPath}},
		{name: "missing cert", files: tlsconfig.Files{Cert: missing, Key: keyPath, CA: caPath},
			wantErr: []string{missing, "no such file"}},
		{name: "garbage cert", files: tlsconfig.Files{Cert: garbage, Key: keyPath, CA: caPath},
			wantErr: []string{garbage, "parse certificates: no PEM data"}},
		{name: "key in cert file", files: tlsconfig.Files{Cert: keyPath, Key: keyPath, CA: caPath},
			wantErr: []string{keyPath, `unexpected PEM block "PRIVATE KEY"`}},
		{name: "key does not match", files: tlsconfig.Files{Cert: certPath, Key: otherKey, CA: caPath},
			wantErr: []string{otherKey, certPath, "does not match"}},
		{name: "missing bundle", files: tlsconfig.Files{Cert: certPath, Key: keyPath, CA: missing},
			wantErr: []string{"CA bundle", missing}},
		{name: "leaf in bundle", files: tlsconfig.Files{Cert: certPath, Key: keyPath, CA: leafAsCA},
			wantErr: []string{leafAsCA, "not a CA"}},
		{name: "ok with intermediates", files: tlsconfig.Files{Cert: certPath, Key: keyPath, CA: caPath, Intermediates: interOnly, CRL: crlPath}},
		{name: "ok with an empty intermediates file", files: tlsconfig.Files{Cert: certPath, Key: keyPath, CA: caPath, Intermediates: emptyInters}},
		{name: "bundle without a root", files: tlsconfig.Files{Cert: certPath, Key: keyPath, CA: interOnly},
			wantErr: []string{interOnly, "no self-signed root"}},
		{name: "intermediates of another root", files: tlsconfig.Files{Cert: certPath, Key: keyPath, CA: caPath, Intermediates: foreignInters},
			wantErr: []string{foreignInters, "does not chain to a trusted root"}},
		{name: "missing intermediates", files: tlsconfig.Files{Cert: certPath, Key: keyPath, CA: caPath, Intermediates: missing},
			wantErr: []string{"intermediates", missing}},
		{name: "garbage CRL", files: tlsconfig.Files{Cert: certPath, Key: keyPath, CA: caPath, CRL: garbage},
			wantErr: []string{"CRL", garbage}},
		{name: "CRL from another CA", files: tlsconfig.Files{Cert: certPath, Key: keyPath, CA: caPath, CRL: rogueCRL},
			wantErr: []string{rogueCRL, "not signed by a trusted CA"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := tlsconfig.LoadSource(td, tt.files)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("LoadSource: %v", err)
				}
				if got := src.Certificate().Leaf.SerialNumber; got.Cmp(srv.Cert.SerialNumber) != 0 {
					t.Errorf("loaded serial %x, want %x", got, srv.Cert.SerialNumber)
				}
				wantRevoked := tt.files.CRL != ""
				if got := src.CRL().Revoked(revoked.Cert); got != wantRevoked {
					t.Errorf("Revoked(eve) = %v, want %v", got, wantRevoked)
				}
				if src.CRL().Revoked(other.Cert) {
					t.Error("Revoked(bob) = true")
				}
				return
			}
			if err == nil {
				t.Fatal("LoadSource succeeded, want an error")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestSourceSettersKeepLastGood(t *testing.T) {
	p := pkitest.New(t)
	first := p.Server(t, "spiffe://bank.local/service/accounts")
	second := p.Server(t, "spiffe://bank.local/service/accounts")
	src := newSource(t, p, first)

	mismatched := second.TLSCertificate()
	mismatched.PrivateKey = first.Key
	if err := src.SetCertificate(mismatched); !errors.Is(err, tlsconfig.ErrKeyMismatch) {
		t.Fatalf("SetCertificate(mismatched) = %v, want ErrKeyMismatch", err)
	}
	if err := src.SetCertificate(tls.Certificate{}); err == nil {
		t.Fatal("SetCertificate(empty) succeeded")
	}
	if err := src.SetBundle(nil); !errors.Is(err, tlsconfig.ErrEmptyBundle) {
		t.Fatalf("SetBundle(nil) = %v, want ErrEmptyBundle", err)
	}
	if err := src.SetBundle([]*x509.Certificate{first.Cert}); !errors.Is(err, tlsconfig.ErrNotCA) {
		t.Fatalf("SetBundle(leaf) = %v, want ErrNotCA", err)
	}
	if got := src.Certificate().Leaf; got != first.Cert {
		t.Fatal("a rejected SetCertificate replaced the certificate")
	}
	if got := src.Bundle(); len(got) != 1 || got[0] != p.Root.Cert {
		t.Fatal("a rejected SetBundle replaced the bundle")
	}

	if err := src.SetCertificate(second.TLSCertificate()); err != nil {
		t.Fatalf("SetCertificate(second): %v", err)
	}
	if got := src.Certificate().Leaf; got != second.Cert {
		t.Fatal("SetCertificate did not swap the certificate")
	}
}

func TestParseCRL(t *testing.T) {
	p := pkitest.New(t)
	alice := p.Client(t, "spiffe://bank.local/customer/alice")
	bob := p.Client(t, "spiffe://bank.local/customer/bob")
	issuers := []*x509.Certificate{p.Root.Cert, p.Intermediate.Cert}

	// The same serial from another issuer must not count as revoked.
	otherPKI := pkitest.New(t)
	twin := otherPKI.Issue(t, pki.Request{CommonName: "twin", Usage: pki.ClientAuth}, pki.WithSerial(alice.Cert.SerialNumber))

	der, err := p.Intermediate.CreateCRL(nil, big.NewInt(99), p.Intermediate.Cert.NotBefore, p.Intermediate.Cert.NotAfter)
	if err != nil {
		t.Fatal(err)
	}
	same := append(p.CRL(t, alice.Cert), p.CRL(t, bob.Cert)...)
	rootCRL, err := p.Root.CreateCRL(nil, big.NewInt(1), time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	both := append(pki.EncodeCRLPEM(rootCRL), p.IntermediateCRL(t, alice.Cert, bob.Cert)...)

	tests := []struct {
		name        string
		data        []byte
		issuers     []*x509.Certificate
		wantRevoked []*x509.Certificate
		wantClear   []*x509.Certificate
		wantErr     string
	}{
		{name: "pem", data: p.CRL(t, alice.Cert), issuers: issuers, wantRevoked: []*x509.Certificate{alice.Cert}, wantClear: []*x509.Certificate{bob.Cert, twin.Cert}},
		{name: "root and intermediate CRLs", data: both, issuers: issuers, wantRevoked: []*x509.Certificate{alice.Cert, bob.Cert}},
		{name: "two CRLs of one issuer", data: same, issuers: issuers, wantErr: "two CRLs of the same issuer"},
		{name: "der, empty", data: der, issuers: issuers, wantClear: []*x509.Certificate{alice.Cert}},
		{name: "issuer not trusted", data: p.IntermediateCRL(t, alice.Cert), issuers: []*x509.Certificate{p.Root.Cert}, wantErr: "not signed by a trusted CA"},
		{name: "forged issuer name", data: p.IntermediateCRL(t, alice.Cert), issuers: []*x509.Certificate{otherPKI.Intermediate.Cert}, wantErr: "not signed by a trusted CA"},
		{name: "empty", data: nil, issuers: issuers, wantErr: "empty"},
		{name: "certificate instead", data: pki.EncodeCertsPEM(p.Root.Cert), issuers: issuers, wantErr: `"CERTIFICATE"`},
		{name: "garbage der", data: []byte{0x30, 0x01}, issuers: issuers, wantErr: "CRL 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			crl, err := tlsconfig.ParseCRL(tt.data, tt.issuers)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseCRL error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCRL: %v", err)
			}
			for _, c := range tt.wantRevoked {
				if !crl.Revoked(c) {
					t.Errorf("Revoked(%s) = false", c.Subject.CommonName)
				}
			}
			for _, c := range tt.wantClear {
				if crl.Revoked(c) {
					t.Errorf("Revoked(%s) = true", c.Subject.CommonName)
				}
			}
			if crl.Len() != len(tt.wantRevoked) {
				t.Errorf("Len() = %d, want %d", crl.Len(), len(tt.wantRevoked))
			}
		})
	}
}

func TestCRLIssuers(t *testing.T) {
	p := pkitest.New(t)
	// The bundle holds the root only; the intermediate that signs the CRL arrives in the
	// service's own chain and is trusted because it chains to the bundle.
	src := newSource(t, p, p.Server(t, "spiffe://bank.local/service/accounts"))
	got := src.CRLIssuers()
	if len(got) != 2 || got[0] != p.Root.Cert || !got[1].Equal(p.Intermediate.Cert) {
		t.Fatalf("CRLIssuers() = %d certs, want root and intermediate", len(got))
	}
	// An intermediate in our chain that does not chain to the bundle is not trusted.
	rogue := pkitest.New(t)
	src2 := newSource(t, p, rogue.Server(t, "spiffe://bank.local/service/accounts"))
	if got := src2.CRLIssuers(); len(got) != 1 {
		t.Fatalf("CRLIssuers() with a foreign chain = %d certs, want the bundle only", len(got))
	}
}

func mustWrite(tb testing.TB, path string, data []byte) {
	tb.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
}

// TestCheckChain: the per-call re-check of a chain verified at handshake time.
func TestCheckChain(t *testing.T) {
	p := pkitest.New(t)
	alice := p.Client(t, "spiffe://bank.local/customer/alice")
	bob := p.Client(t, "spiffe://bank.local/customer/bob")
	chain := func(l *pki.Leaf) []*x509.Certificate {
		return []*x509.Certificate{l.Cert, p.Intermediate.Cert, p.Root.Cert}
	}
	now := time.Now()
	interRevoked, err := p.Root.CreateCRL([]*big.Int{p.Intermediate.Cert.SerialNumber}, big.NewInt(1), now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		crl     []byte
		at      time.Time
		chain   []*x509.Certificate
		wantErr error
		text    string
	}{
		{name: "valid", chain: chain(bob)},
		{name: "leaf revoked", crl: p.CRL(t, alice.Cert), chain: chain(alice), wantErr: tlsconfig.ErrRevoked, text: pki.SerialHex(alice.Cert.SerialNumber)},
		{name: "other leaf revoked", crl: p.CRL(t, alice.Cert), chain: chain(bob)},
		{name: "lone leaf revoked", crl: p.CRL(t, alice.Cert), chain: []*x509.Certificate{alice.Cert}, wantErr: tlsconfig.ErrRevoked},
		{name: "intermediate revoked", crl: pki.EncodeCRLPEM(interRevoked), chain: chain(bob), wantErr: tlsconfig.ErrRevoked, text: pki.SerialHex(p.Intermediate.Cert.SerialNumber)},
		{name: "leaf expired", at: alice.Cert.NotAfter.Add(time.Second), chain: chain(alice), wantErr: tlsconfig.ErrExpired, text: "leaf serial"},
		{name: "CA expired", at: p.Intermediate.Cert.NotAfter.Add(time.Second), chain: []*x509.Certificate{p.Intermediate.Cert, p.Root.Cert}, wantErr: tlsconfig.ErrExpired},
		{name: "expiry is NotAfter inclusive", at: alice.Cert.NotAfter, chain: chain(alice)},
		{name: "empty chain", chain: nil, wantErr: tlsconfig.ErrNoVerifiedChain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := tt.at
			if at.IsZero() {
				at = now
			}
			src := newSource(t, p, p.Server(t, "spiffe://bank.local/service/accounts"), tlsconfig.WithClock(func() time.Time { return at }))
			if tt.crl != nil {
				crl, err := tlsconfig.ParseCRL(tt.crl, src.CRLIssuers())
				if err != nil {
					t.Fatal(err)
				}
				src.SetCRL(crl)
			}
			err := src.CheckChain(tt.chain)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("CheckChain = %v, want %v", err, tt.wantErr)
			}
			if tt.text != "" && !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not name %q", err, tt.text)
			}
			if err != nil && tt.wantErr != tlsconfig.ErrNoVerifiedChain {
				if want := map[error]string{tlsconfig.ErrRevoked: tlsconfig.ReasonRevoked, tlsconfig.ErrExpired: tlsconfig.ReasonExpired}[tt.wantErr]; tlsconfig.FailureReason(err) != want {
					t.Errorf("FailureReason = %q, want %q", tlsconfig.FailureReason(err), want)
				}
			}
		})
	}
}
