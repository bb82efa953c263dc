package tlsconfig_test

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
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

// rawCRL signs a CRL template with ca as is (number, nextUpdate and extensions as given),
// for what internal/pki refuses to make.
func rawCRL(tb testing.TB, ca *pki.CA, tmpl *x509.RevocationList) []byte {
	tb.Helper()
	if tmpl.ThisUpdate.IsZero() {
		tmpl.ThisUpdate = time.Now().Add(-time.Minute)
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		tb.Fatal(err)
	}
	return pki.EncodeCRLPEM(der)
}

// withoutNumber re-signs a PEM CRL of ca without its CRL number extension, which
// crypto/x509 never omits.
func withoutNumber(tb testing.TB, ca *pki.CA, pemCRL []byte) []byte {
	tb.Helper()
	return resign(tb, ca, pemCRL, func(tbs *pkix.TBSCertificateList) {
		var exts []pkix.Extension
		for _, e := range tbs.Extensions {
			if !e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 20}) {
				exts = append(exts, e)
			}
		}
		tbs.Extensions = exts
	})
}

// withoutNextUpdate re-signs a PEM CRL of ca without its nextUpdate.
func withoutNextUpdate(tb testing.TB, ca *pki.CA, pemCRL []byte) []byte {
	tb.Helper()
	return resign(tb, ca, pemCRL, func(tbs *pkix.TBSCertificateList) { tbs.NextUpdate = time.Time{} })
}

// resign edits the TBS of a PEM CRL and signs it again with ca's (ECDSA) key.
func resign(tb testing.TB, ca *pki.CA, pemCRL []byte, edit func(*pkix.TBSCertificateList)) []byte {
	tb.Helper()
	block, _ := pem.Decode(pemCRL)
	var cl pkix.CertificateList
	if _, err := asn1.Unmarshal(block.Bytes, &cl); err != nil {
		tb.Fatal(err)
	}
	tbs := cl.TBSCertList
	tbs.Raw = nil
	edit(&tbs)
	tbsDER, err := asn1.Marshal(tbs)
	if err != nil {
		tb.Fatal(err)
	}
	digest := sha256.Sum256(tbsDER)
	sig, err := ca.Key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		tb.Fatal(err)
	}
	der, err := asn1.Marshal(struct {
		TBS       asn1.RawValue
		Algorithm pkix.AlgorithmIdentifier
		Signature asn1.BitString
	}{asn1.RawValue{FullBytes: tbsDER}, cl.SignatureAlgorithm, asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}})
	if err != nil {
		tb.Fatal(err)
	}
	if rl, err := x509.ParseRevocationList(der); err != nil || rl.CheckSignatureFrom(ca.Cert) != nil {
		tb.Fatalf("re-signed CRL: %v", err)
	}
	return pki.EncodeCRLPEM(der)
}

// TestParseCRLRefusesWhatItCannotHonour: CRLs whose meaning the bank does not implement
// are refused by name, not misread as complete CRLs.
func TestParseCRLRefusesWhatItCannotHonour(t *testing.T) {
	p := pkitest.New(t)
	issuers := []*x509.Certificate{p.Root.Cert, p.Intermediate.Cert}
	later := time.Now().Add(time.Hour)
	// A minimal IssuingDistributionPoint: onlyContainsUserCerts [1] TRUE.
	idp, err := asn1.Marshal(struct {
		OnlyUser bool `asn1:"optional,tag:1"`
	}{OnlyUser: true})
	if err != nil {
		t.Fatal(err)
	}
	baseNumber, err := asn1.Marshal(big.NewInt(3))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		data    []byte
		wantErr error
		reason  string
		text    string
	}{
		{name: "delta CRL", data: rawCRL(t, p.Intermediate, &x509.RevocationList{Number: big.NewInt(4), NextUpdate: later,
			ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 27}, Critical: true, Value: baseNumber}}}),
			wantErr: tlsconfig.ErrDeltaCRL, reason: tlsconfig.CRLReasonDelta, text: "delta CRL indicator"},
		{name: "issuing distribution point", data: rawCRL(t, p.Intermediate, &x509.RevocationList{Number: big.NewInt(4), NextUpdate: later,
			ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 28}, Critical: true, Value: idp}}}),
			wantErr: tlsconfig.ErrCRLScope, reason: tlsconfig.CRLReasonScope, text: "issuing distribution point"},
		{name: "no CRL number", data: withoutNumber(t, p.Intermediate, rawCRL(t, p.Intermediate, &x509.RevocationList{Number: big.NewInt(4), NextUpdate: later})),
			wantErr: tlsconfig.ErrCRLNumber, reason: tlsconfig.CRLReasonNoNumber},
		{name: "no nextUpdate", data: withoutNextUpdate(t, p.Intermediate, crlOf(t, p.Intermediate, 4, later)),
			wantErr: tlsconfig.ErrCRLNextUpdate, reason: tlsconfig.CRLReasonNextUpdate},
		{name: "second CRL of the bundle is a delta", data: join(crlOf(t, p.Root, 1, later), rawCRL(t, p.Intermediate, &x509.RevocationList{Number: big.NewInt(4), NextUpdate: later,
			ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 27}, Critical: true, Value: baseNumber}}})),
			wantErr: tlsconfig.ErrDeltaCRL, reason: tlsconfig.CRLReasonDelta, text: "CRL 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tlsconfig.ParseCRL(tt.data, issuers)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseCRL = %v, want %v", err, tt.wantErr)
			}
			if got := tlsconfig.CRLRejectReason(err); got != tt.reason {
				t.Errorf("CRLRejectReason = %q, want %q", got, tt.reason)
			}
			if tt.text != "" && !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not say %q", err, tt.text)
			}
		})
	}
}

// TestCRLRollback: per issuer, an older CRL is refused and the one in force kept.
func TestCRLRollback(t *testing.T) {
	f := newTwoCAs(t)
	later := time.Now().Add(time.Hour)
	alice := leaf(t, f.a, "spiffe://bank.local/customer/alice")
	root1, a1, b1 := crlOf(t, f.p.Root, 1, later), crlOf(t, f.a, 5, later), crlOf(t, f.b, 1, later)
	a6 := crlOf(t, f.a, 6, later, alice.Cert) // alice revoked
	tests := []struct {
		name    string
		next    []byte
		wantErr error
	}{
		{name: "identical re-load", next: join(root1, a6, b1)},
		{name: "A's CRL rolled back to before alice's revocation", next: join(root1, a1, b1), wantErr: tlsconfig.ErrCRLRollback},
		{name: "A's CRL dropped", next: join(root1, b1), wantErr: tlsconfig.ErrCRLRollback},
		{name: "same number, other content", next: join(root1, crlOf(t, f.a, 6, later), b1), wantErr: tlsconfig.ErrCRLRollback},
		{name: "newer", next: join(root1, crlOf(t, f.a, 7, later, alice.Cert), b1)},
	}
	src := newSource(t, f.p, leaf(t, f.a, "spiffe://bank.local/service/accounts"))
	if err := src.SetIntermediates([]*x509.Certificate{f.b.Cert}); err != nil {
		t.Fatal(err)
	}
	setCRL(t, src, join(root1, a1, b1))
	setCRL(t, src, join(root1, a6, b1))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := src.CRL()
			crl, err := tlsconfig.ParseCRL(tt.next, src.CRLIssuers())
			if err != nil {
				t.Fatal(err)
			}
			err = src.SetCRL(crl)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("SetCRL = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				if src.CRL() != before || !src.CRL().Revoked(alice.Cert) {
					t.Fatal("a refused CRL set replaced the one in force")
				}
				if got := tlsconfig.CRLRejectReason(err); got != tlsconfig.CRLReasonRollback {
					t.Errorf("CRLRejectReason = %q", got)
				}
			}
		})
	}
}

// TestCRLHistoryAcrossRestarts: the highest CRL number per issuer survives a restart, so
// a CRL rolled back while the service was down is refused at start.
func TestCRLHistoryAcrossRestarts(t *testing.T) {
	p := pkitest.New(t)
	later := time.Now().Add(time.Hour)
	statePath := filepath.Join(t.TempDir(), "data", "svc.crl-state.json")
	alice := p.Client(t, "spiffe://bank.local/customer/alice")
	older := join(crlOf(t, p.Root, 1, later), crlOf(t, p.Intermediate, 1, later))
	newer := join(crlOf(t, p.Root, 1, later), crlOf(t, p.Intermediate, 2, later, alice.Cert))

	start := func(data []byte) (*tlsconfig.Source, error) {
		h, err := tlsconfig.LoadCRLHistory(statePath)
		if err != nil {
			return nil, err
		}
		src := newSource(t, p, p.Server(t, "spiffe://bank.local/service/accounts"), tlsconfig.WithCRLHistory(h))
		crl, err := tlsconfig.ParseCRL(data, src.CRLIssuers())
		if err != nil {
			return nil, err
		}
		return src, src.SetCRL(crl)
	}
	if _, err := start(newer); err != nil {
		t.Fatalf("first start: %v", err)
	}
	info, err := os.Stat(statePath)
	if err != nil {
		t.Fatalf("state file not written: %v", err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", info.Mode().Perm())
	}
	if _, err := start(older); !errors.Is(err, tlsconfig.ErrCRLRollback) || !strings.Contains(err.Error(), statePath) {
		t.Fatalf("restart with the older CRL = %v, want ErrCRLRollback naming %s", err, statePath)
	}
	if _, err := start(crlOf(t, p.Intermediate, 3, later)); !errors.Is(err, tlsconfig.ErrCRLRollback) || !strings.Contains(err.Error(), "no CRL of CN=pkitest Root CA") {
		t.Fatalf("restart with the root's CRL dropped = %v, want ErrCRLRollback naming the root", err)
	}
	src, err := start(newer)
	if err != nil {
		t.Fatalf("restart with the same CRL: %v", err)
	}
	if !src.CRL().Revoked(alice.Cert) {
		t.Fatal("alice not revoked after the restart")
	}

	if err := os.WriteFile(statePath, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := tlsconfig.LoadCRLHistory(statePath); !errors.Is(err, tlsconfig.ErrCRLState) {
		t.Fatalf("LoadCRLHistory(corrupt) = %v, want ErrCRLState", err)
	}
}

// TestRevokedSerial: the lookup payments uses for a stored (issuer, serial).
func TestRevokedSerial(t *testing.T) {
	f := newTwoCAs(t)
	later := time.Now().Add(time.Hour)
	alice := leaf(t, f.a, "spiffe://bank.local/customer/alice")
	twin := leaf(t, f.b, "spiffe://bank.local/customer/twin")
	src := newSource(t, f.p, leaf(t, f.a, "spiffe://bank.local/service/accounts"))
	setCRL(t, src, join(crlOf(t, f.p.Root, 1, later), crlOf(t, f.a, 1, later, alice.Cert)))
	tests := []struct {
		name      string
		rawIssuer []byte
		serial    *big.Int
		want      bool
	}{
		{name: "revoked", rawIssuer: alice.Cert.RawIssuer, serial: alice.Cert.SerialNumber, want: true},
		{name: "same serial, other issuer", rawIssuer: twin.Cert.RawIssuer, serial: alice.Cert.SerialNumber},
		{name: "other serial", rawIssuer: alice.Cert.RawIssuer, serial: twin.Cert.SerialNumber},
		{name: "nil serial", rawIssuer: alice.Cert.RawIssuer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := src.RevokedSerial(tt.rawIssuer, tt.serial); got != tt.want {
				t.Fatalf("RevokedSerial = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestCRLHistoryStateFileMode: a state file found with looser (or other) permission bits
// is made 0600 when it is loaded, its content kept; and one that is loosened while the
// service runs is 0600 again after the next write.
func TestCRLHistoryStateFileMode(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o666, 0o640, 0o400, 0o600} {
		t.Run(mode.String(), func(t *testing.T) {
			p := pkitest.New(t)
			later := time.Now().Add(time.Hour)
			statePath := filepath.Join(t.TempDir(), "svc.crl-state.json")
			setCRL := func(h *tlsconfig.CRLHistory, data []byte) error {
				src := newSource(t, p, p.Server(t, "spiffe://bank.local/service/accounts"), tlsconfig.WithCRLHistory(h))
				crl, err := tlsconfig.ParseCRL(data, src.CRLIssuers())
				if err != nil {
					t.Fatal(err)
				}
				return src.SetCRL(crl)
			}
			modeOf := func() os.FileMode {
				fi, err := os.Stat(statePath)
				if err != nil {
					t.Fatal(err)
				}
				return fi.Mode().Perm()
			}
			h, err := tlsconfig.LoadCRLHistory(statePath)
			if err != nil {
				t.Fatal(err)
			}
			if err := setCRL(h, join(crlOf(t, p.Root, 2, later), crlOf(t, p.Intermediate, 2, later))); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(statePath, mode); err != nil {
				t.Fatal(err)
			}

			h, err = tlsconfig.LoadCRLHistory(statePath)
			if err != nil {
				t.Fatalf("LoadCRLHistory of a %v file: %v", mode, err)
			}
			if got := modeOf(); got != 0o600 {
				t.Errorf("state file mode %v after loading a %v file, want 0600", got, mode)
			}
			if err := setCRL(h, join(crlOf(t, p.Root, 1, later), crlOf(t, p.Intermediate, 1, later))); !errors.Is(err, tlsconfig.ErrCRLRollback) {
				t.Fatalf("an older CRL after loading = %v, want ErrCRLRollback (the history kept)", err)
			}

			if err := os.Chmod(statePath, mode); err != nil {
				t.Fatal(err)
			}
			if err := setCRL(h, join(crlOf(t, p.Root, 3, later), crlOf(t, p.Intermediate, 3, later))); err != nil {
				t.Fatal(err)
			}
			if got := modeOf(); got != 0o600 {
				t.Errorf("state file mode %v after a write over a %v file, want 0600", got, mode)
			}
		})
	}
}
