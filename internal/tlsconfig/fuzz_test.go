package tlsconfig_test

import (
	"bytes"
	"crypto/x509"
	"testing"
	"time"

	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/tlsconfig"
)

// FuzzParseCRL feeds arbitrary bytes to the CRL bundle parser the reloader runs on every
// change of crl.pem: it must answer without panicking, and a set it accepts must hold
// only complete, numbered CRLs of the given issuers, one per issuer.
func FuzzParseCRL(f *testing.F) {
	p := pkitest.New(f)
	issuers := []*x509.Certificate{p.Root.Cert, p.Intermediate.Cert}
	later := time.Now().Add(time.Hour)
	alice := p.Client(f, "spiffe://bank.local/customer/alice")
	good := join(crlOf(f, p.Root, 1, later, p.Intermediate.Cert), crlOf(f, p.Intermediate, 2, later, alice.Cert))
	for _, seed := range [][]byte{
		good,
		good[:len(good)/2],
		crlOf(f, p.Intermediate, 1, later),
		withoutNumber(f, p.Intermediate, crlOf(f, p.Intermediate, 1, later)),
		pki.EncodeCertsPEM(p.Root.Cert),
		[]byte("-----BEGIN X509 CRL-----\n-----END X509 CRL-----\n"),
		{0x30, 0x03, 0x02, 0x01, 0x00},
		nil,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		crl, err := tlsconfig.ParseCRL(data, issuers)
		if err != nil {
			if crl != nil {
				t.Fatal("ParseCRL returned a set with an error")
			}
			return
		}
		seen := map[*x509.Certificate]bool{}
		for _, l := range crl.Lists() {
			if l.Number == nil || l.NextUpdate.IsZero() || l.Issuer == nil {
				t.Fatalf("accepted an incomplete CRL: %+v", l)
			}
			if seen[l.Issuer] {
				t.Fatalf("two CRLs of %s accepted", l.Issuer.Subject)
			}
			seen[l.Issuer] = true
			if l.Issuer != p.Root.Cert && l.Issuer != p.Intermediate.Cert {
				t.Fatalf("CRL issuer %s is not one of the given issuers", l.Issuer.Subject)
			}
		}
		_ = crl.Revoked(alice.Cert)
		_ = crl.RevokedSerial(alice.Cert.RawIssuer, alice.Cert.SerialNumber)
	})
}

// FuzzParseBundle feeds arbitrary bytes to the CA bundle and intermediates parsers and
// hands what they accept to a Source: nothing may panic, an accepted bundle's anchors
// are all self-signed CAs, and a refused one leaves the trust in force unchanged.
func FuzzParseBundle(f *testing.F) {
	p := pkitest.New(f)
	rogue := pkitest.New(f)
	for _, seed := range [][]byte{
		pki.EncodeCertsPEM(p.Root.Cert),
		pki.EncodeCertsPEM(p.Root.Cert, p.Intermediate.Cert),
		pki.EncodeCertsPEM(p.Intermediate.Cert),
		pki.EncodeCertsPEM(p.Root.Cert, rogue.Intermediate.Cert),
		pki.EncodeCertsPEM(p.Client(f, "spiffe://bank.local/customer/alice").Cert),
		[]byte("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"),
		[]byte("  \n"),
		nil,
	} {
		f.Add(seed)
	}
	server := p.Server(f, "spiffe://bank.local/service/accounts")
	f.Fuzz(func(t *testing.T, data []byte) {
		src := newSource(t, p, server)
		gen := src.Generation()
		if certs, err := tlsconfig.ParseBundle(data); err == nil {
			for _, c := range certs {
				if !c.IsCA {
					t.Fatal("ParseBundle accepted a non-CA")
				}
			}
			if err := src.SetBundle(certs); err != nil {
				if src.Generation() != gen || len(src.Bundle()) != 1 || !src.Bundle()[0].Equal(p.Root.Cert) {
					t.Fatal("a refused bundle changed the trust in force")
				}
			} else {
				for _, a := range src.Bundle() {
					if !a.IsCA || !bytes.Equal(a.RawIssuer, a.RawSubject) || a.CheckSignatureFrom(a) != nil {
						t.Fatalf("anchor %s is not a self-signed CA", a.Subject)
					}
				}
			}
		}
		gen = src.Generation()
		if certs, err := tlsconfig.ParseIntermediates(data); err == nil {
			if err := src.SetIntermediates(certs); err != nil && src.Generation() != gen {
				t.Fatal("refused intermediates changed the trust in force")
			}
		}
	})
}
