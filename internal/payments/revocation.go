package payments

import (
	"math/big"
)

// ReasonCreatorRevoked is the FailureReason of a payment failed because the
// certificate it was ordered with was revoked before it was carried out, and the
// accounts service voided its transfer key: no money moved under it and none will.
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

// creatorRevoked reports whether the certificate p was ordered with is revoked now.
// A payment recorded without its creator's certificate (before it was kept) cannot
// be checked and is not failed for it.
func (s *Service) creatorRevoked(p Payment) bool {
	if s.o.revocation == nil || p.CreatorSerial == "" || len(p.CreatorIssuer) == 0 {
		return false
	}
	serial, ok := new(big.Int).SetString(p.CreatorSerial, 16)
	if !ok {
		return false // written by creatorOf; a test proves it reads back
	}
	return s.o.revocation.RevokedSerial(p.CreatorIssuer, serial)
}
