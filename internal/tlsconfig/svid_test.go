package tlsconfig_test

import (
	"crypto"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/tlsconfig"
)

// spiffeSource is go-spiffe's own static sources put together: an *x509svid.SVID is an
// x509svid.Source and an *x509bundle.Bundle an x509bundle.Source.
type spiffeSource struct {
	*x509svid.SVID
	*x509bundle.Bundle
}

// svidOf turns an issued leaf into go-spiffe's SVID type.
func svidOf(tb testing.TB, leaf *pki.Leaf) *x509svid.SVID {
	tb.Helper()
	id, err := x509svid.IDFromCert(leaf.Cert)
	if err != nil {
		tb.Fatal(err)
	}
	return &x509svid.SVID{ID: id, Certificates: leaf.Chain, PrivateKey: leaf.Key}
}

func spiffeSourceOf(tb testing.TB, p *pkitest.PKI, leaf *pki.Leaf) spiffeSource {
	tb.Helper()
	return spiffeSource{SVID: svidOf(tb, leaf), Bundle: x509bundle.FromX509Authorities(td, p.Bundle)}
}

// TestSourceIsAnX509Source: the file-backed Source answers go-spiffe's interfaces with what
// it presents and trusts, and go-spiffe's own verifier accepts a peer against it.
func TestSourceIsAnX509Source(t *testing.T) {
	p := pkitest.New(t)
	leaf := p.Server(t, "spiffe://bank.local/service/accounts")
	src := newSource(t, p, leaf)

	svid, err := src.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	if svid.ID.String() != "spiffe://bank.local/service/accounts" || len(svid.Certificates) != len(leaf.Chain) ||
		!svid.Certificates[0].Equal(leaf.Cert) || !svid.Certificates[1].Equal(leaf.Chain[1]) {
		t.Fatalf("GetX509SVID = %s with %d certificates, want the leaf and its chain", svid.ID, len(svid.Certificates))
	}
	if !svid.PrivateKey.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf.Cert.PublicKey) {
		t.Fatal("GetX509SVID: private key does not belong to the leaf")
	}
	b, err := src.GetX509BundleForTrustDomain(td)
	if err != nil || !b.Equal(x509bundle.FromX509Authorities(td, p.Bundle)) {
		t.Fatalf("GetX509BundleForTrustDomain(%s) = %v, %v; want the roots", td, b, err)
	}
	if _, err := src.GetX509BundleForTrustDomain(spiffeid.RequireTrustDomainFromString("evil.example")); err == nil {
		t.Fatal("a bundle for another trust domain was returned")
	}
	alice := p.Client(t, "spiffe://bank.local/customer/alice")
	id, _, err := x509svid.Verify(alice.Chain, src)
	if err != nil || id.String() != "spiffe://bank.local/customer/alice" {
		t.Fatalf("x509svid.Verify against the Source: %v, %v", id, err)
	}
}

// TestGoSPIFFESourcesFit: a server and a client whose certificates and bundles come from
// go-spiffe's own sources handshake with every check of the files: the server identity
// pin, the trust domain, the chain to the bundle, expiry.
func TestGoSPIFFESourcesFit(t *testing.T) {
	p := pkitest.New(t)
	rogue := pkitest.New(t)
	accounts := spiffeid.RequireFromString("spiffe://bank.local/service/accounts")
	payments := spiffeid.RequireFromString("spiffe://bank.local/service/payments")
	fromSPIFFE := func(x tlsconfig.X509Source) *tlsconfig.Source {
		t.Helper()
		src, err := tlsconfig.NewSourceFrom(td, x)
		if err != nil {
			t.Fatalf("NewSourceFrom: %v", err)
		}
		return src
	}
	server := fromSPIFFE(spiffeSourceOf(t, p, p.Server(t, accounts.String())))
	past := time.Now().Add(-2 * time.Hour)
	tests := []struct {
		name      string
		client    tlsconfig.X509Source
		serverID  spiffeid.ID
		serverErr error  // on the server, errors.Is
		reason    string // FailureReason of the server's error
		clientErr error
	}{
		{name: "ok", client: spiffeSourceOf(t, p, p.Client(t, "spiffe://bank.local/customer/alice")), serverID: accounts},
		{name: "server pin", client: spiffeSourceOf(t, p, p.Client(t, "spiffe://bank.local/customer/alice")), serverID: payments,
			clientErr: tlsconfig.ErrUnexpectedServer},
		{name: "client from another CA", client: spiffeSource{SVID: svidOf(t, rogue.Client(t, "spiffe://bank.local/customer/alice")),
			Bundle: x509bundle.FromX509Authorities(td, p.Bundle)}, serverID: accounts, reason: tlsconfig.ReasonUnknownCA},
		{name: "expired client SVID", client: spiffeSourceOf(t, p, p.Client(t, "spiffe://bank.local/customer/alice",
			pki.WithValidity(past, past.Add(time.Hour)))), serverID: accounts, reason: tlsconfig.ReasonExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := fromSPIFFE(tt.client)
			serverErr, clientErr, _ := handshake(t, tlsconfig.ServerConfig(server), tlsconfig.ClientConfig(client, "localhost", tlsconfig.WithServerID(tt.serverID)))
			switch {
			case tt.clientErr != nil:
				if !errors.Is(clientErr, tt.clientErr) {
					t.Fatalf("client error = %v, want %v", clientErr, tt.clientErr)
				}
			case tt.reason != "":
				if got := tlsconfig.FailureReason(serverErr); got != tt.reason {
					t.Fatalf("server error %v classified %q, want %q", serverErr, got, tt.reason)
				}
			default:
				if serverErr != nil || clientErr != nil {
					t.Fatalf("server %v, client %v", serverErr, clientErr)
				}
			}
		})
	}
}

// TestNewSourceFromRefuses: an SVID of another trust domain, or without its key, or with
// a bundle that is not a CA set, never becomes a Source.
func TestNewSourceFromRefuses(t *testing.T) {
	p := pkitest.New(t)
	other := spiffeid.RequireTrustDomainFromString("evil.example")
	alice := p.Client(t, "spiffe://bank.local/customer/alice")
	foreign := p.Client(t, "spiffe://evil.example/customer/alice")
	bob := p.Client(t, "spiffe://bank.local/customer/bob")
	keyless := svidOf(t, alice)
	keyless.PrivateKey = nil
	mismatched := svidOf(t, alice)
	mismatched.PrivateKey = bob.Key
	tests := []struct {
		name string
		x    tlsconfig.X509Source
		want error
	}{
		{name: "SVID of another trust domain", x: spiffeSource{svidOf(t, foreign), x509bundle.FromX509Authorities(other, p.Bundle)},
			want: tlsconfig.ErrOutsideTrustDomain},
		{name: "no bundle for the trust domain", x: spiffeSource{svidOf(t, alice), x509bundle.FromX509Authorities(other, p.Bundle)}},
		{name: "no private key", x: spiffeSource{keyless, x509bundle.FromX509Authorities(td, p.Bundle)}},
		{name: "key of another certificate", x: spiffeSource{mismatched, x509bundle.FromX509Authorities(td, p.Bundle)},
			want: tlsconfig.ErrKeyMismatch},
		{name: "empty bundle", x: spiffeSource{svidOf(t, alice), x509bundle.New(td)}, want: tlsconfig.ErrEmptyBundle},
		{name: "leaf in the bundle", x: spiffeSource{svidOf(t, alice), x509bundle.FromX509Authorities(td, []*x509.Certificate{bob.Cert})},
			want: tlsconfig.ErrNotCA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := tlsconfig.NewSourceFrom(td, tt.x)
			if err == nil {
				t.Fatalf("NewSourceFrom = %v, want an error", src)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("NewSourceFrom: %v, want %v", err, tt.want)
			}
		})
	}
}

// TestUpdate: a new SVID rotates the certificate presented and says which; the same
// material changes nothing (not even the trust generation, which would empty the
// per-call cache); a new bundle is taken; a bad update changes nothing at all.
func TestUpdate(t *testing.T) {
	p := pkitest.New(t)
	first := p.Client(t, "spiffe://bank.local/service/payments")
	src, err := tlsconfig.NewSourceFrom(td, spiffeSourceOf(t, p, first))
	if err != nil {
		t.Fatal(err)
	}
	gen := src.Generation()

	u, err := src.Update(spiffeSourceOf(t, p, first))
	if err != nil || u.Rotated || u.BundleChanged || src.Generation() != gen {
		t.Fatalf("same material: %+v, %v, generation %d -> %d; want no change", u, err, gen, src.Generation())
	}

	second := p.Client(t, "spiffe://bank.local/service/payments")
	u, err = src.Update(spiffeSourceOf(t, p, second))
	if err != nil || !u.Rotated || u.BundleChanged || !u.Old.Equal(first.Cert) || !u.New.Equal(second.Cert) {
		t.Fatalf("rotation: %+v, %v; want rotated from the first to the second", u, err)
	}
	if !src.Certificate().Leaf.Equal(second.Cert) || src.Generation() != gen {
		t.Fatal("rotation: the second certificate is not presented, or the trust generation changed")
	}

	// A CA rollover: the bundle grows a second root.
	next := pkitest.New(t)
	both := x509bundle.FromX509Authorities(td, append(append([]*x509.Certificate(nil), p.Bundle...), next.Bundle...))
	u, err = src.Update(spiffeSource{svidOf(t, second), both})
	if err != nil || u.Rotated || !u.BundleChanged || len(src.Bundle()) != 2 || src.Generation() == gen {
		t.Fatalf("bundle change: %+v, %v, %d anchors; want the two roots under a new generation", u, err, len(src.Bundle()))
	}

	// Bad updates: nothing changes, neither the certificate nor the bundle.
	gen = src.Generation()
	foreign := p.Client(t, "spiffe://evil.example/service/payments")
	mismatched := svidOf(t, next.Client(t, "spiffe://bank.local/service/payments"))
	mismatched.PrivateKey = second.Key
	for name, x := range map[string]tlsconfig.X509Source{
		"SVID of another trust domain":      spiffeSource{svidOf(t, foreign), x509bundle.FromX509Authorities(td, next.Bundle)},
		"key of another certificate":        spiffeSource{mismatched, x509bundle.FromX509Authorities(td, next.Bundle)},
		"bundle holding a leaf":             spiffeSource{svidOf(t, next.Client(t, "spiffe://bank.local/service/payments")), x509bundle.FromX509Authorities(td, []*x509.Certificate{first.Cert})},
		"bundle without a self-signed CA":   spiffeSource{svidOf(t, next.Client(t, "spiffe://bank.local/service/payments")), x509bundle.FromX509Authorities(td, []*x509.Certificate{p.Intermediate.Cert})},
		"empty bundle for the trust domain": spiffeSource{svidOf(t, next.Client(t, "spiffe://bank.local/service/payments")), x509bundle.New(td)},
	} {
		if u, err := src.Update(x); err == nil {
			t.Errorf("%s: Update = %+v, want an error", name, u)
		}
		if !src.Certificate().Leaf.Equal(second.Cert) || src.Generation() != gen || len(src.Bundle()) != 2 {
			t.Fatalf("%s: a refused update changed the source", name)
		}
	}
	if _, err := identity.FromCertificate(src.Certificate().Leaf, td); err != nil {
		t.Fatal(err)
	}
}
