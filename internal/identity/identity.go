package identity

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"mtlsbank/internal/pki"
)

// DefaultTrustDomain is the SPIFFE trust domain of the bank.
const DefaultTrustDomain = "bank.local"

// MinRSABits is the smallest RSA modulus accepted on a leaf certificate.
const MinRSABits = 2048

// minECDSABits is the smallest ECDSA curve accepted (P-224 is below the bank's bar).
const minECDSABits = 256

// Sentinel errors returned (wrapped) by FromCertificate and FromPeer.
var (
	// ErrNoIdentity means there is no verified peer certificate to derive an identity from.
	ErrNoIdentity = errors.New("no verified peer certificate")
	// ErrNoSPIFFEID means the certificate carries no URI SAN.
	ErrNoSPIFFEID = errors.New("certificate has no SPIFFE ID")
	// ErrMultipleIDs means the certificate carries more than one URI SAN.
	ErrMultipleIDs = errors.New("certificate has more than one URI SAN")
	// ErrNotSPIFFE means the certificate's URI SAN is not a well-formed SPIFFE ID.
	ErrNotSPIFFE = errors.New("URI SAN is not a valid SPIFFE ID")
	// ErrWrongTrustDomain means the SPIFFE ID belongs to another trust domain.
	ErrWrongTrustDomain = errors.New("SPIFFE ID outside the trust domain")
	// ErrCACertificate means a CA certificate was presented as a leaf.
	ErrCACertificate = errors.New("CA certificate used as a leaf")
	// ErrWeakKey means the leaf's public key is too small or of an unsupported type.
	ErrWeakKey = errors.New("weak or unsupported public key")
	// ErrKeyUsage means the leaf breaks the key usage rules of the SPIFFE X.509-SVID
	// specification: digitalSignature is required, keyCertSign and cRLSign are forbidden.
	ErrKeyUsage = errors.New("leaf key usage not allowed for an X.509-SVID")
)

// Identity is who a peer is, derived from its verified leaf certificate.
type Identity struct {
	// ID is the peer's SPIFFE ID, the only thing authorization keys on by default.
	ID spiffeid.ID
	// Subject is the leaf's subject (for optional CN/OU policy matchers and logs).
	Subject pkix.Name
	// SubjectText is Subject.String(), made once when the identity is derived (at the
	// handshake): formatting a name takes several allocations, and WhoAmI answers it on
	// every call. Empty in an Identity built by hand; use SubjectString.
	SubjectText string
	// Serial is the leaf's serial number.
	Serial *big.Int
	// SerialHex is Serial as openssl x509 -serial prints it (pki.SerialHex).
	SerialHex string
	// Fingerprint is the SHA-256 of the leaf's DER encoding.
	Fingerprint [32]byte
	// FingerprintText is Fingerprint in hex, made once when the identity is derived,
	// as SubjectText. Empty in an Identity built by hand; use FingerprintHex.
	FingerprintText string
	// NotAfter is when the leaf expires.
	NotAfter time.Time
	// DNSNames are the leaf's DNS SANs.
	DNSNames []string
	// Leaf is the verified leaf certificate itself.
	Leaf *x509.Certificate
	// Chain is the chain the handshake verified, leaf first and ending with a CA of the
	// trust bundle, kept so that every RPC can re-check it against the current CRL and
	// clock. It is nil when the Identity was derived from a lone certificate.
	Chain []*x509.Certificate
}

// SubjectString returns the subject as RFC 2253 text (SubjectText, else Subject.String()).
func (id Identity) SubjectString() string {
	if id.SubjectText != "" {
		return id.SubjectText
	}
	return id.Subject.String()
}

// FingerprintHex returns the SHA-256 fingerprint in lower-case hex without colons.
func (id Identity) FingerprintHex() string {
	if id.FingerprintText != "" {
		return id.FingerprintText
	}
	return hex.EncodeToString(id.Fingerprint[:])
}

// String returns the SPIFFE ID.
func (id Identity) String() string { return id.ID.String() }

// FromCertificate derives the identity of a verified leaf certificate. It fails unless the
// leaf is not a CA, follows the X.509-SVID key usage rules (CheckLeafUsage), has an
// acceptable key (RSA >= 2048 bits, ECDSA >= P-256, Ed25519) and carries exactly one URI
// SAN that is a workload SPIFFE ID (with a path) in trust domain td.
func FromCertificate(leaf *x509.Certificate, td spiffeid.TrustDomain) (Identity, error) {
	id, err := parse(leaf)
	if err != nil {
		return Identity{}, err
	}
	if !id.ID.MemberOf(td) {
		return Identity{}, fmt.Errorf("%w: %s is not in %s", ErrWrongTrustDomain, id.ID, td)
	}
	return id, nil
}

// parse applies every check of FromCertificate except the trust domain.
func parse(leaf *x509.Certificate) (Identity, error) {
	if leaf == nil {
		return Identity{}, ErrNoIdentity
	}
	if leaf.IsCA {
		return Identity{}, ErrCACertificate
	}
	if err := CheckLeafUsage(leaf); err != nil {
		return Identity{}, err
	}
	if err := checkKey(leaf); err != nil {
		return Identity{}, err
	}
	switch n := len(leaf.URIs); {
	case n == 0:
		return Identity{}, ErrNoSPIFFEID
	case n > 1:
		return Identity{}, fmt.Errorf("%w (%d)", ErrMultipleIDs, n)
	}
	sid, err := spiffeid.FromURI(leaf.URIs[0])
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrNotSPIFFE, err)
	}
	if sid.Path() == "" {
		return Identity{}, fmt.Errorf("%w: %s names a trust domain, not a workload", ErrNotSPIFFE, sid)
	}
	serial := leaf.SerialNumber
	if serial == nil {
		serial = new(big.Int)
	}
	fingerprint := sha256.Sum256(leaf.Raw)
	return Identity{
		ID:              sid,
		Subject:         leaf.Subject,
		SubjectText:     leaf.Subject.String(),
		Serial:          serial,
		SerialHex:       pki.SerialHex(serial),
		Fingerprint:     fingerprint,
		FingerprintText: hex.EncodeToString(fingerprint[:]),
		NotAfter:        leaf.NotAfter,
		DNSNames:        leaf.DNSNames,
		Leaf:            leaf,
	}, nil
}

// CheckLeafUsage applies the key usage rules of the SPIFFE X.509-SVID specification
// (section 4.3) to a leaf: the key usage extension must be present with digitalSignature,
// and must not carry keyCertSign or cRLSign, which belong to CAs. Errors wrap ErrKeyUsage.
func CheckLeafUsage(leaf *x509.Certificate) error {
	if leaf == nil {
		return ErrNoIdentity
	}
	if leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return fmt.Errorf("%w: digitalSignature missing", ErrKeyUsage)
	}
	if leaf.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != 0 {
		return fmt.Errorf("%w: keyCertSign or cRLSign on a leaf", ErrKeyUsage)
	}
	return nil
}

func checkKey(leaf *x509.Certificate) error {
	switch k := leaf.PublicKey.(type) {
	case *rsa.PublicKey:
		if k.N == nil || k.N.BitLen() < MinRSABits {
			bits := 0
			if k.N != nil {
				bits = k.N.BitLen()
			}
			return fmt.Errorf("%w: RSA-%d (minimum %d)", ErrWeakKey, bits, MinRSABits)
		}
	case *ecdsa.PublicKey:
		if k.Curve == nil || k.Curve.Params().BitSize < minECDSABits {
			return fmt.Errorf("%w: ECDSA curve below P-256", ErrWeakKey)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("%w: %T", ErrWeakKey, leaf.PublicKey)
	}
	return nil
}
