package telemetry_test

import (
	"crypto/x509"
	"testing"

	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/telemetry"
	"mtlsbank/internal/tlsconfig"
)

// TestMissingCRLsMetric: bank_crl_missing has one series per CA, 1 for a CA without a CRL
// in the set and 0 for one with, however many times the CA is listed (an intermediate in
// both the bundle and the intermediates file must not make a duplicate series, which
// would break every scrape).
func TestMissingCRLsMetric(t *testing.T) {
	p := pkitest.New(t)
	rootOnly, err := tlsconfig.ParseCRL(p.SignCRL(t, pkitest.CRLSpec{Issuer: p.Root}), []*x509.Certificate{p.Root.Cert})
	if err != nil {
		t.Fatal(err)
	}
	m := telemetry.NewMetrics()
	issuers := func() []*x509.Certificate {
		return []*x509.Certificate{p.Root.Cert, p.Intermediate.Cert, p.Intermediate.Cert}
	}
	if err := m.WatchMissingCRLs(issuers, func() *tlsconfig.CRL { return rootOnly }); err != nil {
		t.Fatal(err)
	}
	_, base := serve(t, m)
	fams := scrape(t, base)
	tests := []struct {
		name string
		ca   *x509.Certificate
		want float64
	}{
		{name: "root has its CRL", ca: p.Root.Cert, want: 0},
		{name: "intermediate has none", ca: p.Intermediate.Cert, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			labels := map[string]string{"issuer": tt.ca.Subject.String(), "issuer_serial": pki.SerialHex(tt.ca.SerialNumber)}
			if v, ok := value(fams, "bank_crl_missing", labels); !ok || v != tt.want {
				t.Errorf("bank_crl_missing = %v (present %v), want %v", v, ok, tt.want)
			}
		})
	}
	if n := len(fams["bank_crl_missing"].GetMetric()); n != 2 {
		t.Errorf("%d bank_crl_missing series, want one per CA (2)", n)
	}
	if err := telemetry.NewMetrics().WatchMissingCRLs(nil, nil); err == nil {
		t.Error("WatchMissingCRLs(nil, nil) = nil, want an error")
	}
}
