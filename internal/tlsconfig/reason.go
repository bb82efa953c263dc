package tlsconfig

import (
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"

	"mtlsbank/internal/identity"
)

// Handshake failure reasons returned by FailureReason.
const (
	ReasonNoCertificate   = "no_certificate"
	ReasonUnknownCA       = "unknown_ca"
	ReasonExpired         = "expired"
	ReasonBadUsage        = "bad_usage"
	ReasonRevoked         = "revoked"
	ReasonCRLStale        = "crl_stale"
	ReasonCRLMissing      = "crl_missing"
	ReasonKeyUsage        = "key_usage"
	ReasonCACertificate   = "ca_certificate"
	ReasonWeakKey         = "weak_key"
	ReasonSPIFFEID        = "spiffe_id"
	ReasonProtocolVersion = "protocol_version"
	ReasonTimeout         = "timeout"
	ReasonNoALPN          = "no_alpn"
	ReasonClosed          = "closed"
	ReasonOther           = "other"
)

// FailureReason classifies a server handshake error (as passed to the hook of
// WithHandshakeFailureHook) into one of the Reason constants, for logs and metrics.
func FailureReason(err error) string {
	var (
		unknownCA x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		netErr    net.Error
	)
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrRevoked):
		return ReasonRevoked
	case errors.Is(err, ErrCRLStale):
		return ReasonCRLStale
	case errors.Is(err, ErrCRLMissing):
		return ReasonCRLMissing
	case errors.Is(err, ErrExpired):
		return ReasonExpired
	case errors.Is(err, identity.ErrKeyUsage):
		return ReasonKeyUsage
	case errors.Is(err, ErrUntrusted):
		return ReasonUnknownCA
	case errors.Is(err, identity.ErrCACertificate):
		return ReasonCACertificate
	case errors.Is(err, identity.ErrWeakKey):
		return ReasonWeakKey
	case errors.Is(err, identity.ErrNoSPIFFEID), errors.Is(err, identity.ErrMultipleIDs),
		errors.Is(err, identity.ErrNotSPIFFE), errors.Is(err, identity.ErrWrongTrustDomain):
		return ReasonSPIFFEID
	case errors.As(err, &unknownCA):
		return ReasonUnknownCA
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return ReasonExpired
	case errors.As(err, &invalid) && invalid.Reason == x509.IncompatibleUsage:
		return ReasonBadUsage
	case errors.As(err, &netErr) && netErr.Timeout():
		return ReasonTimeout
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return ReasonClosed
	}
	// crypto/tls and grpc-go have no typed errors for these; their messages are stable
	// API in practice.
	msg := err.Error()
	switch {
	case strings.Contains(msg, "missing selected ALPN property"):
		// A TLS client that did not offer h2 (openssl s_client without -alpn h2, curl):
		// grpc-go refuses it once the handshake is done.
		return ReasonNoALPN
	case strings.Contains(msg, "client didn't provide a certificate"):
		return ReasonNoCertificate
	case strings.Contains(msg, "unsupported versions"), strings.Contains(msg, "protocol version"):
		return ReasonProtocolVersion
	}
	return ReasonOther
}
