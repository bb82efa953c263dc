package pkitest

import (
	"crypto/x509"
	"math/big"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sync/atomic"
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

// PKI is a fresh root -> intermediate CA pair for one test.
type PKI struct {
	Root         *pki.CA
	Intermediate *pki.CA // issues every leaf and CRL made here
	// Bundle is the trust bundle: the root only, because leaves send the intermediate.
	Bundle []*x509.Certificate
	Pool   *x509.CertPool // a pool of Bundle
	Dir    string         // a tb.TempDir() that the Write methods write into

	crlNumber atomic.Int64
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
	}
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
// SPIFFE IDs, IsCA, odd validity windows via opts).
func (p *PKI) Issue(tb testing.TB, req pki.Request, opts ...pki.Option) *pki.Leaf {
	tb.Helper()
	opts = append([]pki.Option{pki.WithTTL(LeafTTL)}, opts...)
	leaf, err := p.Intermediate.Issue(req, opts...)
	if err != nil {
		tb.Fatalf("pkitest: %v", err)
	}
	return leaf
}

// CRL returns a PEM CRL signed by the intermediate that lists the given certificates.
// Each call gets a higher CRL number.
func (p *PKI) CRL(tb testing.TB, revoked ...*x509.Certificate) []byte {
	tb.Helper()
	serials := make([]*big.Int, 0, len(revoked))
	for _, c := range revoked {
		serials = append(serials, c.SerialNumber)
	}
	now := time.Now()
	number := big.NewInt(p.crlNumber.Add(1))
	der, err := p.Intermediate.CreateCRL(serials, number, now.Add(-time.Minute), now.Add(LeafTTL))
	if err != nil {
		tb.Fatalf("pkitest: %v", err)
	}
	return pki.EncodeCRLPEM(der)
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

// WriteCRL writes a PEM CRL to Dir/crl.pem atomically and returns its path.
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
