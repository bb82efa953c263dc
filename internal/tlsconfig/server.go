package tlsconfig

import (
	"crypto/tls"
	"fmt"
	"sync/atomic"

	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki"
)

// ServerConfig returns a fresh server *tls.Config for src: TLS 1.3 only, ALPN h2, a client
// certificate required and verified against the bank bundle only (never the system pool),
// and VerifyConnection enforcing the bank's identity rules and the CRL. Each handshake
// gets, through GetConfigForClient, the config of src's current trust material (one per
// reload generation, made at the first handshake after the reload, never modified), so
// swapping the bundle or CRL in src takes effect on the next handshake; the certificate
// is read per handshake (GetCertificate).
func ServerConfig(src *Source) *tls.Config {
	cfg := src.serverConfig(src.trust.Load())
	var current atomic.Pointer[generationConfig]
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		t := src.trust.Load()
		if g := current.Load(); g != nil && g.trust == t {
			return g.cfg, nil
		}
		g := &generationConfig{trust: t, cfg: src.serverConfig(t)}
		current.Store(g)
		return g.cfg, nil
	}
	return cfg
}

// generationConfig is the server config of one trust generation.
type generationConfig struct {
	trust *trust
	cfg   *tls.Config
}

// serverConfig is complete on its own (it is also the base config), so that a nil from
// GetConfigForClient could never fall back to a config without ClientCAs.
func (s *Source) serverConfig(t *trust) *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		ClientAuth:       tls.RequireAndVerifyClientCert,
		ClientCAs:        t.roots,
		NextProtos:       []string{"h2"},
		Time:             s.now,
		GetCertificate:   s.getCertificate,
		VerifyConnection: s.verifyClient,
	}
}

func (s *Source) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cert.Load(), nil
}

// verifyClient runs on every handshake, resumed ones included, after crypto/tls verified
// the chain (and the clientAuth EKU) against ClientCAs, which hold only roots: a verified
// chain always runs up to a root, so every CA under it is checked against the CRLs.
func (s *Source) verifyClient(cs tls.ConnectionState) error {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return ErrNoVerifiedChain
	}
	chain := cs.VerifiedChains[0]
	leaf := chain[0]
	if _, err := identity.FromCertificate(leaf, s.td); err != nil {
		return fmt.Errorf("client certificate serial %s: %w", pki.SerialHex(leaf.SerialNumber), err)
	}
	if err := s.checkVerifiedChains(cs.VerifiedChains); err != nil {
		return fmt.Errorf("client certificate: %w", err)
	}
	return nil
}
