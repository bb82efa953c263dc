package tlsconfig

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"time"

	"mtlsbank/internal/pki"
)

// selfSigned reports whether c is a root: it names itself as its issuer and its own key
// verifies its signature. A self-issued certificate signed by another key (a key
// rollover link) is chain material, not an anchor.
func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

// verifyCA checks that CA certificate c chains to one of roots now, through inters.
func verifyCA(c *x509.Certificate, roots, inters *x509.CertPool, now time.Time) error {
	_, err := c.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inters,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return fmt.Errorf("%w: %s (serial %s): %w", ErrUnanchored, c.Subject, pki.SerialHex(c.SerialNumber), err)
	}
	return nil
}

// newPool returns a pool holding exactly certs (never the system roots).
func newPool(certs []*x509.Certificate) *x509.CertPool {
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool
}

func containsCert(certs []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range certs {
		if x.Equal(c) {
			return true
		}
	}
	return false
}
