package tlsconfig

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"mtlsbank/internal/pki"
)

// Sentinel errors of CRL loading. CRLRejectReason maps them to a metric label.
var (
	// ErrCRLIssuer means none of the trusted issuers signed a CRL.
	ErrCRLIssuer = errors.New("CRL not signed by a trusted CA")
	// ErrCRLNumber means a CRL carries no CRL number, without which a rollback to an
	// older CRL cannot be told apart.
	ErrCRLNumber = errors.New("CRL has no CRL number extension")
	// ErrCRLNextUpdate means a CRL carries no nextUpdate, so its freshness is unknown.
	ErrCRLNextUpdate = errors.New("CRL has no nextUpdate")
	// ErrDeltaCRL means a CRL is a delta CRL, which the bank does not support: a delta
	// applied alone would look like a complete CRL with few entries.
	ErrDeltaCRL = errors.New("delta CRLs are not supported (delta CRL indicator extension, 2.5.29.27)")
	// ErrCRLScope means a CRL has an issuing distribution point, i.e. covers only part of
	// its issuer's certificates, which the bank does not support.
	ErrCRLScope = errors.New("partitioned CRLs are not supported (issuing distribution point extension, 2.5.29.28)")
	// ErrCRLDuplicate means a CRL bundle holds two CRLs of the same issuer.
	ErrCRLDuplicate = errors.New("two CRLs of the same issuer in one CRL bundle")
	// ErrCRLRollback means a CRL is older than the one loaded for its issuer (a lower CRL
	// number, the same number with other content, or a missing CRL).
	ErrCRLRollback = errors.New("CRL would roll back revocation")
	// ErrCRLMissing means a CA of a chain has no CRL in the set while every CA must have one.
	ErrCRLMissing = errors.New("no CRL for this CA in the CRL bundle")
	// ErrCRLStale means a CRL covering a CA of a chain is past its nextUpdate by more than
	// the allowed staleness, so revocation under that CA cannot be checked.
	ErrCRLStale = errors.New("CRL too stale to check revocation")
)

// Object identifiers of the CRL extensions refused explicitly.
var (
	oidDeltaCRLIndicator        = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidIssuingDistributionPoint = asn1.ObjectIdentifier{2, 5, 29, 28}
)

// Label values of bank_crl_rejected_total{reason}.
const (
	CRLReasonRollback   = "rollback"
	CRLReasonNoNumber   = "no_number"
	CRLReasonNextUpdate = "no_next_update"
	CRLReasonDelta      = "delta"
	CRLReasonScope      = "issuing_distribution_point"
	CRLReasonIssuer     = "untrusted_issuer"
	CRLReasonDuplicate  = "duplicate_issuer"
	CRLReasonState      = "state"
	CRLReasonMalformed  = "malformed"
)

// CRLRejectReasons lists every CRLRejectReason value, for pre-set metric series.
func CRLRejectReasons() []string {
	return []string{CRLReasonRollback, CRLReasonNoNumber, CRLReasonNextUpdate, CRLReasonDelta,
		CRLReasonScope, CRLReasonIssuer, CRLReasonDuplicate, CRLReasonState, CRLReasonMalformed}
}

// CRLRejectReason classifies why a CRL set was refused, for bank_crl_rejected_total.
func CRLRejectReason(err error) string {
	switch {
	case errors.Is(err, ErrCRLRollback):
		return CRLReasonRollback
	case errors.Is(err, ErrCRLNumber):
		return CRLReasonNoNumber
	case errors.Is(err, ErrCRLNextUpdate):
		return CRLReasonNextUpdate
	case errors.Is(err, ErrDeltaCRL):
		return CRLReasonDelta
	case errors.Is(err, ErrCRLScope):
		return CRLReasonScope
	case errors.Is(err, ErrCRLIssuer):
		return CRLReasonIssuer
	case errors.Is(err, ErrCRLDuplicate):
		return CRLReasonDuplicate
	case errors.Is(err, ErrCRLStateWrite), errors.Is(err, ErrCRLState):
		return CRLReasonState
	}
	return CRLReasonMalformed
}

// CRL is an immutable set of complete CRLs, at most one per issuing CA, each verified
// against its issuer's certificate. The zero value revokes nothing.
type CRL struct {
	lists    []CRLInfo
	byIssuer map[string]int // issuerKey -> index in lists
	// revoked maps (issuer name, serial) to the CAs whose verified CRL lists it.
	revoked    map[revokedKey][]*x509.Certificate
	nextUpdate time.Time
}

// CRLInfo describes one CRL of a set.
type CRLInfo struct {
	// Issuer is the CA certificate the CRL verified against.
	Issuer *x509.Certificate
	// Number is the CRL number.
	Number *big.Int
	// ThisUpdate and NextUpdate are the CRL's validity window.
	ThisUpdate, NextUpdate time.Time
	// Digest is the SHA-256 of the CRL's DER encoding.
	Digest [sha256.Size]byte
	// Entries is how many certificates the CRL lists.
	Entries int
}

type revokedKey struct {
	issuer string // raw DER subject of the issuer
	serial string // hex
}

// issuerKey identifies a CA by name and key: two generations of an intermediate may
// share a name, and each has its own CRL numbering.
func issuerKey(ca *x509.Certificate) string {
	return string(ca.RawSubject) + "\x00" + string(ca.RawSubjectPublicKeyInfo)
}

// Revoked reports whether cert is listed by the CRL of its issuer. The common case, a
// serial nobody revoked, is one map lookup; only a listed serial costs a signature check,
// which tells apart two CAs that share a name.
func (c *CRL) Revoked(cert *x509.Certificate) bool {
	if c == nil || len(c.revoked) == 0 || cert == nil || cert.SerialNumber == nil {
		return false
	}
	for _, issuer := range c.revoked[revokedKey{string(cert.RawIssuer), cert.SerialNumber.Text(16)}] {
		if cert.CheckSignatureFrom(issuer) == nil {
			return true
		}
	}
	return false
}

// RevokedSerial reports whether the set lists serial in a CRL of an issuer whose raw
// subject DER is rawIssuer (a certificate's RawIssuer), without the certificate itself:
// for a record that kept only the serial and issuer of a certificate.
func (c *CRL) RevokedSerial(rawIssuer []byte, serial *big.Int) bool {
	if c == nil || len(c.revoked) == 0 || serial == nil {
		return false
	}
	return len(c.revoked[revokedKey{string(rawIssuer), serial.Text(16)}]) > 0
}

// Len returns the number of revoked (issuer, serial) pairs.
func (c *CRL) Len() int {
	if c == nil {
		return 0
	}
	return len(c.revoked)
}

// NextUpdate returns the earliest NextUpdate of the CRLs (zero if none).
func (c *CRL) NextUpdate() time.Time {
	if c == nil {
		return time.Time{}
	}
	return c.nextUpdate
}

// Lists returns a description of every CRL of the set, in file order.
func (c *CRL) Lists() []CRLInfo {
	if c == nil {
		return nil
	}
	return slices.Clone(c.lists)
}

// For returns the CRL of CA ca, or nil if the set has none.
func (c *CRL) For(ca *x509.Certificate) *CRLInfo {
	if c == nil || ca == nil {
		return nil
	}
	i, ok := c.byIssuer[issuerKey(ca)]
	if !ok {
		return nil
	}
	return &c.lists[i]
}

// Stale returns the CRLs of the set that are past their nextUpdate at now.
func (c *CRL) Stale(now time.Time) []CRLInfo {
	var out []CRLInfo
	for _, l := range c.Lists() {
		if now.After(l.NextUpdate) {
			out = append(out, l)
		}
	}
	return out
}

// ParseCRL parses a CRL bundle: one or more PEM "X509 CRL" blocks, or a single DER CRL.
// Each CRL must be complete (no delta CRL indicator, no issuing distribution point), carry
// a CRL number and a nextUpdate, and verify against the certificate among issuers
// (Source.CRLIssuers) whose subject is its issuer; at most one CRL per issuer.
func ParseCRL(data []byte, issuers []*x509.Certificate) (*CRL, error) {
	rls, err := parseCRLs(data)
	if err != nil {
		return nil, err
	}
	out := &CRL{byIssuer: make(map[string]int), revoked: make(map[revokedKey][]*x509.Certificate)}
	for i, rl := range rls {
		der := rl.Raw
		if err := checkComplete(rl); err != nil {
			return nil, fmt.Errorf("CRL %d (issuer %q): %w", i+1, rl.Issuer.String(), err)
		}
		issuer := findIssuer(rl, issuers)
		if issuer == nil {
			return nil, fmt.Errorf("CRL %d (issuer %q): %w", i+1, rl.Issuer.String(), ErrCRLIssuer)
		}
		key := issuerKey(issuer)
		if j, dup := out.byIssuer[key]; dup {
			return nil, fmt.Errorf("CRL %d (issuer %q, number %s) and CRL %d (number %s): %w; keep only the newest",
				i+1, rl.Issuer.String(), rl.Number, j+1, out.lists[j].Number, ErrCRLDuplicate)
		}
		out.byIssuer[key] = len(out.lists)
		out.lists = append(out.lists, CRLInfo{
			Issuer:     issuer,
			Number:     new(big.Int).Set(rl.Number),
			ThisUpdate: rl.ThisUpdate,
			NextUpdate: rl.NextUpdate,
			Digest:     sha256.Sum256(der),
			Entries:    len(rl.RevokedCertificateEntries),
		})
		for _, e := range rl.RevokedCertificateEntries {
			if e.SerialNumber == nil {
				continue
			}
			k := revokedKey{string(issuer.RawSubject), e.SerialNumber.Text(16)}
			if !slices.Contains(out.revoked[k], issuer) {
				out.revoked[k] = append(out.revoked[k], issuer)
			}
		}
		if out.nextUpdate.IsZero() || rl.NextUpdate.Before(out.nextUpdate) {
			out.nextUpdate = rl.NextUpdate
		}
	}
	return out, nil
}

// checkComplete refuses what the bank does not support rather than misread it.
func checkComplete(rl *x509.RevocationList) error {
	for _, ext := range rl.Extensions {
		switch {
		case ext.Id.Equal(oidDeltaCRLIndicator):
			return ErrDeltaCRL
		case ext.Id.Equal(oidIssuingDistributionPoint):
			return ErrCRLScope
		}
	}
	if rl.Number == nil {
		return ErrCRLNumber
	}
	if rl.NextUpdate.IsZero() {
		return ErrCRLNextUpdate
	}
	return nil
}

// checkRollback refuses next if, for an issuer of cur, it holds an older CRL (lower
// number, or the same number with other content) or none at all while that issuer is
// still among issuers.
func checkRollback(cur, next *CRL, issuers []*x509.Certificate) error {
	for _, old := range cur.Lists() {
		n := next.For(old.Issuer)
		switch {
		case n == nil:
			if containsCert(issuers, old.Issuer) {
				return fmt.Errorf("%w: no CRL of %s in the new set (loaded: number %s)", ErrCRLRollback, old.Issuer.Subject, old.Number)
			}
		case n.Number.Cmp(old.Number) < 0:
			return fmt.Errorf("%w: CRL of %s has number %s, lower than the loaded %s", ErrCRLRollback, old.Issuer.Subject, n.Number, old.Number)
		case n.Number.Cmp(old.Number) == 0 && n.Digest != old.Digest:
			return fmt.Errorf("%w: CRL of %s has number %s, as the loaded one, but other content", ErrCRLRollback, old.Issuer.Subject, n.Number)
		}
	}
	return nil
}

// parseCRLs parses one DER CRL, or a PEM bundle of them with the PEM parser certgen
// writes them with (pki.ParseCRLs: one mechanism for both ends).
func parseCRLs(data []byte) ([]*x509.RevocationList, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("no CRL found (empty input)")
	}
	if !bytes.Contains(data, []byte("-----BEGIN")) {
		rl, err := x509.ParseRevocationList(data)
		if err != nil {
			return nil, fmt.Errorf("CRL 1: %w", err)
		}
		return []*x509.RevocationList{rl}, nil
	}
	return pki.ParseCRLs(data)
}

func findIssuer(rl *x509.RevocationList, issuers []*x509.Certificate) *x509.Certificate {
	for _, ca := range issuers {
		if ca == nil || !bytes.Equal(ca.RawSubject, rl.RawIssuer) {
			continue
		}
		if rl.CheckSignatureFrom(ca) == nil {
			return ca
		}
	}
	return nil
}
