package tlsconfig

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Sentinel errors of this package.
var (
	// ErrRevoked means a certificate's serial is listed in the current CRL.
	ErrRevoked = errors.New("certificate revoked")
	// ErrExpired means a certificate of a chain that verified at handshake time has
	// passed its NotAfter since.
	ErrExpired = errors.New("certificate expired")
	// ErrKeyMismatch means a private key does not belong to the certificate it was paired with.
	ErrKeyMismatch = errors.New("private key does not match certificate")
	// ErrEmptyBundle means a CA bundle holds no certificate.
	ErrEmptyBundle = errors.New("CA bundle is empty")
	// ErrNotCA means a CA bundle holds a certificate that is not a CA.
	ErrNotCA = errors.New("CA bundle entry is not a CA certificate")
	// ErrNoVerifiedChain means crypto/tls handed over a connection without a verified chain.
	ErrNoVerifiedChain = errors.New("no verified certificate chain")
	// ErrUnexpectedServer means the server's SPIFFE ID is not the one the client expects.
	ErrUnexpectedServer = errors.New("unexpected server SPIFFE ID")
)

// Source holds the material a TLS endpoint needs: its own certificate, the CA bundle it
// trusts and the CRL it enforces. Each is an immutable value behind an atomic.Pointer,
// so a reload swaps it and the next handshake (and the next RPC's revocation check)
// sees the new one; no *tls.Config is ever edited.
type Source struct {
	td     spiffeid.TrustDomain
	now    func() time.Time
	cert   atomic.Pointer[tls.Certificate]
	bundle atomic.Pointer[bundle]
	crl    atomic.Pointer[CRL]
}

// bundle is an immutable CA bundle and the pool built from it.
type bundle struct {
	certs []*x509.Certificate
	pool  *x509.CertPool
}

// SourceOption configures NewSource.
type SourceOption func(*Source)

// WithCRL makes the source enforce crl from the start (default: nothing revoked).
func WithCRL(crl *CRL) SourceOption {
	return func(s *Source) { s.crl.Store(crl) }
}

// WithClock sets the clock handshakes verify certificates by and CheckChain checks
// expiry with (default time.Now), for tests.
func WithClock(now func() time.Time) SourceOption {
	return func(s *Source) { s.now = now }
}

// NewSource returns a Source for trust domain td presenting cert and trusting the CAs in
// caBundle. The certificate is not checked against the bundle (a test client must be able
// to present a bad one), but its private key must match it.
func NewSource(td spiffeid.TrustDomain, cert tls.Certificate, caBundle []*x509.Certificate, opts ...SourceOption) (*Source, error) {
	if td.IsZero() {
		return nil, errors.New("tlsconfig: empty trust domain")
	}
	s := &Source{td: td, now: time.Now}
	if err := s.SetCertificate(cert); err != nil {
		return nil, err
	}
	if err := s.SetBundle(caBundle); err != nil {
		return nil, err
	}
	s.crl.Store(&CRL{})
	for _, opt := range opts {
		opt(s)
	}
	if s.crl.Load() == nil {
		s.crl.Store(&CRL{})
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// TrustDomain returns the trust domain peers must belong to.
func (s *Source) TrustDomain() spiffeid.TrustDomain { return s.td }

// Certificate returns the certificate currently presented.
func (s *Source) Certificate() *tls.Certificate { return s.cert.Load() }

// Bundle returns a copy of the CA bundle currently trusted.
func (s *Source) Bundle() []*x509.Certificate {
	return append([]*x509.Certificate(nil), s.bundle.Load().certs...)
}

// CRL returns the CRL currently enforced (never nil).
func (s *Source) CRL() *CRL { return s.crl.Load() }

// SetCertificate swaps the presented certificate. cert.Leaf is parsed if missing; an error
// (no certificate, no key, key mismatch) leaves the current one in place.
func (s *Source) SetCertificate(cert tls.Certificate) error {
	if len(cert.Certificate) == 0 {
		return errors.New("tlsconfig: certificate chain is empty")
	}
	if cert.Leaf == nil {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return fmt.Errorf("tlsconfig: parse leaf certificate: %w", err)
		}
		cert.Leaf = leaf
	}
	if err := checkKeyPair(cert.Leaf, cert.PrivateKey); err != nil {
		return err
	}
	s.cert.Store(&cert)
	return nil
}

// SetBundle swaps the trusted CA bundle. An empty bundle or a non-CA entry is an error
// and leaves the current bundle in place.
func (s *Source) SetBundle(caBundle []*x509.Certificate) error {
	if len(caBundle) == 0 {
		return ErrEmptyBundle
	}
	pool := x509.NewCertPool()
	for i, c := range caBundle {
		if c == nil || !c.IsCA {
			return fmt.Errorf("%w: entry %d", ErrNotCA, i)
		}
		pool.AddCert(c)
	}
	s.bundle.Store(&bundle{certs: append([]*x509.Certificate(nil), caBundle...), pool: pool})
	return nil
}

// CRLIssuers returns the CA certificates a CRL may be signed by: the bundle, plus the
// intermediates of the source's own certificate chain that chain to the bundle (the trust
// bundle usually holds only the root, while the intermediate that issues every leaf and
// signs the CRL travels in the chains).
func (s *Source) CRLIssuers() []*x509.Certificate {
	b := s.bundle.Load()
	issuers := append([]*x509.Certificate(nil), b.certs...)
	cert := s.cert.Load()
	var chain []*x509.Certificate
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil && c.IsCA {
			chain = append(chain, c)
		}
	}
	inter := x509.NewCertPool()
	for _, c := range chain {
		inter.AddCert(c)
	}
	for _, c := range chain {
		opts := x509.VerifyOptions{Roots: b.pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
		if _, err := c.Verify(opts); err == nil {
			issuers = append(issuers, c)
		}
	}
	return issuers
}

// SetCRL swaps the enforced CRL; nil means nothing is revoked.
func (s *Source) SetCRL(crl *CRL) {
	if crl == nil {
		crl = &CRL{}
	}
	s.crl.Store(crl)
}

// CheckRevoked returns an error wrapping ErrRevoked if cert is listed in the current CRL.
// It is a map lookup, cheap enough to run on every RPC.
func (s *Source) CheckRevoked(cert *x509.Certificate) error {
	if s.crl.Load().Revoked(cert) {
		return fmt.Errorf("serial %s: %w", cert.SerialNumber.Text(16), ErrRevoked)
	}
	return nil
}

// CheckChain re-checks a chain that verified at handshake time (leaf first, as in
// identity.Identity.Chain) against the current CRL and clock: the error wraps ErrRevoked
// if the CRL lists any of its certificates but the root, ErrExpired if any of them has
// passed its NotAfter. It costs a map lookup and a time comparison per certificate, cheap
// enough for every RPC, so that a revocation or an expiry reaches connections accepted
// before it.
func (s *Source) CheckChain(chain []*x509.Certificate) error {
	if len(chain) == 0 || chain[0] == nil {
		return ErrNoVerifiedChain
	}
	now := s.now()
	for i, c := range chain {
		if now.After(c.NotAfter) {
			what := "leaf"
			if i > 0 {
				what = "CA " + c.Subject.CommonName
			}
			return fmt.Errorf("%s serial %s, not after %s: %w", what, c.SerialNumber.Text(16), c.NotAfter.UTC().Format(time.RFC3339), ErrExpired)
		}
	}
	return s.checkChainRevoked(chain)
}

// checkChainRevoked checks every certificate of a verified chain but its root (a chain
// of one, a lone leaf, is checked too).
func (s *Source) checkChainRevoked(chain []*x509.Certificate) error {
	crl := s.crl.Load()
	last := len(chain) - 1
	if last == 0 {
		last = 1
	}
	for i := 0; i < last; i++ {
		if crl.Revoked(chain[i]) {
			return fmt.Errorf("serial %s: %w", chain[i].SerialNumber.Text(16), ErrRevoked)
		}
	}
	return nil
}

func checkKeyPair(leaf *x509.Certificate, key crypto.PrivateKey) error {
	signer, ok := key.(crypto.Signer)
	if !ok || signer == nil {
		return fmt.Errorf("tlsconfig: private key missing or not a signer (%T)", key)
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return ErrKeyMismatch
	}
	return nil
}
