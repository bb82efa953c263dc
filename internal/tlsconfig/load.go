package tlsconfig

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"mtlsbank/internal/pki"
)

// Files names the PEM files a service loads its TLS material from.
type Files struct {
	// Cert is the certificate chain, leaf first.
	Cert string
	// Key is the leaf's private key (PKCS#8, PKCS#1 or SEC1).
	Key string
	// CA is the trust bundle: its roots are the trust anchors, any intermediate in it is
	// chain material.
	CA string
	// Intermediates holds intermediate CA certificates (chain material); empty means none.
	Intermediates string
	// CRL is the CRL bundle (one CRL per CA); empty means no CRL.
	CRL string
}

// LoadSource loads all of f into a new Source for trust domain td, configured by opts.
func LoadSource(td spiffeid.TrustDomain, f Files, opts ...SourceOption) (*Source, error) {
	cert, err := LoadCertificate(f.Cert, f.Key)
	if err != nil {
		return nil, err
	}
	caBundle, err := LoadBundle(f.CA)
	if err != nil {
		return nil, err
	}
	src, err := NewSource(td, cert, caBundle, opts...)
	if err != nil {
		return nil, fmt.Errorf("certificate %s, key %s, CA bundle %s: %w", f.Cert, f.Key, f.CA, err)
	}
	if f.Intermediates != "" {
		inters, err := LoadIntermediates(f.Intermediates)
		if err != nil {
			return nil, err
		}
		if err := src.SetIntermediates(inters); err != nil {
			return nil, fmt.Errorf("load intermediates %s: %w", f.Intermediates, err)
		}
	}
	if f.CRL != "" {
		crl, err := LoadCRL(f.CRL, src.CRLIssuers())
		if err != nil {
			return nil, err
		}
		if err := src.SetCRL(crl); err != nil {
			return nil, fmt.Errorf("load CRL %s: %w", f.CRL, err)
		}
	}
	return src, nil
}

// LoadCertificate loads a PEM certificate chain and its private key, and checks that they
// belong together.
func LoadCertificate(certPath, keyPath string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load certificate: %w", err)
	}
	if _, err := parseCertsPEM(certPEM); err != nil {
		return tls.Certificate{}, fmt.Errorf("load certificate %s: %w", certPath, err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load key %s for certificate %s: %w", keyPath, certPath, err)
	}
	return cert, nil
}

// LoadBundle loads a PEM CA bundle; every entry must be a CA certificate.
func LoadBundle(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load CA bundle: %w", err)
	}
	certs, err := ParseBundle(data)
	if err != nil {
		return nil, fmt.Errorf("load CA bundle %s: %w", path, err)
	}
	return certs, nil
}

// LoadIntermediates loads a PEM file of intermediate CA certificates. A file with no
// certificate at all (empty, or only whitespace) means none.
func LoadIntermediates(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load intermediates: %w", err)
	}
	certs, err := ParseIntermediates(data)
	if err != nil {
		return nil, fmt.Errorf("load intermediates %s: %w", path, err)
	}
	return certs, nil
}

// ParseIntermediates parses a PEM file of intermediate CA certificates; blank input is
// none. Whether they chain to a root is Source.SetIntermediates' check.
func ParseIntermediates(data []byte) ([]*x509.Certificate, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	certs, err := parseCertsPEM(data)
	if err != nil {
		return nil, err
	}
	for i, c := range certs {
		if !c.IsCA {
			return nil, fmt.Errorf("%w: entry %d (%s)", ErrNotCA, i+1, c.Subject)
		}
	}
	return certs, nil
}

// ParseBundle parses a PEM CA bundle; every entry must be a CA certificate. Which are
// anchors and which chain material is Source.SetBundle's split.
func ParseBundle(data []byte) ([]*x509.Certificate, error) {
	certs, err := parseCertsPEM(data)
	if err != nil {
		return nil, err
	}
	for i, c := range certs {
		if !c.IsCA {
			return nil, fmt.Errorf("%w: entry %d (%s)", ErrNotCA, i+1, c.Subject)
		}
	}
	return certs, nil
}

// LoadCRL loads a CRL file and verifies its signature against one of issuers
// (Source.CRLIssuers).
func LoadCRL(path string, issuers []*x509.Certificate) (*CRL, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load CRL: %w", err)
	}
	crl, err := ParseCRL(data, issuers)
	if err != nil {
		return nil, fmt.Errorf("load CRL %s: %w", path, err)
	}
	return crl, nil
}

// parseCertsPEM parses every "CERTIFICATE" block (pki.ParseCertsPEM, the parser certgen
// writes them for); anything else, or nothing, is an error.
func parseCertsPEM(data []byte) ([]*x509.Certificate, error) { return pki.ParseCertsPEM(data) }
