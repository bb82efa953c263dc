package identity_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
)

var td = spiffeid.RequireTrustDomainFromString(identity.DefaultTrustDomain)

// TestSerialHexAsOpenSSLPrints pins the printed serial (WhoAmI, logs, audit) to the
// form openssl x509 -serial prints: whole bytes, upper case. A serial with an odd
// number of hex digits is where Text(16) ("abc") and %X ("ABC") both differ from it.
func TestSerialHexAsOpenSSLPrints(t *testing.T) {
	p := pkitest.New(t)
	leaf := p.Client(t, "spiffe://bank.local/customer/alice", pki.WithSerial(big.NewInt(0xabc))).Cert
	id, err := identity.FromCertificate(leaf, td)
	if err != nil {
		t.Fatal(err)
	}
	if id.SerialHex != "0ABC" {
		t.Errorf("SerialHex = %q, want %q (openssl x509 -serial: serial=0ABC)", id.SerialHex, "0ABC")
	}
}

func TestFromCertificate(t *testing.T) {
	p := pkitest.New(t)
	const alice = "spiffe://bank.local/customer/alice"
	tests := []struct {
		name    string
		leaf    func(tb testing.TB) *x509.Certificate
		wantErr error
		wantID  string
	}{
		{name: "ecdsa client", leaf: func(tb testing.TB) *x509.Certificate { return p.Client(tb, alice).Cert }, wantID: alice},
		{name: "rsa-2048", leaf: func(tb testing.TB) *x509.Certificate {
			return p.Client(tb, alice, pki.WithKeyType(pki.RSA2048)).Cert
		}, wantID: alice},
		{name: "ed25519", leaf: func(tb testing.TB) *x509.Certificate {
			return p.Client(tb, alice, pki.WithKeyType(pki.Ed25519)).Cert
		}, wantID: alice},
		{name: "nil", leaf: func(testing.TB) *x509.Certificate { return nil }, wantErr: identity.ErrNoIdentity},
		{name: "rsa-1024", leaf: func(tb testing.TB) *x509.Certificate {
			return p.Client(tb, alice, pki.WithKeyType(pki.RSA1024)).Cert
		}, wantErr: identity.ErrWeakKey},
		{name: "ca certificate", leaf: func(tb testing.TB) *x509.Certificate {
			return p.Issue(tb, pki.Request{CommonName: "ca", SPIFFEIDs: []string{alice}, IsCA: true}).Cert
		}, wantErr: identity.ErrCACertificate},
		{name: "no uri san", leaf: func(tb testing.TB) *x509.Certificate {
			return p.Issue(tb, pki.Request{CommonName: "x", Usage: pki.ClientAuth}).Cert
		}, wantErr: identity.ErrNoSPIFFEID},
		{name: "two spiffe ids", leaf: func(tb testing.TB) *x509.Certificate {
			return p.Issue(tb, pki.Request{CommonName: "x", SPIFFEIDs: []string{alice, "spiffe://bank.local/customer/bob"}, Usage: pki.ClientAuth}).Cert
		}, wantErr: identity.ErrMultipleIDs},
		{name: "spiffe id plus https uri", leaf: func(tb testing.TB) *x509.Certificate {
			return p.Issue(tb, pki.Request{CommonName: "x", SPIFFEIDs: []string{alice, "https://bank.local/"}, Usage: pki.ClientAuth}).Cert
		}, wantErr: identity.ErrMultipleIDs},
		{name: "https uri", leaf: func(tb testing.TB) *x509.Certificate {
			return p.Issue(tb, pki.Request{CommonName: "x", SPIFFEIDs: []string{"https://bank.local/customer/alice"}, Usage: pki.ClientAuth}).Cert
		}, wantErr: identity.ErrNotSPIFFE},
		{name: "trust domain only", leaf: func(tb testing.TB) *x509.Certificate {
			return p.Issue(tb, pki.Request{CommonName: "x", SPIFFEIDs: []string{"spiffe://bank.local"}, Usage: pki.ClientAuth}).Cert
		}, wantErr: identity.ErrNotSPIFFE},
		{name: "wrong trust domain", leaf: func(tb testing.TB) *x509.Certificate {
			return p.Client(tb, "spiffe://evil.example/customer/alice").Cert
		}, wantErr: identity.ErrWrongTrustDomain},
		{name: "no digitalSignature", leaf: func(tb testing.TB) *x509.Certificate {
			return rawLeaf(tb, p, alice, x509.KeyUsageKeyAgreement)
		}, wantErr: identity.ErrKeyUsage},
		{name: "no key usage extension", leaf: func(tb testing.TB) *x509.Certificate {
			return rawLeaf(tb, p, alice, 0)
		}, wantErr: identity.ErrKeyUsage},
		{name: "keyCertSign on a leaf", leaf: func(tb testing.TB) *x509.Certificate {
			return rawLeaf(tb, p, alice, x509.KeyUsageDigitalSignature|x509.KeyUsageCertSign)
		}, wantErr: identity.ErrKeyUsage},
		{name: "cRLSign on a leaf", leaf: func(tb testing.TB) *x509.Certificate {
			return rawLeaf(tb, p, alice, x509.KeyUsageDigitalSignature|x509.KeyUsageCRLSign)
		}, wantErr: identity.ErrKeyUsage},
		{name: "digitalSignature and keyEncipherment", leaf: func(tb testing.TB) *x509.Certificate {
			return rawLeaf(tb, p, alice, x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment)
		}, wantID: alice},
		{name: "look-alike trust domain", leaf: func(tb testing.TB) *x509.Certificate {
			return p.Client(tb, "spiffe://bank.local.evil.example/customer/alice").Cert
		}, wantErr: identity.ErrWrongTrustDomain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf := tt.leaf(t)
			id, err := identity.FromCertificate(leaf, td)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("FromCertificate() error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got := id.ID.String(); got != tt.wantID {
				t.Errorf("ID = %q, want %q", got, tt.wantID)
			}
			if id.Leaf != leaf || id.Serial.Cmp(leaf.SerialNumber) != 0 || id.SerialHex != pki.SerialHex(leaf.SerialNumber) {
				t.Errorf("serial/leaf not taken from the leaf: %+v", id)
			}
			if !id.NotAfter.Equal(leaf.NotAfter) || id.Subject.CommonName != leaf.Subject.CommonName {
				t.Errorf("NotAfter/Subject not taken from the leaf")
			}
			if len(id.FingerprintHex()) != 64 {
				t.Errorf("FingerprintHex() = %q", id.FingerprintHex())
			}
		})
	}
}

func TestFromPeer(t *testing.T) {
	p := pkitest.New(t)
	leaf := p.Client(t, "spiffe://bank.local/customer/alice")
	other := p.Client(t, "spiffe://bank.local/customer/mallory")
	cached, err := identity.FromCertificate(leaf.Cert, td)
	if err != nil {
		t.Fatal(err)
	}
	verified := tls.ConnectionState{
		// PeerCertificates differ on purpose: the identity must come from the verified chain.
		PeerCertificates: []*x509.Certificate{other.Cert},
		VerifiedChains:   [][]*x509.Certificate{{leaf.Cert, p.Intermediate.Cert, p.Root.Cert}},
	}
	tests := []struct {
		name     string
		authInfo credentials.AuthInfo
		noPeer   bool
		wantID   string
		wantErr  error
	}{
		{name: "no peer", noPeer: true, wantErr: identity.ErrNoIdentity},
		{name: "no auth info", wantErr: identity.ErrNoIdentity},
		{name: "cached auth info", authInfo: identity.AuthInfo{Identity: cached}, wantID: cached.ID.String()},
		{name: "tls info uses verified chain", authInfo: credentials.TLSInfo{State: verified}, wantID: "spiffe://bank.local/customer/alice"},
		{name: "tls info without verified chain", authInfo: credentials.TLSInfo{State: tls.ConnectionState{PeerCertificates: []*x509.Certificate{other.Cert}}}, wantErr: identity.ErrNoIdentity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if !tt.noPeer {
				ctx = peer.NewContext(ctx, &peer.Peer{Addr: &net.TCPAddr{}, AuthInfo: tt.authInfo})
			}
			id, err := identity.FromPeer(ctx)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("FromPeer() error = %v, want %v", err, tt.wantErr)
			}
			if err == nil && id.ID.String() != tt.wantID {
				t.Errorf("FromPeer() = %s, want %s", id.ID, tt.wantID)
			}
			if ti, ok := tt.authInfo.(credentials.TLSInfo); ok && err == nil && len(id.Chain) != len(ti.State.VerifiedChains[0]) {
				t.Errorf("FromPeer() kept a chain of %d certificates, want the verified chain", len(id.Chain))
			}
		})
	}
}

func TestContext(t *testing.T) {
	ctx := context.Background()
	if _, ok := identity.FromContext(ctx); ok {
		t.Fatal("FromContext on an empty context reported an identity")
	}
	want := identity.Identity{ID: spiffeid.RequireFromString("spiffe://bank.local/teller/tina")}
	got, ok := identity.FromContext(identity.NewContext(ctx, &want))
	if !ok || got.ID != want.ID {
		t.Fatalf("FromContext() = %v, %v; want %v", got.ID, ok, want.ID)
	}
}

// rawLeaf signs, with p's intermediate, a non-CA clientAuth leaf for spiffeID with exactly
// the key usage bits given (0: no key usage extension), which internal/pki never makes.
func rawLeaf(tb testing.TB, p *pkitest.PKI, spiffeID string, usage x509.KeyUsage) *x509.Certificate {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	u, err := url.Parse(spiffeID)
	if err != nil {
		tb.Fatal(err)
	}
	serial, err := pki.RandomSerial()
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "raw"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		URIs:                  []*url.URL{u},
		KeyUsage:              usage,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.Intermediate.Cert, key.Public(), p.Intermediate.Key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return cert
}
