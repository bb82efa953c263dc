package pkitest

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"mtlsbank/internal/pki"
)

// Lifetimes of the fixture certificates: long enough for any test run, short enough
// that nothing generated here is worth keeping.
const (
	CATTL   = 24 * time.Hour
	LeafTTL = 4 * time.Hour
)

// PKI is a fresh root -> intermediate CA pair for one test, to which a test can add
// more intermediates under the same root (NewIntermediate).
type PKI struct {
	Root         *pki.CA
	Intermediate *pki.CA // issues the leaves of Client, Server and Issue, and the CRL of IntermediateCRL
	// Bundle is the trust bundle: the root only (the trust anchor), because leaves send
	// their intermediate and Intermediates lists every one.
	Bundle []*x509.Certificate
	Pool   *x509.CertPool // a pool of Bundle
	Dir    string         // a tb.TempDir() that the Write methods write into

	mu         sync.Mutex
	inters     []*pki.CA            // Intermediate first, then NewIntermediate's, in order
	crlNumbers map[*pki.CA]*big.Int // last CRL number signed per issuer
}

// New makes a fresh ECDSA P-256 root and intermediate, valid for CATTL.
func New(tb testing.TB) *PKI {
	tb.Helper()
	root, err := pki.NewRootCA("pkitest Root CA", pki.WithTTL(CATTL))
	if err != nil {
		tb.Fatalf("pkitest: %v", err)
	}
	inter, err := root.NewIntermediate("pkitest Intermediate CA", pki.WithTTL(CATTL))
	if err != nil {
		tb.Fatalf("pkitest: %v", err)
	}
	bundle := []*x509.Certificate{root.Cert}
	return &PKI{
		Root:         root,
		Intermediate: inter,
		Bundle:       bundle,
		Pool:         pki.NewCertPool(bundle...),
		Dir:          tb.TempDir(),
		inters:       []*pki.CA{inter},
		crlNumbers:   make(map[*pki.CA]*big.Int),
	}
}

// NewIntermediate adds another intermediate CA under Root (a second issuing CA, or the
// new one of a rollover), valid for CATTL unless opts say otherwise. Its subject CN is
// commonName, which must differ from the other CAs' (CRLs are matched by issuer name).
func (p *PKI) NewIntermediate(tb testing.TB, commonName string, opts ...pki.Option) *pki.CA {
	tb.Helper()
	opts = append([]pki.Option{pki.WithTTL(CATTL)}, opts...)
	inter, err := p.Root.NewIntermediate(commonName, opts...)
	if err != nil {
		tb.Fatalf("pkitest: %v", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ca := range append([]*pki.CA{p.Root}, p.inters...) {
		if bytes.Equal(ca.Cert.RawSubject, inter.Cert.RawSubject) {
			tb.Fatalf("pkitest: intermediate %q has the name of another CA", commonName)
		}
	}
	p.inters = append(p.inters, inter)
	return inter
}

// Intermediates returns the certificates of every intermediate of p (Intermediate
// first): the chain material a verifier is configured with (intermediates.crt).
func (p *PKI) Intermediates() []*x509.Certificate {
	p.mu.Lock()
	defer p.mu.Unlock()
	certs := make([]*x509.Certificate, 0, len(p.inters))
	for _, ca := range p.inters {
		certs = append(certs, ca.Cert)
	}
	return certs
}

// CAs returns every CA of p: Root first, then the intermediates in creation order.
func (p *PKI) CAs() []*pki.CA {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*pki.CA{p.Root}, p.inters...)
}

// Client issues a clientAuth leaf whose only URI SAN is spiffeID and whose CN is the
// last path segment of spiffeID. opts override the defaults (ECDSA, LeafTTL).
func (p *PKI) Client(tb testing.TB, spiffeID string, opts ...pki.Option) *pki.Leaf {
	tb.Helper()
	return p.Issue(tb, pki.Request{
		CommonName: lastSegment(tb, spiffeID),
		SPIFFEIDs:  []string{spiffeID},
		Usage:      pki.ClientAuth,
	}, opts...)
}

// Server issues a serverAuth+clientAuth leaf for a service: DNS SANs localhost and
// bufnet, IP SAN 127.0.0.1, URI SAN spiffeID, CN the last path segment of spiffeID.
func (p *PKI) Server(tb testing.TB, spiffeID string, opts ...pki.Option) *pki.Leaf {
	tb.Helper()
	return p.Issue(tb, pki.Request{
		CommonName: lastSegment(tb, spiffeID),
		SPIFFEIDs:  []string{spiffeID},
		DNSNames:   []string{"localhost", "bufnet"},
		IPs:        []net.IP{net.IPv4(127, 0, 0, 1)},
		Usage:      pki.ServerAuth | pki.ClientAuth,
	}, opts...)
}

// Issue issues any leaf from the intermediate, including bad fixtures (no EKU, several
// SPIFFE IDs, IsCA, odd validity windows or key usages via opts).
func (p *PKI) Issue(tb testing.TB, req pki.Request, opts ...pki.Option) *pki.Leaf {
	tb.Helper()
	return p.IssueFrom(tb, p.Intermediate, req, opts...)
}

// IssueFrom is Issue from another CA of p (an intermediate made by NewIntermediate).
func (p *PKI) IssueFrom(tb testing.TB, ca *pki.CA, req pki.Request, opts ...pki.Option) *pki.Leaf {
	tb.Helper()
	opts = append([]pki.Option{pki.WithTTL(LeafTTL)}, opts...)
	leaf, err := ca.Issue(req, opts...)
	if err != nil {
		tb.Fatalf("pkitest: %v", err)
	}
	return leaf
}

// ClientFrom is Client issued by ca.
func (p *PKI) ClientFrom(tb testing.TB, ca *pki.CA, spiffeID string, opts ...pki.Option) *pki.Leaf {
	tb.Helper()
	return p.IssueFrom(tb, ca, pki.Request{
		CommonName: lastSegment(tb, spiffeID),
		SPIFFEIDs:  []string{spiffeID},
		Usage:      pki.ClientAuth,
	}, opts...)
}

// CRL returns a complete CRL set, as a deployed crl.pem holds (CRLSet): a fresh CRL for
// Root and for every intermediate of p, each listing the certificates of revoked that CA
// issued (a leaf on its intermediate's CRL, an intermediate on Root's). Each call gets
// higher CRL numbers. A verifier that refuses a chain through a CA without a CRL (the
// services' default) accepts it.
func (p *PKI) CRL(tb testing.TB, revoked ...*x509.Certificate) []byte {
	tb.Helper()
	return p.CRLSet(tb, revoked...)
}

// IntermediateCRL returns the intermediate's CRL alone, listing revoked (certificates
// the intermediate issued): one CRL rather than a set, for tests of a single CRL, and an
// incomplete set (Root's CRL missing) for tests of a verifier that must refuse one.
func (p *PKI) IntermediateCRL(tb testing.TB, revoked ...*x509.Certificate) []byte {
	tb.Helper()
	return p.SignCRL(tb, CRLSpec{Issuer: p.Intermediate, Revoked: revoked})
}

// CRLSpec describes one CRL for SignCRL. The zero value (but for Issuer) is a good CRL:
// the issuer's next CRL number, thisUpdate a minute ago, nextUpdate in LeafTTL.
type CRLSpec struct {
	Issuer  *pki.CA             // nil: Intermediate
	Revoked []*x509.Certificate // listed with thisUpdate as their revocation time
	// Number is the CRL number; nil takes the issuer's next one. An explicit number
	// also becomes the issuer's last, so a following nil continues after it; a lower
	// number than one signed before makes a rollback.
	Number                 *big.Int
	ThisUpdate, NextUpdate time.Time // zero: a minute ago, and ThisUpdate + LeafTTL
	// Delta adds a critical delta CRL indicator (RFC 5280 5.2.4) naming Number-1 as
	// the base CRL: a CRL that the services must refuse.
	Delta bool
	// IssuingDistributionPoint adds a critical issuing distribution point extension
	// (RFC 5280 5.2.5) that scopes the CRL to user certificates of one distribution
	// point: a partitioned CRL that the services must refuse.
	IssuingDistributionPoint bool
	Extensions               []pkix.Extension // any other extension, added as given
}

// Extension OIDs of RFC 5280 that SignCRL can add.
var (
	OIDDeltaCRLIndicator        = asn1.ObjectIdentifier{2, 5, 29, 27}
	OIDIssuingDistributionPoint = asn1.ObjectIdentifier{2, 5, 29, 28}
)

// SignCRL returns a PEM CRL made to spec.
func (p *PKI) SignCRL(tb testing.TB, spec CRLSpec) []byte {
	tb.Helper()
	issuer := spec.Issuer
	if issuer == nil {
		issuer = p.Intermediate
	}
	number := p.crlNumber(issuer, spec.Number)
	thisUpdate, nextUpdate := spec.ThisUpdate, spec.NextUpdate
	if thisUpdate.IsZero() {
		thisUpdate = time.Now().Add(-time.Minute)
	}
	if nextUpdate.IsZero() {
		nextUpdate = thisUpdate.Add(LeafTTL)
	}
	tmpl := &x509.RevocationList{
		Number:          number,
		ThisUpdate:      thisUpdate,
		NextUpdate:      nextUpdate,
		ExtraExtensions: append([]pkix.Extension(nil), spec.Extensions...),
	}
	for _, c := range spec.Revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: thisUpdate})
	}
	if spec.Delta {
		base := new(big.Int).Sub(number, big.NewInt(1))
		value, err := asn1.Marshal(base)
		if err != nil {
			tb.Fatalf("pkitest: delta CRL indicator: %v", err)
		}
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: OIDDeltaCRLIndicator, Critical: true, Value: value})
	}
	if spec.IssuingDistributionPoint {
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{
			Id: OIDIssuingDistributionPoint, Critical: true, Value: issuingDistributionPoint(tb),
		})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, issuer.Cert, issuer.Key)
	if err != nil {
		tb.Fatalf("pkitest: %v", err)
	}
	return pki.EncodeCRLPEM(der)
}

// issuingDistributionPoint is the DER of IssuingDistributionPoint ::= SEQUENCE {
// distributionPoint [0] { fullName [0] { uniformResourceIdentifier [6] URI } },
// onlyContainsUserCerts [1] TRUE }.
func issuingDistributionPoint(tb testing.TB) []byte {
	tb.Helper()
	uri := mustMarshal(tb, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte("http://crl.bank.local/users.crl")})
	fullName := mustMarshal(tb, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: uri})
	dp := mustMarshal(tb, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: fullName})
	onlyUsers := mustMarshal(tb, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, Bytes: []byte{0xff}})
	return mustMarshal(tb, asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: append(dp, onlyUsers...)})
}

func mustMarshal(tb testing.TB, v any) []byte {
	tb.Helper()
	der, err := asn1.Marshal(v)
	if err != nil {
		tb.Fatalf("pkitest: %v", err)
	}
	return der
}

// crlNumber returns the number for issuer's next CRL: explicit if given, else one more
// than the last, and records it as the last.
func (p *PKI) crlNumber(issuer *pki.CA, explicit *big.Int) *big.Int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := explicit
	if n == nil {
		n = big.NewInt(1)
		if last := p.crlNumbers[issuer]; last != nil {
			n.Add(last, n)
		}
	}
	p.crlNumbers[issuer] = new(big.Int).Set(n)
	return new(big.Int).Set(n)
}

// CRLSet returns one PEM bundle, like certgen's crl.pem: a fresh CRL (next number,
// LeafTTL) for Root and for every intermediate, each certificate of revoked listed by
// the CRL of the CA that signed it (an intermediate is revoked by Root's CRL).
func (p *PKI) CRLSet(tb testing.TB, revoked ...*x509.Certificate) []byte {
	tb.Helper()
	cas := p.CAs()
	byIssuer := make(map[*pki.CA][]*x509.Certificate)
	for _, c := range revoked {
		issuer := issuerOf(c, cas)
		if issuer == nil {
			tb.Fatalf("pkitest: CRLSet: %q was not issued by a CA of this PKI", c.Subject)
		}
		byIssuer[issuer] = append(byIssuer[issuer], c)
	}
	var out []byte
	for _, ca := range cas {
		out = append(out, p.SignCRL(tb, CRLSpec{Issuer: ca, Revoked: byIssuer[ca]})...)
	}
	return out
}

func issuerOf(c *x509.Certificate, cas []*pki.CA) *pki.CA {
	for _, ca := range cas {
		if !pki.IsSelfIssued(c) && pki.SignedBy(c, ca.Cert) == nil {
			return ca
		}
	}
	return nil
}

// WriteLeaf writes Dir/NAME.crt (the leaf's chain) and Dir/NAME.key (PKCS#8, mode 0600),
// each atomically, and returns their paths.
func (p *PKI) WriteLeaf(tb testing.TB, name string, l *pki.Leaf) (certPath, keyPath string) {
	tb.Helper()
	keyPEM, err := pki.EncodeKeyPEM(l.Key)
	if err != nil {
		tb.Fatalf("pkitest: %v", err)
	}
	certPath = filepath.Join(p.Dir, name+".crt")
	keyPath = filepath.Join(p.Dir, name+".key")
	write(tb, keyPath, keyPEM, 0o600)
	write(tb, certPath, pki.EncodeCertsPEM(l.Chain...), 0o644)
	return certPath, keyPath
}

// WriteBundle writes the trust bundle to Dir/ca.crt atomically and returns its path.
func (p *PKI) WriteBundle(tb testing.TB) string {
	tb.Helper()
	bundlePath := filepath.Join(p.Dir, "ca.crt")
	write(tb, bundlePath, pki.EncodeCertsPEM(p.Bundle...), 0o644)
	return bundlePath
}

// WriteIntermediates writes every intermediate (Intermediates) to
// Dir/intermediates.crt atomically and returns its path.
func (p *PKI) WriteIntermediates(tb testing.TB) string {
	tb.Helper()
	interPath := filepath.Join(p.Dir, "intermediates.crt")
	write(tb, interPath, pki.EncodeCertsPEM(p.Intermediates()...), 0o644)
	return interPath
}

// WriteCRL writes a PEM CRL bundle (CRL, CRLSet) or a single CRL to Dir/crl.pem
// atomically and returns its path.
func (p *PKI) WriteCRL(tb testing.TB, pemCRL []byte) string {
	tb.Helper()
	crlPath := filepath.Join(p.Dir, "crl.pem")
	write(tb, crlPath, pemCRL, 0o644)
	return crlPath
}

func write(tb testing.TB, name string, data []byte, perm os.FileMode) {
	tb.Helper()
	if err := pki.WriteFileAtomic(name, data, perm); err != nil {
		tb.Fatalf("pkitest: %v", err)
	}
}

func lastSegment(tb testing.TB, spiffeID string) string {
	tb.Helper()
	u, err := url.Parse(spiffeID)
	if err != nil {
		tb.Fatalf("pkitest: SPIFFE ID %q: %v", spiffeID, err)
	}
	return path.Base(u.Path)
}
