package grpcserver_test

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/tlsconfig"
)

var transports = []string{"bufconn", "tcp"}

// TestTransportRejections: every bad client certificate is refused during the handshake,
// so neither an interceptor nor a handler runs, and the server classifies the failure.
// Bad certificates go out through GetClientCertificate (tlsconfig.ClientConfig), because
// crypto/tls would otherwise silently omit one that does not chain to an advertised CA.
func TestTransportRejections(t *testing.T) {
	for _, transport := range transports {
		t.Run(transport, func(t *testing.T) {
			h := start(t, transport)
			p := h.pki
			rogue := pkitest.New(t)
			alice := "spiffe://bank.local/customer/alice"
			now := time.Now()
			revoked := p.Client(t, "spiffe://bank.local/customer/eve")
			crl, err := tlsconfig.ParseCRL(p.CRL(t, revoked.Cert), h.src.CRLIssuers())
			if err != nil {
				t.Fatal(err)
			}
			h.src.SetCRL(crl)

			selfSigned, err := pki.SelfSigned(pki.Request{CommonName: "alice", SPIFFEIDs: []string{alice}, Usage: pki.ClientAuth})
			if err != nil {
				t.Fatal(err)
			}
			withCert := func(l *pki.Leaf) func(testing.TB) credentials.TransportCredentials {
				return func(tb testing.TB) credentials.TransportCredentials {
					return tlsconfig.ClientCredentials(h.clientSource(tb, l), h.serverName)
				}
			}
			// tweak builds a raw client config for the cases tlsconfig refuses to build.
			tweak := func(l *pki.Leaf, edit func(*tls.Config)) func(testing.TB) credentials.TransportCredentials {
				return func(tb testing.TB) credentials.TransportCredentials {
					cfg := tlsconfig.ClientConfig(h.clientSource(tb, l), h.serverName)
					edit(cfg)
					return credentials.NewTLS(cfg)
				}
			}
			valid := p.Client(t, alice)
			tests := []struct {
				name       string
				creds      func(testing.TB) credentials.TransportCredentials
				clientText string // in the RPC error
				reason     string // tlsconfig.FailureReason of the server-side error
			}{
				{name: "no certificate", creds: tweak(valid, func(c *tls.Config) {
					c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tls.Certificate{}, nil }
				}), clientText: "tls: certificate required", reason: tlsconfig.ReasonNoCertificate},
				{name: "untrusted CA", creds: withCert(rogue.Client(t, alice)), clientText: "tls: unknown certificate authority", reason: tlsconfig.ReasonUnknownCA},
				{name: "self-signed", creds: withCert(selfSigned), clientText: "tls: unknown certificate authority", reason: tlsconfig.ReasonUnknownCA},
				{name: "expired", creds: withCert(p.Client(t, alice, pki.WithValidity(now.Add(-2*time.Hour), now.Add(-time.Hour)))),
					clientText: "tls: expired certificate", reason: tlsconfig.ReasonExpired},
				{name: "not yet valid", creds: withCert(p.Client(t, alice, pki.WithValidity(now.Add(time.Hour), now.Add(2*time.Hour)))),
					clientText: "tls: expired certificate", reason: tlsconfig.ReasonExpired},
				{name: "serverAuth-only EKU", creds: withCert(p.Issue(t, pki.Request{CommonName: "alice", SPIFFEIDs: []string{alice}, Usage: pki.ServerAuth})),
					clientText: "tls: bad certificate", reason: tlsconfig.ReasonBadUsage},
				{name: "CA certificate as client", creds: withCert(p.Issue(t, pki.Request{CommonName: "alice", SPIFFEIDs: []string{alice}, IsCA: true})),
					clientText: "tls: bad certificate", reason: tlsconfig.ReasonCACertificate},
				{name: "revoked", creds: withCert(revoked), clientText: "tls: bad certificate", reason: tlsconfig.ReasonRevoked},
				{name: "RSA-1024", creds: withCert(p.Client(t, alice, pki.WithKeyType(pki.RSA1024))), clientText: "tls: bad certificate", reason: tlsconfig.ReasonWeakKey},
				{name: "wrong trust domain", creds: withCert(p.Client(t, "spiffe://evil.example/customer/alice")), clientText: "tls: bad certificate", reason: tlsconfig.ReasonSPIFFEID},
				{name: "two URI SANs", creds: withCert(p.Issue(t, pki.Request{CommonName: "alice", SPIFFEIDs: []string{alice, "spiffe://bank.local/teller/tina"}, Usage: pki.ClientAuth})),
					clientText: "tls: bad certificate", reason: tlsconfig.ReasonSPIFFEID},
				{name: "no SPIFFE ID", creds: withCert(p.Issue(t, pki.Request{CommonName: "alice", DNSNames: []string{"alice.bank.local"}, Usage: pki.ClientAuth})),
					clientText: "tls: bad certificate", reason: tlsconfig.ReasonSPIFFEID},
				{name: "TLS 1.2-only client", creds: tweak(valid, func(c *tls.Config) {
					c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
				}), clientText: "tls: protocol version not supported", reason: tlsconfig.ReasonProtocolVersion},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					drain(h.handshakes)
					records := h.interceptorRecords()
					before := h.svc.calls.Load()
					cc := h.dial(t, tt.creds(t))
					_, err := echo(context.Background(), cc, "hello")
					if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), tt.clientText) {
						t.Fatalf("RPC error = %v, want Unavailable with %q", err, tt.clientText)
					}
					serverErr := h.nextHandshakeFailure(t)
					var he *tlsconfig.HandshakeError
					if !errors.As(serverErr, &he) || he.Remote == nil {
						t.Errorf("server error %v does not name the client", serverErr)
					}
					if got := tlsconfig.FailureReason(serverErr); got != tt.reason {
						t.Errorf("server rejected with %v, classified %q; want %q", serverErr, got, tt.reason)
					}
					cc.Close()
					if h.svc.calls.Load() != before {
						t.Error("a handler ran")
					}
					if n := h.interceptorRecords(); n != records {
						t.Errorf("interceptors logged %d records for a rejected handshake", n-records)
					}
					if len(h.logs.find(map[string]any{"msg": "TLS handshake rejected", "reason": tt.reason})) == 0 {
						t.Errorf("no log of the rejected handshake with reason %q", tt.reason)
					}
				})
			}

			// The harness itself works: the same client with a valid certificate gets through.
			t.Run("control: valid certificate", func(t *testing.T) {
				got, err := echo(context.Background(), h.connect(t, valid), "hello")
				if err != nil || got.GetValue() != "hello" {
					t.Fatalf("Echo = %v, %v", got, err)
				}
			})
		})
	}
}

// TestClientRejectsServer: the client side refuses a server with the wrong name, from an
// untrusted CA, or with an unexpected SPIFFE ID, before sending any request.
func TestClientRejectsServer(t *testing.T) {
	for _, transport := range transports {
		t.Run(transport, func(t *testing.T) {
			h := start(t, transport)
			client := h.clientSource(t, h.pki.Client(t, "spiffe://bank.local/customer/alice"))
			rogue := pkitest.New(t)
			rogueTrust, err := tlsconfig.NewSource(td, h.pki.Client(t, "spiffe://bank.local/customer/alice").TLSCertificate(), rogue.Bundle)
			if err != nil {
				t.Fatal(err)
			}
			payments := spiffeid.RequireFromString("spiffe://bank.local/service/payments")
			accounts := spiffeid.RequireFromString(serverID)
			tests := []struct {
				name       string
				creds      credentials.TransportCredentials
				wantErr    error
				clientText string
			}{
				{name: "server name mismatch", creds: tlsconfig.ClientCredentials(client, "payments.bank.local"), clientText: "certificate is valid for"},
				{name: "server from an untrusted CA", creds: tlsconfig.ClientCredentials(rogueTrust, h.serverName), clientText: "certificate signed by unknown authority"},
				{name: "wrong server SPIFFE ID", creds: tlsconfig.ClientCredentials(client, h.serverName, tlsconfig.WithServerID(payments)),
					clientText: tlsconfig.ErrUnexpectedServer.Error()},
				{name: "control: expected server SPIFFE ID", creds: tlsconfig.ClientCredentials(client, h.serverName, tlsconfig.WithServerID(accounts))},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					before := h.svc.calls.Load()
					_, err := echo(context.Background(), h.dial(t, tt.creds), "hello")
					if tt.clientText == "" {
						if err != nil {
							t.Fatalf("Echo: %v", err)
						}
						return
					}
					if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), tt.clientText) {
						t.Fatalf("RPC error = %v, want Unavailable with %q", err, tt.clientText)
					}
					if h.svc.calls.Load() != before {
						t.Error("a handler ran")
					}
				})
			}
		})
	}
}

func drain(ch chan error) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// TestHandshakeWithoutALPN: a TLS client that does not offer h2 (openssl s_client without
// -alpn h2) passes the certificate checks but is refused by grpc-go, and the failure is
// classified as such rather than as "other".
func TestHandshakeWithoutALPN(t *testing.T) {
	h := start(t, "tcp")
	cfg := tlsconfig.ClientConfig(h.clientSource(t, h.pki.Client(t, "spiffe://bank.local/customer/alice")), h.serverName)
	cfg.NextProtos = nil
	conn, err := tls.Dial("tcp", h.addr, cfg)
	if err == nil {
		// The client's side of a TLS 1.3 handshake ends before the server's verdict.
		_, _ = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if got := tlsconfig.FailureReason(h.nextHandshakeFailure(t)); got != tlsconfig.ReasonNoALPN {
		t.Errorf("classified %q, want %q", got, tlsconfig.ReasonNoALPN)
	}
}
