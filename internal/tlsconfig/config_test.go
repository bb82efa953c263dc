package tlsconfig_test

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/tlsconfig"
)

func TestServerConfigFields(t *testing.T) {
	p := pkitest.New(t)
	src := newSource(t, p, p.Server(t, "spiffe://bank.local/service/accounts"))
	a, b := tlsconfig.ServerConfig(src), tlsconfig.ServerConfig(src)
	if a == b {
		t.Fatal("ServerConfig returned the same *tls.Config twice")
	}
	perHandshake, err := a.GetConfigForClient(&tls.ClientHelloInfo{})
	if err != nil || perHandshake == nil {
		t.Fatalf("GetConfigForClient = %v, %v", perHandshake, err)
	}
	for name, cfg := range map[string]*tls.Config{"base": a, "per handshake": perHandshake} {
		if cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.ClientCAs == nil || cfg.MinVersion != tls.VersionTLS13 ||
			cfg.InsecureSkipVerify || cfg.VerifyConnection == nil || len(cfg.NextProtos) != 1 || cfg.NextProtos[0] != "h2" {
			t.Errorf("%s config is not the hardened server config: %+v", name, cfg)
		}
	}
	c := tlsconfig.ClientConfig(src, "accounts")
	if c.InsecureSkipVerify || c.RootCAs == nil || c.ServerName != "accounts" || c.GetClientCertificate == nil || c.MinVersion != tls.VersionTLS13 {
		t.Errorf("client config is not the hardened client config: %+v", c)
	}
}

// TestServerConfigPerGeneration: handshakes share one config per trust generation (made
// once, not per handshake), and a new bundle gives the next handshake a new config that
// trusts the new roots and is as hardened as the first.
func TestServerConfigPerGeneration(t *testing.T) {
	p := pkitest.New(t)
	src := newSource(t, p, p.Server(t, "spiffe://bank.local/service/accounts"))
	base := tlsconfig.ServerConfig(src)
	first, err := base.GetConfigForClient(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	again, err := base.GetConfigForClient(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if again != first {
		t.Error("two handshakes of one trust generation got two configs")
	}
	other := pkitest.New(t)
	if err := src.SetBundle(append(p.Bundle, other.Root.Cert)); err != nil {
		t.Fatal(err)
	}
	next, err := base.GetConfigForClient(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if next == first || next.ClientCAs.Equal(first.ClientCAs) {
		t.Fatal("after a new bundle the handshake got the old config")
	}
	if !next.ClientCAs.Equal(pki.NewCertPool(p.Root.Cert, other.Root.Cert)) {
		t.Error("the new config does not trust exactly the new bundle's roots")
	}
	if next.ClientAuth != tls.RequireAndVerifyClientCert || next.MinVersion != tls.VersionTLS13 || next.VerifyConnection == nil ||
		next.GetCertificate == nil || next.GetConfigForClient != nil {
		t.Errorf("the new generation's config is not the hardened server config: %+v", next)
	}
	// The new roots work: a client of the other PKI completes a handshake.
	carol, err := tlsconfig.NewSource(td, other.Client(t, "spiffe://bank.local/customer/carol").TLSCertificate(), p.Bundle)
	if err != nil {
		t.Fatal(err)
	}
	if serverErr, clientErr, _ := handshake(t, base, tlsconfig.ClientConfig(carol, "localhost")); serverErr != nil || clientErr != nil {
		t.Errorf("a client of the added root: server %v, client %v", serverErr, clientErr)
	}
}

// TestClientSide checks what a client refuses about a server, and that a client always
// sends its certificate.
func TestClientSide(t *testing.T) {
	p := pkitest.New(t)
	rogue := pkitest.New(t)
	accounts := spiffeid.RequireFromString("spiffe://bank.local/service/accounts")
	server := newSource(t, p, p.Server(t, accounts.String()))
	rogueServer := newSource(t, p, rogue.Server(t, accounts.String()))
	client := newSource(t, p, p.Client(t, "spiffe://bank.local/customer/alice"))

	tests := []struct {
		name       string
		server     *tlsconfig.Source
		serverName string
		opts       []tlsconfig.ClientOption
		wantErr    error  // on the client
		wantText   string // in the client error
	}{
		{name: "ok", server: server, serverName: "localhost"},
		{name: "ok with expected server id", server: server, serverName: "localhost", opts: []tlsconfig.ClientOption{tlsconfig.WithServerID(accounts)}},
		{name: "server name mismatch", server: server, serverName: "payments", wantText: "certificate is valid for"},
		{name: "server from untrusted CA", server: rogueServer, serverName: "localhost", wantText: "certificate signed by unknown authority"},
		{name: "wrong server spiffe id", server: server, serverName: "localhost",
			opts:    []tlsconfig.ClientOption{tlsconfig.WithServerID(spiffeid.RequireFromString("spiffe://bank.local/service/payments"))},
			wantErr: tlsconfig.ErrUnexpectedServer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, clientErr, cs := handshake(t, tlsconfig.ServerConfig(tt.server), tlsconfig.ClientConfig(client, tt.serverName, tt.opts...))
			switch {
			case tt.wantErr == nil && tt.wantText == "":
				if clientErr != nil {
					t.Fatalf("client: %v", clientErr)
				}
				if cs.Version != tls.VersionTLS13 || cs.NegotiatedProtocol != "h2" {
					t.Errorf("negotiated %x / %q, want TLS 1.3 / h2", cs.Version, cs.NegotiatedProtocol)
				}
			case tt.wantErr != nil && !errors.Is(clientErr, tt.wantErr):
				t.Fatalf("client error = %v, want %v", clientErr, tt.wantErr)
			case tt.wantText != "" && (clientErr == nil || !strings.Contains(clientErr.Error(), tt.wantText)):
				t.Fatalf("client error = %v, want %q", clientErr, tt.wantText)
			}
		})
	}
}

// TestUntrustedClientCertIsSent proves GetClientCertificate sends a certificate the server
// does not trust, so the server rejects it as unknown rather than as missing.
func TestUntrustedClientCertIsSent(t *testing.T) {
	p := pkitest.New(t)
	rogue := pkitest.New(t)
	server := newSource(t, p, p.Server(t, "spiffe://bank.local/service/accounts"))
	client := newSource(t, p, rogue.Client(t, "spiffe://bank.local/customer/alice"))
	serverErr, _, _ := handshake(t, tlsconfig.ServerConfig(server), tlsconfig.ClientConfig(client, "localhost"))
	if got := tlsconfig.FailureReason(serverErr); got != tlsconfig.ReasonUnknownCA {
		t.Fatalf("server error %v classified %q, want %q", serverErr, got, tlsconfig.ReasonUnknownCA)
	}
}

// TestResumedSessionRechecksRevocation proves that VerifyConnection (and so the CRL)
// also guards a resumed TLS session.
func TestResumedSessionRechecksRevocation(t *testing.T) {
	p := pkitest.New(t)
	server := newSource(t, p, p.Server(t, "spiffe://bank.local/service/accounts"))
	alice := p.Client(t, "spiffe://bank.local/customer/alice")
	client := newSource(t, p, alice)
	serverCfg := tlsconfig.ServerConfig(server)
	clientCfg := tlsconfig.ClientConfig(client, "localhost")
	clientCfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)

	if serr, cerr, _ := handshake(t, serverCfg, clientCfg); serr != nil || cerr != nil {
		t.Fatalf("first handshake: server %v, client %v", serr, cerr)
	}
	serr, cerr, cs := handshake(t, serverCfg, clientCfg)
	if serr != nil || cerr != nil || !cs.DidResume {
		t.Fatalf("second handshake did not resume (server %v, client %v, resumed %v)", serr, cerr, cs.DidResume)
	}
	crl, err := tlsconfig.ParseCRL(p.CRL(t, alice.Cert), server.CRLIssuers())
	if err != nil {
		t.Fatal(err)
	}
	server.SetCRL(crl)
	serr, _, _ = handshake(t, serverCfg, clientCfg)
	if !errors.Is(serr, tlsconfig.ErrRevoked) {
		t.Fatalf("resumed handshake after revocation: server error %v, want ErrRevoked", serr)
	}
}
