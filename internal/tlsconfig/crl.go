package tlsconfig

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrCRLIssuer means none of the trusted issuers signed a CRL.
var ErrCRLIssuer = errors.New("CRL not signed by a trusted CA")

// CRL is an immutable set of revoked serials per issuer, built from one or more
// X.509 CRLs whose signatures were verified against the CA bundle. The zero value
// revokes nothing.
type CRL struct {
	// revoked maps (issuer name, serial) to the CAs whose verified CRL lists it.
	revoked    map[revokedKey][]*x509.Certificate
	nextUpdate time.Time
}

type revokedKey struct {
	issuer string // raw DER subject of the issuer
	serial string // hex
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

// ParseCRL parses one or more CRLs (PEM "X509 CRL" blocks, or a single DER CRL) and
// verifies each against the certificate of issuers (Source.CRLIssuers) whose subject is
// the CRL's issuer.
func ParseCRL(data []byte, issuers []*x509.Certificate) (*CRL, error) {
	ders, err := crlDERs(data)
	if err != nil {
		return nil, err
	}
	out := &CRL{revoked: make(map[revokedKey][]*x509.Certificate)}
	for i, der := range ders {
		rl, err := x509.ParseRevocationList(der)
		if err != nil {
			return nil, fmt.Errorf("CRL %d: %w", i+1, err)
		}
		issuer := findIssuer(rl, issuers)
		if issuer == nil {
			return nil, fmt.Errorf("CRL %d (issuer %q): %w", i+1, rl.Issuer.String(), ErrCRLIssuer)
		}
		for _, e := range rl.RevokedCertificateEntries {
			if e.SerialNumber == nil {
				continue
			}
			k := revokedKey{string(issuer.RawSubject), e.SerialNumber.Text(16)}
			if !slices.Contains(out.revoked[k], issuer) {
				out.revoked[k] = append(out.revoked[k], issuer)
			}
		}
		if !rl.NextUpdate.IsZero() && (out.nextUpdate.IsZero() || rl.NextUpdate.Before(out.nextUpdate)) {
			out.nextUpdate = rl.NextUpdate
		}
	}
	return out, nil
}

func crlDERs(data []byte) ([][]byte, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("no CRL found (empty input)")
	}
	if !bytes.Contains(data, []byte("-----BEGIN")) {
		return [][]byte{data}, nil
	}
	var ders [][]byte
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "X509 CRL" {
			return nil, fmt.Errorf("unexpected PEM block %q (want \"X509 CRL\")", block.Type)
		}
		ders = append(ders, block.Bytes)
	}
	if len(ders) == 0 {
		return nil, errors.New("no \"X509 CRL\" PEM block found")
	}
	return ders, nil
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
