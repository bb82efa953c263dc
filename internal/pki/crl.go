package pki

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// ErrCRLIssuer is returned when a CRL is not issued and signed by the expected CA.
var ErrCRLIssuer = errors.New("CRL not issued by the expected CA")

// CreateCRL returns a DER CRL signed by ca that lists the revoked serials, each with
// thisUpdate as its revocation time.
func (ca *CA) CreateCRL(revoked []*big.Int, number *big.Int, thisUpdate, nextUpdate time.Time) ([]byte, error) {
	entries := make([]x509.RevocationListEntry, 0, len(revoked))
	for _, serial := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: serial, RevocationTime: thisUpdate})
	}
	return ca.CreateCRLEntries(entries, number, thisUpdate, nextUpdate)
}

// CreateCRLEntries is CreateCRL with full entries, so that a re-signed CRL keeps each
// entry's original revocation time.
func (ca *CA) CreateCRLEntries(entries []x509.RevocationListEntry, number *big.Int, thisUpdate, nextUpdate time.Time) ([]byte, error) {
	if number == nil || number.Sign() < 0 {
		return nil, fmt.Errorf("create CRL: CRL number %v must be non-negative", number)
	}
	if !nextUpdate.After(thisUpdate) {
		return nil, fmt.Errorf("create CRL: %w: next update %s is not after this update %s",
			ErrBadValidity, nextUpdate.Format(time.RFC3339), thisUpdate.Format(time.RFC3339))
	}
	tmpl := &x509.RevocationList{
		RevokedCertificateEntries: entries,
		Number:                    number,
		ThisUpdate:                thisUpdate,
		NextUpdate:                nextUpdate,
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("create CRL: %w", err)
	}
	return der, nil
}

// ParseCRL parses a PEM ("X509 CRL") or DER CRL. If issuer is not nil it also checks
// that issuer issued the CRL and that the signature is issuer's.
func ParseCRL(pemOrDER []byte, issuer *x509.Certificate) (*x509.RevocationList, error) {
	der := pemOrDER
	if block, _ := pem.Decode(pemOrDER); block != nil {
		if block.Type != pemTypeCRL {
			return nil, fmt.Errorf("parse CRL: unexpected PEM block %q", block.Type)
		}
		der = block.Bytes
	} else if bytes.Contains(pemOrDER, []byte("-----BEGIN")) {
		return nil, errors.New("parse CRL: malformed PEM")
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("parse CRL: %w", err)
	}
	if issuer == nil {
		return crl, nil
	}
	if !bytes.Equal(crl.RawIssuer, issuer.RawSubject) {
		return nil, fmt.Errorf("%w: CRL issuer %q, want %q", ErrCRLIssuer, crl.Issuer, issuer.Subject)
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrCRLIssuer, issuer.Subject, err)
	}
	return crl, nil
}

// ParseCRLs parses a bundle of PEM "X509 CRL" blocks (crl.pem holds one CRL per CA),
// in order, without checking signatures. It fails if there is none, if any block is
// malformed or of another type.
func ParseCRLs(data []byte) ([]*x509.RevocationList, error) {
	return parsePEMBlocks(data, pemTypeCRL, "CRL", x509.ParseRevocationList)
}
