package bench

import (
	"crypto/x509"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/tlsconfig"
)

// SPIFFE IDs of the benchmark's parties, those of the demo policy.
const (
	accountsID = "spiffe://bank.local/service/accounts"
	paymentsID = "spiffe://bank.local/service/payments"
	tellerID   = "spiffe://bank.local/teller/tina"
	aliceID    = "spiffe://bank.local/customer/alice"
	bobID      = "spiffe://bank.local/customer/bob"
)

// revokedSerials is how many serials the benchmark CRL lists: a busy CA's worth, so that
// every per-RPC and per-handshake revocation check runs against a real map.
const revokedSerials = 1000

// materialTTL is the life of every certificate made here: the run, with a margin.
const materialTTL = 2 * time.Hour

var trustDomain = spiffeid.RequireTrustDomainFromString(identity.DefaultTrustDomain)

// material is a throwaway PKI of one key type, made at run time by internal/pki like the
// dev PKI: root -> intermediate -> leaves, and a CRL of each CA.
type material struct {
	keyType pki.KeyType
	inter   *pki.CA
	bundle  []*x509.Certificate // the root only: leaves send the intermediate
	crlPEM  []byte
	crl     *tlsconfig.CRL
}

func newMaterial(kt pki.KeyType) (*material, error) {
	opts := []pki.Option{pki.WithKeyType(kt), pki.WithTTL(materialTTL)}
	root, err := pki.NewRootCA("bench Root CA", opts...)
	if err != nil {
		return nil, fmt.Errorf("%s root CA: %w", kt, err)
	}
	inter, err := root.NewIntermediate("bench Intermediate CA", opts...)
	if err != nil {
		return nil, fmt.Errorf("%s intermediate CA: %w", kt, err)
	}
	serials := make([]*big.Int, 0, revokedSerials)
	for range revokedSerials {
		s, err := pki.RandomSerial()
		if err != nil {
			return nil, err
		}
		serials = append(serials, s)
	}
	now := time.Now()
	der, err := inter.CreateCRL(serials, big.NewInt(1), now.Add(-time.Minute), now.Add(materialTTL))
	if err != nil {
		return nil, fmt.Errorf("%s CRL: %w", kt, err)
	}
	// Every CA publishes a CRL, as certgen writes them: the services refuse a chain
	// through a CA without one (--crl-require-all).
	rootDER, err := root.CreateCRL(nil, big.NewInt(1), now.Add(-time.Minute), now.Add(materialTTL))
	if err != nil {
		return nil, fmt.Errorf("%s root CRL: %w", kt, err)
	}
	crlPEM := append(pki.EncodeCRLPEM(rootDER), pki.EncodeCRLPEM(der)...)
	m := &material{keyType: kt, inter: inter, bundle: []*x509.Certificate{root.Cert}, crlPEM: crlPEM}
	if m.crl, err = tlsconfig.ParseCRL(m.crlPEM, []*x509.Certificate{root.Cert, inter.Cert}); err != nil {
		return nil, fmt.Errorf("%s CRL: %w", kt, err)
	}
	return m, nil
}

// server issues a service certificate (serverAuth and clientAuth, DNS localhost, IP
// 127.0.0.1), client a client certificate, both with the material's key type.
func (m *material) server(spiffeID string) (*pki.Leaf, error) {
	return m.issue(pki.Request{
		SPIFFEIDs: []string{spiffeID},
		DNSNames:  []string{"localhost"},
		IPs:       []net.IP{net.IPv4(127, 0, 0, 1)},
		Usage:     pki.ServerAuth | pki.ClientAuth,
	})
}

func (m *material) client(spiffeID string) (*pki.Leaf, error) {
	return m.issue(pki.Request{SPIFFEIDs: []string{spiffeID}, Usage: pki.ClientAuth})
}

func (m *material) issue(req pki.Request) (*pki.Leaf, error) {
	req.CommonName = filepath.Base(req.SPIFFEIDs[0])
	leaf, err := m.inter.Issue(req, pki.WithKeyType(m.keyType), pki.WithTTL(materialTTL))
	if err != nil {
		return nil, fmt.Errorf("issue %s: %w", req.SPIFFEIDs[0], err)
	}
	return leaf, nil
}

// source returns a tlsconfig.Source presenting leaf, trusting the bundle and enforcing
// the CRL.
func (m *material) source(leaf *pki.Leaf) (*tlsconfig.Source, error) {
	return tlsconfig.NewSource(trustDomain, leaf.TLSCertificate(), m.bundle, tlsconfig.WithCRL(m.crl))
}

// writeFiles writes what a service loads (NAME.crt, NAME.key, ca.crt, crl.pem) into dir.
func (m *material) writeFiles(dir, name string, leaf *pki.Leaf) (tlsconfig.Files, error) {
	key, err := pki.EncodeKeyPEM(leaf.Key)
	if err != nil {
		return tlsconfig.Files{}, err
	}
	f := tlsconfig.Files{
		Cert: filepath.Join(dir, name+".crt"),
		Key:  filepath.Join(dir, name+".key"),
		CA:   filepath.Join(dir, "ca.crt"),
		CRL:  filepath.Join(dir, "crl.pem"),
	}
	for _, w := range []struct {
		path string
		data []byte
		perm os.FileMode
	}{
		{f.Cert, pki.EncodeCertsPEM(leaf.Chain...), 0o644},
		{f.Key, key, 0o600},
		{f.CA, pki.EncodeCertsPEM(m.bundle...), 0o644},
		{f.CRL, m.crlPEM, 0o644},
	} {
		if err := pki.WriteFileAtomic(w.path, w.data, w.perm); err != nil {
			return tlsconfig.Files{}, err
		}
	}
	return f, nil
}
