package tlsconfig

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki"
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
	// ErrNoAnchor means a CA bundle holds no self-signed root: trust anchors are roots.
	ErrNoAnchor = errors.New("CA bundle holds no self-signed root CA")
	// ErrUnanchored means an intermediate CA (chain material) does not chain to a root
	// of the CA bundle.
	ErrUnanchored = errors.New("intermediate CA does not chain to a trusted root")
	// ErrUntrusted means a chain that verified at handshake time no longer verifies
	// against the current trust anchors (a CA was removed from the bundle since).
	ErrUntrusted = errors.New("certificate chain does not verify against the current trust bundle")
	// ErrNoVerifiedChain means crypto/tls handed over a connection without a verified chain.
	ErrNoVerifiedChain = errors.New("no verified certificate chain")
	// ErrUnexpectedServer means the server's SPIFFE ID is not the one the client expects.
	ErrUnexpectedServer = errors.New("unexpected server SPIFFE ID")
)

// Source holds the material a TLS endpoint needs: its own certificate, the trust anchors
// (self-signed roots), the chain material (intermediate CAs, each chaining to an anchor)
// and the CRLs it enforces. The trust material is one immutable value behind an
// atomic.Pointer, with a generation number bumped by every change, so a reload swaps it
// and the next handshake and the next RPC see the new one; no *tls.Config is ever edited.
type Source struct {
	td  spiffeid.TrustDomain
	now func() time.Time
	// maxStale is how long past its nextUpdate a CRL may still be used; failClosed says
	// whether the limit applies at all (WithCRLMaxStaleness).
	maxStale   time.Duration
	failClosed bool
	requireCRL bool
	history    *CRLHistory

	cert     atomic.Pointer[tls.Certificate]
	updating sync.Mutex // serializes Update
	mu       sync.Mutex // serializes writers of trust
	trust    atomic.Pointer[trust]
	gen      uint64 // guarded by mu
	cache    verifyCache
}

// trust is an immutable snapshot of what peers are verified against.
type trust struct {
	gen          uint64
	anchors      []*x509.Certificate // self-signed roots: the only trust anchors
	bundleInters []*x509.Certificate // non-self-signed CAs found in the CA bundle
	extraInters  []*x509.Certificate // SetIntermediates (--intermediates)
	material     []*x509.Certificate // chain material that chains to an anchor
	roots        *x509.CertPool      // anchors
	inters       *x509.CertPool      // material
	crl          *CRL
}

// SourceOption configures NewSource.
type SourceOption func(*sourceOptions)

type sourceOptions struct {
	crl        *CRL
	now        func() time.Time
	maxStale   time.Duration
	failClosed bool
	requireCRL bool
	history    *CRLHistory
}

// WithCRL makes the source enforce crl from the start (default: nothing revoked).
func WithCRL(crl *CRL) SourceOption {
	return func(o *sourceOptions) { o.crl = crl }
}

// WithClock sets the clock handshakes verify certificates by and CheckChain checks
// expiry and CRL freshness with (default time.Now), for tests.
func WithClock(now func() time.Time) SourceOption {
	return func(o *sourceOptions) { o.now = now }
}

// WithCRLMaxStaleness makes the source fail closed for the CAs a CRL covers once the
// CRL is more than d past its nextUpdate: a chain in which that CA issued a certificate
// is refused at the handshake and per call (ErrCRLStale). Without it a stale CRL is only
// reported (CRL.Stale).
func WithCRLMaxStaleness(d time.Duration) SourceOption {
	return func(o *sourceOptions) { o.maxStale, o.failClosed = d, true }
}

// WithCRLRequired makes the source refuse a chain in which a CA without a CRL in the set
// issued a certificate (ErrCRLMissing), as OpenSSL's -crl_check_all does: revocation
// under that CA could not be checked.
func WithCRLRequired() SourceOption {
	return func(o *sourceOptions) { o.requireCRL = true }
}

// WithCRLHistory makes SetCRL refuse a CRL older than the highest CRL number h has seen
// for its issuer (across restarts, h being persisted), and record every CRL set it takes.
func WithCRLHistory(h *CRLHistory) SourceOption {
	return func(o *sourceOptions) { o.history = h }
}

// NewSource returns a Source for trust domain td presenting cert and trusting the CAs in
// caBundle (SetBundle). The certificate is not checked against the bundle (a test client
// must be able to present a bad one), but its private key must match it.
func NewSource(td spiffeid.TrustDomain, cert tls.Certificate, caBundle []*x509.Certificate, opts ...SourceOption) (*Source, error) {
	if td.IsZero() {
		return nil, errors.New("tlsconfig: empty trust domain")
	}
	o := sourceOptions{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.maxStale < 0 {
		return nil, fmt.Errorf("tlsconfig: CRL max staleness %s is negative", o.maxStale)
	}
	s := &Source{td: td, now: o.now, maxStale: o.maxStale, failClosed: o.failClosed, requireCRL: o.requireCRL, history: o.history}
	s.trust.Store(&trust{crl: &CRL{}, roots: x509.NewCertPool(), inters: x509.NewCertPool()})
	if err := s.SetCertificate(cert); err != nil {
		return nil, err
	}
	if err := s.SetBundle(caBundle); err != nil {
		return nil, err
	}
	if o.crl != nil {
		if err := s.SetCRL(o.crl); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// TrustDomain returns the trust domain peers must belong to.
func (s *Source) TrustDomain() spiffeid.TrustDomain { return s.td }

// Now returns the time by the source's clock.
func (s *Source) Now() time.Time { return s.now() }

// Certificate returns the certificate currently presented.
func (s *Source) Certificate() *tls.Certificate { return s.cert.Load() }

// Bundle returns a copy of the trust anchors (the self-signed roots of the CA bundle).
func (s *Source) Bundle() []*x509.Certificate {
	return append([]*x509.Certificate(nil), s.trust.Load().anchors...)
}

// Intermediates returns a copy of the chain material in use: the intermediate CAs of the
// CA bundle and of SetIntermediates that chain to an anchor.
func (s *Source) Intermediates() []*x509.Certificate {
	return append([]*x509.Certificate(nil), s.trust.Load().material...)
}

// Generation returns a number that changes whenever the anchors, the chain material or
// the CRLs change.
func (s *Source) Generation() uint64 { return s.trust.Load().gen }

// CRL returns the CRL set currently enforced (never nil).
func (s *Source) CRL() *CRL { return s.trust.Load().crl }

// SetCertificate swaps the presented certificate. cert.Leaf is parsed if missing; an error
// (no certificate, no key, key mismatch) leaves the current one in place.
func (s *Source) SetCertificate(cert tls.Certificate) error {
	cert, err := prepareCertificate(cert)
	if err != nil {
		return err
	}
	s.cert.Store(&cert)
	return nil
}

// prepareCertificate parses cert.Leaf if missing and checks the key pair.
func prepareCertificate(cert tls.Certificate) (tls.Certificate, error) {
	if len(cert.Certificate) == 0 {
		return cert, errors.New("tlsconfig: certificate chain is empty")
	}
	if cert.Leaf == nil {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return cert, fmt.Errorf("tlsconfig: parse leaf certificate: %w", err)
		}
		cert.Leaf = leaf
	}
	return cert, checkKeyPair(cert.Leaf, cert.PrivateKey)
}

// SetBundle swaps the CA bundle. Its self-signed CA certificates become the trust
// anchors (the ClientCAs and RootCAs pools hold only these); its other CA certificates
// are chain material, and each must chain to one of the anchors. An empty bundle, a
// non-CA entry, a bundle without a root or an intermediate that does not chain to it is
// an error and leaves the current bundle in place. Intermediates given to
// SetIntermediates that no longer chain to an anchor stop being used (they come back
// once they do again).
func (s *Source) SetBundle(caBundle []*x509.Certificate) error {
	if len(caBundle) == 0 {
		return ErrEmptyBundle
	}
	var anchors, inters []*x509.Certificate
	for i, c := range caBundle {
		if c == nil || !c.IsCA {
			return fmt.Errorf("%w: entry %d", ErrNotCA, i+1)
		}
		if selfSigned(c) {
			anchors = append(anchors, c)
		} else {
			inters = append(inters, c)
		}
	}
	if len(anchors) == 0 {
		return fmt.Errorf("%w (%d CA certificates, none self-signed): put the root in the bundle and intermediates in the intermediates file", ErrNoAnchor, len(caBundle))
	}
	return s.update(func(t *trust) error {
		roots := newPool(anchors)
		all := newPool(append(append([]*x509.Certificate(nil), inters...), t.extraInters...))
		for _, c := range inters {
			if err := verifyCA(c, roots, all, s.now()); err != nil {
				return err
			}
		}
		t.anchors, t.bundleInters = anchors, inters
		return nil
	})
}

// SetIntermediates swaps the chain material that comes from outside the CA bundle (the
// --intermediates file); nil or empty removes it. Every entry must be a CA that is not
// self-signed (roots belong in the bundle) and chains to an anchor; otherwise nothing
// changes.
func (s *Source) SetIntermediates(certs []*x509.Certificate) error {
	for i, c := range certs {
		switch {
		case c == nil || !c.IsCA:
			return fmt.Errorf("%w: intermediate %d", ErrNotCA, i+1)
		case selfSigned(c):
			return fmt.Errorf("intermediate %d (%s) is a self-signed root: roots belong in the CA bundle", i+1, c.Subject)
		}
	}
	return s.update(func(t *trust) error {
		roots := newPool(t.anchors)
		all := newPool(append(append([]*x509.Certificate(nil), t.bundleInters...), certs...))
		for _, c := range certs {
			if err := verifyCA(c, roots, all, s.now()); err != nil {
				return err
			}
		}
		t.extraInters = append([]*x509.Certificate(nil), certs...)
		return nil
	})
}

// update applies fn to a copy of the current trust and, if fn succeeds, publishes it
// under a new generation with its pools and chain material rebuilt.
func (s *Source) update(fn func(t *trust) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := *s.trust.Load()
	if err := fn(&next); err != nil {
		return err
	}
	next.roots = newPool(next.anchors)
	next.material = append([]*x509.Certificate(nil), next.bundleInters...)
	all := newPool(append(append([]*x509.Certificate(nil), next.bundleInters...), next.extraInters...))
	for _, c := range next.extraInters {
		if verifyCA(c, next.roots, all, s.now()) == nil {
			next.material = append(next.material, c)
		}
	}
	next.inters = newPool(next.material)
	s.gen++
	next.gen = s.gen
	s.trust.Store(&next)
	return nil
}

// CRLIssuers returns the CA certificates a CRL may be signed by: the anchors, the chain
// material, and the intermediates of the source's own certificate chain that chain to an
// anchor (a service's chain usually carries the intermediate that issued it).
func (s *Source) CRLIssuers() []*x509.Certificate {
	return s.crlIssuers(s.trust.Load())
}

func (s *Source) crlIssuers(t *trust) []*x509.Certificate {
	issuers := append(append([]*x509.Certificate(nil), t.anchors...), t.material...)
	cert := s.cert.Load()
	var own []*x509.Certificate
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil && c.IsCA && !selfSigned(c) {
			own = append(own, c)
		}
	}
	inters := newPool(append(append([]*x509.Certificate(nil), t.material...), own...))
	for _, c := range own {
		if verifyCA(c, t.roots, inters, s.now()) == nil && !containsCert(issuers, c) {
			issuers = append(issuers, c)
		}
	}
	return issuers
}

// SetCRL swaps the enforced CRL set; nil means nothing is revoked. A set that rolls back
// the current one is refused (ErrCRLRollback) and changes nothing: per issuer, a lower
// CRL number than the one loaded (or than the highest the CRLHistory remembers), the same
// number with other content, or no CRL at all for an issuer whose CRL is loaded while
// that issuer is still trusted. With a CRLHistory, the accepted set is then recorded; an
// error wrapping ErrCRLStateWrite means the set is in force but could not be persisted.
func (s *Source) SetCRL(crl *CRL) error {
	if crl == nil {
		crl = &CRL{}
	}
	err := s.update(func(t *trust) error {
		issuers := s.crlIssuers(t)
		if err := checkRollback(t.crl, crl, issuers); err != nil {
			return err
		}
		if s.history != nil {
			if err := s.history.Check(crl, issuers); err != nil {
				return err
			}
		}
		t.crl = crl
		return nil
	})
	if err != nil || s.history == nil {
		return err
	}
	return s.history.Record(crl)
}

// CRLRequired reports whether the source refuses a chain through a CA that has no CRL in
// the set (WithCRLRequired).
func (s *Source) CRLRequired() bool { return s.requireCRL }

// MissingCRLs returns the CAs that may sign a CRL (CRLIssuers: the anchors, the chain
// material, the intermediates of the source's own chain) and have none in the set in
// force, in CRLIssuers' order. With WithCRLRequired every chain through one of them is
// refused (ErrCRLMissing); without, the certificates they issued are never found revoked.
// An operator must hear of them (a CRL bundle that lost a CA's CRL looks fine otherwise).
func (s *Source) MissingCRLs() []*x509.Certificate {
	t := s.trust.Load()
	var missing []*x509.Certificate
	for _, ca := range s.crlIssuers(t) {
		if t.crl.For(ca) == nil && !containsCert(missing, ca) {
			missing = append(missing, ca)
		}
	}
	return missing
}

// CheckRevoked returns an error wrapping ErrRevoked if cert is listed in the current CRL.
// It is a map lookup, cheap enough to run on every RPC.
func (s *Source) CheckRevoked(cert *x509.Certificate) error {
	if s.CRL().Revoked(cert) {
		return fmt.Errorf("serial %s: %w", pki.SerialHex(cert.SerialNumber), ErrRevoked)
	}
	return nil
}

// RevokedSerial reports whether the current CRL set lists serial for the issuer whose raw
// subject DER is rawIssuer (CRL.RevokedSerial).
func (s *Source) RevokedSerial(rawIssuer []byte, serial *big.Int) bool {
	return s.CRL().RevokedSerial(rawIssuer, serial)
}

// CheckValidity checks a chain (leaf first) against the clock and the current CRLs only:
// ErrExpired if a certificate has passed its NotAfter, ErrRevoked if the CRL set lists
// one of them but the last. It is for the service's own certificate (readiness); peers
// are checked with CheckChain.
func (s *Source) CheckValidity(chain []*x509.Certificate) error {
	if len(chain) == 0 || chain[0] == nil {
		return ErrNoVerifiedChain
	}
	if err := checkExpiry(chain, s.now()); err != nil {
		return err
	}
	return revokedIn(s.CRL(), chain)
}

// CheckChain re-checks, on every RPC, a peer chain that verified at handshake time (leaf
// first, as in identity.Identity.Chain): the error wraps ErrExpired if a certificate has
// passed its NotAfter, ErrRevoked if the CRL set lists any of them but the anchor,
// identity.ErrKeyUsage or ErrCACertificate if the leaf breaks the X.509-SVID rules,
// ErrUntrusted if the leaf no longer verifies against the current anchors and chain
// material (a CA removed by a reload), ErrCRLStale if a CRL covering a CA of the chain
// is past its nextUpdate beyond the allowed staleness, and ErrCRLMissing (with
// WithCRLRequired) if a CA of the chain has no CRL.
//
// The verification is cached per leaf (a connection's leaf is one *x509.Certificate for
// its lifetime) and per trust generation, together with the earliest time it stops being
// valid (a NotAfter, a CRL's staleness limit): a call on a connection whose material did
// not change costs a cache lookup and a time comparison.
func (s *Source) CheckChain(chain []*x509.Certificate) error {
	if len(chain) == 0 || chain[0] == nil {
		return ErrNoVerifiedChain
	}
	t := s.trust.Load()
	now := s.now()
	slot := s.cache.slot(chain[0])
	if v := slot.Load(); v != nil && v.gen == t.gen && v.matches(chain) && !now.After(v.until) {
		return v.err
	}
	v := s.verifyPeer(t, chain, now)
	slot.Store(v)
	return v.err
}

// verifyPeer is CheckChain without the cache.
func (s *Source) verifyPeer(t *trust, chain []*x509.Certificate, now time.Time) *verdict {
	v := &verdict{gen: t.gen, rest: append([]*x509.Certificate(nil), chain[1:]...), until: farFuture}
	fail := func(err error) *verdict { v.err = err; return v }
	if err := checkExpiry(chain, now); err != nil {
		return fail(err)
	}
	if err := revokedIn(t.crl, chain); err != nil {
		return fail(err)
	}
	leaf := chain[0]
	if leaf.IsCA {
		return fail(identity.ErrCACertificate)
	}
	if err := identity.CheckLeafUsage(leaf); err != nil {
		return fail(err)
	}
	inters := t.inters.Clone()
	for _, c := range chain[1:] {
		inters.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         t.roots,
		Intermediates: inters,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		// %v, not %w: x509's errors hold the leaf, which the cached verdict must not.
		return fail(fmt.Errorf("leaf serial %s: %w: %v", pki.SerialHex(leaf.SerialNumber), ErrUntrusted, err))
	}
	for _, c := range chains {
		until, err := s.checkRevocation(t, c, now)
		if err != nil {
			return fail(err)
		}
		v.until = minTime(v.until, until)
		for _, cert := range c {
			v.until = minTime(v.until, cert.NotAfter)
		}
	}
	return v
}

// checkVerifiedChains applies the revocation and CRL freshness rules to every chain
// crypto/tls verified in a handshake: any chain through a revoked CA or a CA whose CRL is
// too stale refuses the connection.
func (s *Source) checkVerifiedChains(chains [][]*x509.Certificate) error {
	if len(chains) == 0 || len(chains[0]) == 0 {
		return ErrNoVerifiedChain
	}
	t := s.trust.Load()
	now := s.now()
	for _, c := range chains {
		if _, err := s.checkRevocation(t, c, now); err != nil {
			return err
		}
	}
	return nil
}

// checkRevocation checks a verified chain (leaf first, anchor last) against t's CRLs:
// every certificate but the anchor must not be listed; with WithCRLRequired each CA that
// issued one of them must have a CRL in the set; with a staleness limit, that CRL must not
// be past nextUpdate + the limit. It
// returns the time the chain's CRLs stop being usable (farFuture without a limit).
func (s *Source) checkRevocation(t *trust, chain []*x509.Certificate, now time.Time) (time.Time, error) {
	until := farFuture
	if err := revokedIn(t.crl, chain); err != nil {
		return until, err
	}
	if !s.failClosed && !s.requireCRL {
		return until, nil
	}
	for _, issuer := range chain[1:] {
		info := t.crl.For(issuer)
		if info == nil {
			if s.requireCRL {
				return until, fmt.Errorf("%s (serial %s): %w", issuer.Subject, pki.SerialHex(issuer.SerialNumber), ErrCRLMissing)
			}
			continue
		}
		if !s.failClosed {
			continue
		}
		limit := info.NextUpdate.Add(s.maxStale)
		if now.After(limit) {
			return until, fmt.Errorf("CRL of %s (number %s) past its nextUpdate %s by more than %s: %w",
				issuer.Subject, info.Number, info.NextUpdate.UTC().Format(time.RFC3339), s.maxStale, ErrCRLStale)
		}
		until = minTime(until, limit)
	}
	return until, nil
}

// revokedIn checks every certificate of chain but the last (the anchor); a chain of one,
// a lone leaf, is checked too.
func revokedIn(crl *CRL, chain []*x509.Certificate) error {
	last := max(len(chain)-1, 1)
	for i := 0; i < last && i < len(chain); i++ {
		if crl.Revoked(chain[i]) {
			what := "leaf"
			if i > 0 {
				what = "CA " + chain[i].Subject.String()
			}
			return fmt.Errorf("%s serial %s: %w", what, pki.SerialHex(chain[i].SerialNumber), ErrRevoked)
		}
	}
	return nil
}

func checkExpiry(chain []*x509.Certificate, now time.Time) error {
	for i, c := range chain {
		if now.After(c.NotAfter) {
			what := "leaf"
			if i > 0 {
				what = "CA " + c.Subject.CommonName
			}
			return fmt.Errorf("%s serial %s, not after %s: %w", what, pki.SerialHex(c.SerialNumber), c.NotAfter.UTC().Format(time.RFC3339), ErrExpired)
		}
	}
	return nil
}

// farFuture stands for "no time limit" in verdicts.
var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
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
