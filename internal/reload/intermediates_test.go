package reload_test

import (
	"errors"
	"math/big"
	"testing"
	"time"

	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/reload"
	"mtlsbank/internal/tlsconfig"
)

// TestIntermediatesAndCRLReload: the intermediates file brings a new intermediate whose
// CRL the CRL group can then verify; a file with a foreign or truncated intermediate, or
// an older CRL, is refused and changes nothing; a refused CRL reaches onReject.
func TestIntermediatesAndCRLReload(t *testing.T) {
	p := pkitest.New(t)
	src := newSourceFor(t, p)
	b, err := p.Root.NewIntermediate("pkitest Intermediate CA B", pki.WithTTL(pkitest.CATTL))
	if err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	crlOf := func(ca *pki.CA, n int64) []byte {
		der, err := ca.CreateCRL(nil, big.NewInt(n), time.Now().Add(-time.Minute), later)
		if err != nil {
			t.Fatal(err)
		}
		return pki.EncodeCRLPEM(der)
	}
	var rejected []error
	inters, crls := reload.Intermediates(src), reload.CRL(src, func(err error) { rejected = append(rejected, err) })
	withB := append(crlOf(p.Intermediate, 1), crlOf(b, 5)...)
	good := pki.EncodeCertsPEM(b.Cert)

	steps := []struct {
		name    string
		fn      reload.Func
		data    []byte
		wantErr error
	}{
		{name: "B's CRL before B is known", fn: crls, data: withB, wantErr: tlsconfig.ErrCRLIssuer},
		{name: "foreign intermediate", fn: inters, data: pki.EncodeCertsPEM(pkitest.New(t).Intermediate.Cert), wantErr: tlsconfig.ErrUnanchored},
		{name: "truncated intermediates", fn: inters, data: good[:len(good)-20], wantErr: reload.ErrTruncated},
		{name: "B added", fn: inters, data: good},
		{name: "B's CRL", fn: crls, data: withB},
		{name: "B's CRL rolled back", fn: crls, data: append(crlOf(p.Intermediate, 1), crlOf(b, 4)...), wantErr: tlsconfig.ErrCRLRollback},
	}
	for _, st := range steps {
		gen := src.Generation()
		err := st.fn([]reload.File{{Path: "file.pem", Data: st.data}})
		if !errors.Is(err, st.wantErr) || (st.wantErr == nil) != (err == nil) {
			t.Fatalf("%s: %v, want %v", st.name, err, st.wantErr)
		}
		if (err == nil) == (src.Generation() == gen) {
			t.Fatalf("%s: generation changed %v with error %v", st.name, src.Generation() != gen, err)
		}
	}
	if len(rejected) != 2 || tlsconfig.CRLRejectReason(rejected[1]) != tlsconfig.CRLReasonRollback {
		t.Fatalf("onReject got %v, want the untrusted issuer and the rollback", rejected)
	}
	if got := src.CRL().For(b.Cert); got == nil || got.Number.Int64() != 5 {
		t.Fatalf("B's CRL in force: %+v, want number 5", got)
	}
}

func newSourceFor(tb testing.TB, p *pkitest.PKI) *tlsconfig.Source {
	tb.Helper()
	src, err := tlsconfig.NewSource(td, p.Server(tb, serverID).TLSCertificate(), p.Bundle)
	if err != nil {
		tb.Fatal(err)
	}
	return src
}
