package tlsconfig

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// X509Source is where a TLS endpoint takes its own certificate (an X.509-SVID) and the
// trust bundle of its trust domain from: go-spiffe's two source interfaces, so that the
// SPIFFE Workload API (workloadapi.X509Source) or any other go-spiffe source fits as it
// is. *Source is one as well: the files certgen writes, with their reload and CRLs.
//
// A Source made from an X509Source (NewSourceFrom, Update) applies every check of the
// files to it: TLS 1.3, the X.509-SVID leaf rules, exactly one SPIFFE ID in the trust
// domain, the server identity pin, and the per-call re-check of the peer's chain.
type X509Source interface {
	x509svid.Source
	x509bundle.Source
}

var _ X509Source = (*Source)(nil)

// ErrOutsideTrustDomain means an X.509-SVID names a SPIFFE ID of another trust domain than
// the one the endpoint serves.
var ErrOutsideTrustDomain = errors.New("X.509-SVID is outside the trust domain")

// GetX509SVID returns the certificate presented now as an X.509-SVID (x509svid.Source):
// its chain, leaf first, its SPIFFE ID and its private key.
func (s *Source) GetX509SVID() (*x509svid.SVID, error) {
	c := s.cert.Load()
	id, err := x509svid.IDFromCert(c.Leaf)
	if err != nil {
		return nil, fmt.Errorf("tlsconfig: certificate presented: %w", err)
	}
	chain := []*x509.Certificate{c.Leaf}
	for i, der := range c.Certificate[1:] {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("tlsconfig: certificate presented, chain entry %d: %w", i+2, err)
		}
		chain = append(chain, cert)
	}
	signer, ok := c.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("tlsconfig: private key %T is not a signer", c.PrivateKey)
	}
	return &x509svid.SVID{ID: id, Certificates: chain, PrivateKey: signer}, nil
}

// GetX509BundleForTrustDomain returns the trust anchors as the bundle of td
// (x509bundle.Source). The source trusts one trust domain; any other has no bundle.
func (s *Source) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	if td != s.td {
		return nil, fmt.Errorf("tlsconfig: no X.509 bundle for trust domain %q (trusting %q only)", td, s.td)
	}
	return x509bundle.FromX509Authorities(s.td, s.Bundle()), nil
}

// NewSourceFrom returns a Source for trust domain td presenting x's X.509-SVID and
// trusting x's bundle for td, configured by opts. The SVID must be in td.
func NewSourceFrom(td spiffeid.TrustDomain, x X509Source, opts ...SourceOption) (*Source, error) {
	if td.IsZero() {
		return nil, errors.New("tlsconfig: empty trust domain")
	}
	cert, authorities, err := readX509Source(td, x)
	if err != nil {
		return nil, err
	}
	return NewSource(td, cert, authorities, opts...)
}

// Update is what Source.Update changed.
type Update struct {
	// Old and New are the leaves presented before and after the update (the same
	// certificate when it did not change).
	Old, New *x509.Certificate
	// Rotated says the certificate presented changed.
	Rotated bool
	// BundleChanged says the trust anchors changed.
	BundleChanged bool
}

// Update takes x's current X.509-SVID and bundle for the source's trust domain: the next
// handshake presents that SVID and verifies peers against that bundle (the next call
// re-checks open connections against it). What did not change is left alone, so an
// update that changes nothing does not invalidate the per-call verification cache. An
// SVID outside the trust domain, without a matching key, or a bundle that SetBundle
// refuses is an error and changes nothing.
func (s *Source) Update(x X509Source) (Update, error) {
	cert, authorities, err := readX509Source(s.td, x)
	if err != nil {
		return Update{}, err
	}
	cert, err = prepareCertificate(cert)
	if err != nil {
		return Update{}, err
	}
	s.updating.Lock()
	defer s.updating.Unlock()
	old := s.cert.Load()
	u := Update{Old: old.Leaf, New: old.Leaf}
	if t := s.trust.Load(); !sameSet(append(append([]*x509.Certificate(nil), t.anchors...), t.bundleInters...), authorities) {
		if err := s.SetBundle(authorities); err != nil {
			return Update{}, fmt.Errorf("X.509 bundle of %s: %w", s.td, err)
		}
		u.BundleChanged = true
	}
	if !sameChain(old.Certificate, cert.Certificate) {
		s.cert.Store(&cert)
		u.New, u.Rotated = cert.Leaf, true
	}
	return u, nil
}

// readX509Source reads x's SVID as a tls.Certificate and the authorities of td's bundle.
func readX509Source(td spiffeid.TrustDomain, x X509Source) (tls.Certificate, []*x509.Certificate, error) {
	svid, err := x.GetX509SVID()
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("X.509-SVID: %w", err)
	}
	if svid == nil || len(svid.Certificates) == 0 || svid.Certificates[0] == nil {
		return tls.Certificate{}, nil, errors.New("X.509-SVID: no certificate")
	}
	if !svid.ID.MemberOf(td) {
		return tls.Certificate{}, nil, fmt.Errorf("%w: %s is not in %s", ErrOutsideTrustDomain, svid.ID, td)
	}
	if svid.PrivateKey == nil {
		return tls.Certificate{}, nil, fmt.Errorf("X.509-SVID %s: no private key", svid.ID)
	}
	cert := tls.Certificate{PrivateKey: svid.PrivateKey, Leaf: svid.Certificates[0]}
	for _, c := range svid.Certificates {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	bundle, err := x.GetX509BundleForTrustDomain(td)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("X.509 bundle of %s: %w", td, err)
	}
	return cert, bundle.X509Authorities(), nil
}

// sameSet reports whether a and b hold the same certificates, in any order.
func sameSet(a, b []*x509.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for _, c := range b {
		if !containsCert(a, c) {
			return false
		}
	}
	return true
}

// sameChain reports whether two DER chains are identical.
func sameChain(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
