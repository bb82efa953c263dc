package payments

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"

	"mtlsbank/internal/pki"
)

// ReasonCreatorRevoked is the FailureReason of a payment failed because the
// certificate it was ordered with, or a CA of its chain, was revoked before it was
// carried out.
const ReasonCreatorRevoked = "creator certificate revoked"

// RevocationChecker answers whether a certificate, named by its issuer and serial,
// is revoked by the current CRLs. *tlsconfig.Source implements it with the CRLs the
// service reloads, so a revocation reaches pending payments as it reaches
// connections. Only a revocation counts: a certificate whose CA left the bundle or
// that expired is not revoked, so a routine CA rotation fails no payment.
type RevocationChecker interface {
	// RevokedSerial reports whether the CRL of the CA whose raw DER subject is
	// rawIssuer lists serial.
	RevokedSerial(rawIssuer []byte, serial *big.Int) bool
}

// CertRef names a certificate by its issuer and serial, as a CRL lists it.
type CertRef struct {
	// Serial is the serial number in lower-case hex.
	Serial string `json:"serial"`
	// Issuer is the raw DER issuer name.
	Issuer []byte `json:"issuer"`
}

// creatorRevoked reports whether the certificate p was ordered with, or one of the
// CAs between it and its root, is revoked now. A payment recorded without its
// creator's certificate (before it was kept) cannot be checked and is not failed
// for it.
func (s *Service) creatorRevoked(p Payment) bool {
	if s.o.revocation == nil || p.CreatorSerial == "" || len(p.CreatorIssuer) == 0 {
		return false
	}
	refs := append([]CertRef{{Serial: p.CreatorSerial, Issuer: p.CreatorIssuer}}, p.CreatorCAs...)
	for _, r := range refs {
		serial, ok := new(big.Int).SetString(r.Serial, 16)
		if !ok || len(r.Issuer) == 0 {
			continue // written by creatorOf; a test proves it reads back
		}
		if s.o.revocation.RevokedSerial(r.Issuer, serial) {
			return true
		}
	}
	return false
}

// EncodeCertRefs is the creator_cas column of refs: empty for none.
func EncodeCertRefs(refs []CertRef) (string, error) {
	if len(refs) == 0 {
		return "", nil
	}
	// Refuse what DecodeCertRefs would refuse: a stored order nobody could read back
	// would stop Get, List and every recovery pass at its row.
	if err := checkCertRefs(refs); err != nil {
		return "", fmt.Errorf("encode creator CAs: %w", err)
	}
	b, err := json.Marshal(refs)
	if err != nil {
		return "", fmt.Errorf("encode creator CAs: %w", err)
	}
	return string(b), nil
}

// DecodeCertRefs reads what EncodeCertRefs wrote.
func DecodeCertRefs(s string) ([]CertRef, error) {
	if s == "" {
		return nil, nil
	}
	var refs []CertRef
	if err := json.Unmarshal([]byte(s), &refs); err != nil {
		return nil, fmt.Errorf("decode creator CAs: %w", err)
	}
	if err := checkCertRefs(refs); err != nil {
		return nil, err
	}
	return refs, nil
}

// checkCertRefs requires every ref to have a hex serial and an issuer.
func checkCertRefs(refs []CertRef) error {
	for i, r := range refs {
		if _, ok := new(big.Int).SetString(r.Serial, 16); !ok || len(r.Issuer) == 0 {
			return fmt.Errorf("creator CA %d: %w", i, errBadCertRef)
		}
	}
	return nil
}

var errBadCertRef = errors.New("serial or issuer missing")

// printedSerial turns a stored serial (lower-case hex, as creatorOf writes it) into the
// form the bank prints serials in (pki.SerialHex, as openssl does), for logs. The stored
// form is kept as is so that orders already written read back; a value that is not hex
// is printed unchanged.
func printedSerial(stored string) string {
	n, ok := new(big.Int).SetString(stored, 16)
	if !ok {
		return stored
	}
	return pki.SerialHex(n)
}
