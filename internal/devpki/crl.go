package devpki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"time"

	"mtlsbank/internal/pki"
)

// crlState is the content of crl.pem, to be extended and re-signed.
type crlState struct {
	exists                 bool
	entries                []x509.RevocationListEntry
	number                 *big.Int
	thisUpdate, nextUpdate time.Time
}

// loadCRL reads crl.pem, which must be signed by inter. A missing file is an empty CRL.
func (s *session) loadCRL(inter *pki.CA) (*crlState, error) {
	data, err := os.ReadFile(s.path(CRLFile))
	if errors.Is(err, fs.ErrNotExist) {
		return &crlState{number: new(big.Int)}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCRL, err)
	}
	crl, err := pki.ParseCRL(data, inter.Cert)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadCRL, s.path(CRLFile), err)
	}
	st := &crlState{exists: true, number: new(big.Int), thisUpdate: crl.ThisUpdate, nextUpdate: crl.NextUpdate}
	if crl.Number != nil {
		st.number.Set(crl.Number)
	}
	for _, e := range crl.RevokedCertificateEntries {
		st.entries = append(st.entries, x509.RevocationListEntry{
			SerialNumber:   e.SerialNumber,
			RevocationTime: e.RevocationTime,
			ReasonCode:     e.ReasonCode,
		})
	}
	return st, nil
}

// add lists serial as revoked at now; it reports false if it was already listed.
func (c *crlState) add(serial *big.Int, now time.Time) bool {
	for _, e := range c.entries {
		if e.SerialNumber.Cmp(serial) == 0 {
			return false
		}
	}
	c.entries = append(c.entries, x509.RevocationListEntry{SerialNumber: serial, RevocationTime: now})
	return true
}

// write signs the CRL with the next number and writes crl.pem.
func (s *session) writeCRL(inter *pki.CA, c *crlState, reason string) error {
	c.number = new(big.Int).Add(c.number, big.NewInt(1))
	c.thisUpdate, c.nextUpdate = s.now.Add(-time.Minute), s.now.Add(s.p.o.leafTTL)
	der, err := inter.CreateCRLEntries(c.entries, c.number, c.thisUpdate, c.nextUpdate)
	if err != nil {
		return err
	}
	return s.write(CRLFile, pki.EncodeCRLPEM(der), 0o644, reason)
}
