package devpki_test

import (
	"regexp"
	"strings"
	"testing"

	"mtlsbank/internal/devpki"
)

// TestOpenSSLVerify proves with a stock tool that each certificate of the dev PKI is
// good, or bad for exactly the reason its name says.
func TestOpenSSLVerify(t *testing.T) {
	_, dir := newPKI(t)
	crl := []string{"-crl_check", "-CRLfile", devpki.CRLFile}
	tests := []struct {
		name    string
		purpose string
		extra   []string
		wantErr string // regexp over openssl's output; "" = must verify
	}{
		{name: "teller", purpose: "sslclient"},
		{name: "alice", purpose: "sslclient"},
		{name: "bob", purpose: "sslclient"},
		{name: "auditor", purpose: "sslclient"},
		{name: "intern", purpose: "sslclient"},
		{name: "accounts", purpose: "sslclient"},
		{name: "payments", purpose: "sslclient"},
		{name: "accounts", purpose: "sslserver"},
		{name: "payments", purpose: "sslserver"},
		{name: "alice", purpose: "sslclient", extra: crl},
		{name: "accounts", purpose: "sslserver", extra: crl},
		{name: "teller", purpose: "sslserver", wantErr: `unsu(itable|pported) certificate purpose`},
		{name: "expired", purpose: "sslclient", wantErr: `certificate has expired`},
		{name: "notyet", purpose: "sslclient", wantErr: `certificate is not yet valid`},
		{name: "rogue", purpose: "sslclient", wantErr: `unable to get local issuer certificate`},
		{name: "selfsigned", purpose: "sslclient", wantErr: `self[- ]signed certificate`},
		{name: "serveronly", purpose: "sslclient", wantErr: `unsu(itable|pported) certificate purpose`},
		{name: "cacert", purpose: "sslclient", wantErr: `unsu(itable|pported) certificate purpose`},
		// Without the CRL the revoked certificate is fine: only the CRL stops it.
		{name: "revoked", purpose: "sslclient"},
		{name: "revoked", purpose: "sslclient", extra: crl, wantErr: `certificate revoked`},
	}
	for _, tt := range tests {
		t.Run(tt.name+" "+tt.purpose+" "+strings.Join(tt.extra, " "), func(t *testing.T) {
			args := append([]string{"verify", "-CAfile", devpki.BundleFile, "-untrusted", tt.name + ".crt", "-purpose", tt.purpose}, tt.extra...)
			out, err := openssl(t, dir, append(args, tt.name+".crt")...)
			if tt.wantErr == "" {
				if err != nil || !strings.Contains(out, tt.name+".crt: OK") {
					t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				return
			}
			if err == nil {
				t.Fatalf("openssl %s succeeded, want %q\n%s", strings.Join(args, " "), tt.wantErr, out)
			}
			if !regexp.MustCompile(tt.wantErr).MatchString(out) {
				t.Fatalf("openssl %s failed for another reason, want %q:\n%s", strings.Join(args, " "), tt.wantErr, out)
			}
		})
	}

	t.Run("good certificates are RFC 5280 strict", func(t *testing.T) {
		for _, name := range []string{"teller", "alice", "accounts", "payments"} {
			out, err := openssl(t, dir, "verify", "-x509_strict", "-CAfile", devpki.BundleFile, "-untrusted", name+".crt", name+".crt")
			if err != nil {
				t.Errorf("openssl verify -x509_strict %s: %v\n%s", name, err, out)
			}
		}
	})
}

// TestOpenSSLReadsFiles proves that OpenSSL 3 reads every .p12 (modern encryption, no
// -legacy) and every key.
func TestOpenSSLReadsFiles(t *testing.T) {
	_, dir := newPKI(t)
	for _, name := range devpki.Names() {
		t.Run(name, func(t *testing.T) {
			out, err := openssl(t, dir, "pkcs12", "-info", "-in", name+".p12", "-passin", "pass:"+devpki.DefaultP12Password, "-nokeys", "-noout")
			if err != nil {
				t.Fatalf("openssl pkcs12 %s.p12: %v\n%s", name, err, out)
			}
			if !strings.Contains(out, "AES-256-CBC") {
				t.Errorf("%s.p12 is not AES-256 encrypted:\n%s", name, out)
			}
			if out, err := openssl(t, dir, "pkcs12", "-info", "-in", name+".p12", "-passin", "pass:wrong", "-nokeys", "-noout"); err == nil {
				t.Errorf("openssl pkcs12 with the wrong password succeeded:\n%s", out)
			}
			if out, err := openssl(t, dir, "pkey", "-in", name+".key", "-noout"); err != nil {
				t.Errorf("openssl pkey %s.key: %v\n%s", name, err, out)
			}
		})
	}
}
