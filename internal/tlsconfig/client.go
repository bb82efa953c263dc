package tlsconfig

import (
	"crypto/tls"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki"
)

// ClientOption configures ClientConfig and ClientCredentials.
type ClientOption func(*clientOptions)

type clientOptions struct {
	serverID spiffeid.ID
}

// WithServerID makes the client accept only a server whose verified leaf carries exactly
// this SPIFFE ID (in addition to the server name check).
func WithServerID(id spiffeid.ID) ClientOption {
	return func(o *clientOptions) { o.serverID = id }
}

func newClientOptions(opts []ClientOption) clientOptions {
	var o clientOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// ClientConfig returns a fresh client *tls.Config for src: TLS 1.3, RootCAs = the trust
// anchors (roots) of the bank bundle, ServerName checked, the server leaf held to the
// X.509-SVID rules and every certificate of its chain but the root checked against the
// CRLs, and the client certificate always sent through
// GetClientCertificate. crypto/tls silently omits a certificate that does not chain to a
// CA the server advertises; sending it anyway lets the server say what is wrong with it.
func ClientConfig(src *Source, serverName string, opts ...ClientOption) *tls.Config {
	o := newClientOptions(opts)
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    src.trust.Load().roots,
		ServerName: serverName,
		NextProtos: []string{"h2"},
		Time:       src.now,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return src.cert.Load(), nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			return src.verifyServer(cs, o.serverID)
		},
	}
}

func (s *Source) verifyServer(cs tls.ConnectionState, want spiffeid.ID) error {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return ErrNoVerifiedChain
	}
	chain := cs.VerifiedChains[0]
	leaf := chain[0]
	if leaf.IsCA {
		return fmt.Errorf("server certificate: %w", identity.ErrCACertificate)
	}
	if err := identity.CheckLeafUsage(leaf); err != nil {
		return fmt.Errorf("server certificate serial %s: %w", pki.SerialHex(leaf.SerialNumber), err)
	}
	if err := s.checkVerifiedChains(cs.VerifiedChains); err != nil {
		return fmt.Errorf("server certificate: %w", err)
	}
	if want.IsZero() {
		return nil
	}
	id, err := identity.FromCertificate(chain[0], s.td)
	if err != nil {
		return fmt.Errorf("server certificate: %w", err)
	}
	if id.ID != want {
		return fmt.Errorf("%w: got %s, want %s", ErrUnexpectedServer, id.ID, want)
	}
	return nil
}
