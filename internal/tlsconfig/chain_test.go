package tlsconfig_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/tlsconfig"
)

// twoCAs is one root with two intermediates under it: A (pkitest's intermediate) and B.
type twoCAs struct {
	p    *pkitest.PKI
	a, b *pki.CA
}

func newTwoCAs(tb testing.TB) *twoCAs {
	tb.Helper()
	p := pkitest.New(tb)
	b, err := p.Root.NewIntermediate("pkitest Intermediate CA B", pki.WithTTL(pkitest.CATTL))
	if err != nil {
		tb.Fatal(err)
	}
	return &twoCAs{p: p, a: p.Intermediate, b: b}
}

// leaf issues a clientAuth+serverAuth leaf for spiffeID from ca (localhost SANs).
func leaf(tb testing.TB, ca *pki.CA, spiffeID string) *pki.Leaf {
	tb.Helper()
	l, err := ca.Issue(pki.Request{
		CommonName: "leaf",
		SPIFFEIDs:  []string{spiffeID},
		DNSNames:   []string{"localhost"},
		Usage:      pki.ClientAuth | pki.ServerAuth,
	}, pki.WithTTL(pkitest.LeafTTL))
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// crlOf returns a PEM CRL of ca numbered number, valid from a minute ago until
// nextUpdate, listing revoked.
func crlOf(tb testing.TB, ca *pki.CA, number int64, nextUpdate time.Time, revoked ...*x509.Certificate) []byte {
	tb.Helper()
	serials := make([]*big.Int, 0, len(revoked))
	for _, c := range revoked {
		serials = append(serials, c.SerialNumber)
	}
	der, err := ca.CreateCRL(serials, big.NewInt(number), time.Now().Add(-time.Minute), nextUpdate)
	if err != nil {
		tb.Fatal(err)
	}
	return pki.EncodeCRLPEM(der)
}

func join(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func setCRL(tb testing.TB, src *tlsconfig.Source, data []byte) {
	tb.Helper()
	crl, err := tlsconfig.ParseCRL(data, src.CRLIssuers())
	if err != nil {
		tb.Fatalf("ParseCRL: %v", err)
	}
	if err := src.SetCRL(crl); err != nil {
		tb.Fatalf("SetCRL: %v", err)
	}
}

// TestIntermediateInBundleIsChainMaterial is the bug of a CA bundle that holds the
// intermediate: crypto/tls stopped the verified chain at the intermediate, which was then
// never checked, so the root's CRL revoking it did nothing.
func TestIntermediateInBundleIsChainMaterial(t *testing.T) {
	f := newTwoCAs(t)
	bundle := []*x509.Certificate{f.p.Root.Cert, f.a.Cert, f.b.Cert} // as ca.crt used to be
	server, err := tlsconfig.NewSource(td, leaf(t, f.b, "spiffe://bank.local/service/accounts").TLSCertificate(), bundle)
	if err != nil {
		t.Fatal(err)
	}
	if got := server.Bundle(); len(got) != 1 || !got[0].Equal(f.p.Root.Cert) {
		t.Fatalf("anchors = %d certificates, want the root only", len(got))
	}
	later := time.Now().Add(time.Hour)
	setCRL(t, server, join(crlOf(t, f.p.Root, 1, later, f.a.Cert), crlOf(t, f.a, 1, later), crlOf(t, f.b, 1, later)))

	tests := []struct {
		name    string
		client  *pki.Leaf
		wantErr error
	}{
		{name: "leaf of the revoked intermediate", client: leaf(t, f.a, "spiffe://bank.local/customer/alice"), wantErr: tlsconfig.ErrRevoked},
		{name: "leaf of the other intermediate", client: leaf(t, f.b, "spiffe://bank.local/customer/bob")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := newSource(t, f.p, tt.client)
			serverErr, _, _ := handshake(t, tlsconfig.ServerConfig(server), tlsconfig.ClientConfig(client, "localhost"))
			if !errors.Is(serverErr, tt.wantErr) || (tt.wantErr == nil) != (serverErr == nil) {
				t.Fatalf("server error = %v, want %v", serverErr, tt.wantErr)
			}
		})
	}
}

// TestRevokeOneOfTwoIntermediates: the root's CRL revokes intermediate A; exactly A's
// leaves are refused, on both sides of a handshake and per call, and B's still pass.
func TestRevokeOneOfTwoIntermediates(t *testing.T) {
	f := newTwoCAs(t)
	later := time.Now().Add(time.Hour)
	serverA := newSource(t, f.p, leaf(t, f.a, "spiffe://bank.local/service/accounts"))
	serverB := newSource(t, f.p, leaf(t, f.b, "spiffe://bank.local/service/accounts"))
	clientA := newSource(t, f.p, leaf(t, f.a, "spiffe://bank.local/customer/alice"))
	clientB := newSource(t, f.p, leaf(t, f.b, "spiffe://bank.local/customer/bob"))
	all := []*tlsconfig.Source{serverA, serverB, clientA, clientB}
	crlA, crlB := crlOf(t, f.a, 1, later), crlOf(t, f.b, 1, later)
	for _, src := range all {
		// B's CRL verifies through the intermediates file; A's through it or the chain.
		if err := src.SetIntermediates([]*x509.Certificate{f.a.Cert, f.b.Cert}); err != nil {
			t.Fatal(err)
		}
		setCRL(t, src, join(crlOf(t, f.p.Root, 1, later), crlA, crlB))
	}
	// Before the revocation every pair works, and per-call checks pass.
	type pair struct {
		name           string
		server, client *tlsconfig.Source
		wantServerErr  error // the server refusing the client
		wantClientErr  error // the client refusing the server
	}
	pairs := []pair{
		{name: "A server, A client", server: serverA, client: clientA, wantServerErr: tlsconfig.ErrRevoked, wantClientErr: tlsconfig.ErrRevoked},
		{name: "A server, B client", server: serverA, client: clientB, wantClientErr: tlsconfig.ErrRevoked},
		{name: "B server, A client", server: serverB, client: clientA, wantServerErr: tlsconfig.ErrRevoked},
		{name: "B server, B client", server: serverB, client: clientB},
	}
	for _, pr := range pairs {
		if serr, cerr, _ := handshake(t, tlsconfig.ServerConfig(pr.server), tlsconfig.ClientConfig(pr.client, "localhost")); serr != nil || cerr != nil {
			t.Fatalf("%s before revocation: server %v, client %v", pr.name, serr, cerr)
		}
	}
	peerChains := map[string][]*x509.Certificate{}
	for name, l := range map[string]*tls.Certificate{"A": clientA.Certificate(), "B": clientB.Certificate()} {
		chain := []*x509.Certificate{l.Leaf}
		for _, der := range l.Certificate[1:] {
			c, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			chain = append(chain, c)
		}
		peerChains[name] = append(chain, f.p.Root.Cert)
		if err := serverB.CheckChain(peerChains[name]); err != nil {
			t.Fatalf("CheckChain(%s) before revocation: %v", name, err)
		}
	}

	for _, src := range all {
		setCRL(t, src, join(crlOf(t, f.p.Root, 2, later, f.a.Cert), crlA, crlB))
	}
	for _, pr := range pairs {
		t.Run(pr.name, func(t *testing.T) {
			serr, cerr, _ := handshake(t, tlsconfig.ServerConfig(pr.server), tlsconfig.ClientConfig(pr.client, "localhost"))
			switch {
			case pr.wantClientErr != nil:
				if !errors.Is(cerr, pr.wantClientErr) {
					t.Fatalf("client error = %v, want %v", cerr, pr.wantClientErr)
				}
			case pr.wantServerErr != nil:
				if !errors.Is(serr, pr.wantServerErr) {
					t.Fatalf("server error = %v, want %v", serr, pr.wantServerErr)
				}
				if got := tlsconfig.FailureReason(serr); got != tlsconfig.ReasonRevoked {
					t.Errorf("FailureReason = %q, want %q", got, tlsconfig.ReasonRevoked)
				}
			default:
				if serr != nil || cerr != nil {
					t.Fatalf("server %v, client %v; want both to accept", serr, cerr)
				}
			}
		})
	}
	t.Run("per call", func(t *testing.T) {
		if err := serverB.CheckChain(peerChains["A"]); !errors.Is(err, tlsconfig.ErrRevoked) {
			t.Errorf("CheckChain(A's leaf) = %v, want ErrRevoked", err)
		}
		if err := serverB.CheckChain(peerChains["B"]); err != nil {
			t.Errorf("CheckChain(B's leaf) = %v, want nil", err)
		}
	})
}

// TestIntermediateRollover: a new intermediate with the same name as the old one is
// issued while the old one's leaves are valid; both are accepted, then the old one is
// revoked and only its leaves are refused.
func TestIntermediateRollover(t *testing.T) {
	p := pkitest.New(t)
	old := p.Intermediate
	next, err := p.Root.NewIntermediate(old.Cert.Subject.CommonName, pki.WithTTL(pkitest.CATTL))
	if err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	server := newSource(t, p, leaf(t, next, "spiffe://bank.local/service/accounts"))
	if err := server.SetIntermediates([]*x509.Certificate{old.Cert, next.Cert}); err != nil {
		t.Fatal(err)
	}
	oldLeaf := leaf(t, old, "spiffe://bank.local/customer/alice")
	newLeaf := leaf(t, next, "spiffe://bank.local/customer/alice")
	accept := func(name string, l *pki.Leaf, wantErr error) {
		t.Helper()
		serr, _, _ := handshake(t, tlsconfig.ServerConfig(server), tlsconfig.ClientConfig(newSource(t, p, l), "localhost"))
		if !errors.Is(serr, wantErr) || (wantErr == nil) != (serr == nil) {
			t.Errorf("%s: server error = %v, want %v", name, serr, wantErr)
		}
	}
	// Two CAs with one name: each CRL verifies against its own key, numbered on its own.
	oldCRL := crlOf(t, old, 7, later)
	setCRL(t, server, join(crlOf(t, p.Root, 1, later), oldCRL, crlOf(t, next, 1, later)))
	accept("overlap, old intermediate's leaf", oldLeaf, nil)
	accept("overlap, new intermediate's leaf", newLeaf, nil)

	setCRL(t, server, join(crlOf(t, p.Root, 2, later, old.Cert), oldCRL, crlOf(t, next, 2, later)))
	accept("after, old intermediate's leaf", oldLeaf, tlsconfig.ErrRevoked)
	accept("after, new intermediate's leaf", newLeaf, nil)
}

// TestBundleSplit: what SetBundle and SetIntermediates accept as anchors and chain material.
func TestBundleSplit(t *testing.T) {
	f := newTwoCAs(t)
	rogue := pkitest.New(t)
	src := newSource(t, f.p, f.p.Server(t, "spiffe://bank.local/service/accounts"))
	tests := []struct {
		name    string
		bundle  []*x509.Certificate // SetBundle when not nil
		inters  []*x509.Certificate // else SetIntermediates
		wantErr error
		text    string
	}{
		{name: "root and intermediates", bundle: []*x509.Certificate{f.p.Root.Cert, f.a.Cert, f.b.Cert}},
		{name: "intermediate alone", bundle: []*x509.Certificate{f.a.Cert}, wantErr: tlsconfig.ErrNoAnchor},
		{name: "foreign intermediate", bundle: []*x509.Certificate{f.p.Root.Cert, rogue.Intermediate.Cert}, wantErr: tlsconfig.ErrUnanchored, text: "pkitest Intermediate CA"},
		{name: "intermediates file", inters: []*x509.Certificate{f.a.Cert, f.b.Cert}},
		{name: "root in intermediates file", inters: []*x509.Certificate{f.p.Root.Cert}, text: "self-signed root"},
		{name: "foreign intermediate in file", inters: []*x509.Certificate{rogue.Intermediate.Cert}, wantErr: tlsconfig.ErrUnanchored},
		{name: "leaf in intermediates file", inters: []*x509.Certificate{f.p.Client(t, "spiffe://bank.local/customer/alice").Cert}, wantErr: tlsconfig.ErrNotCA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := src.Generation()
			var err error
			if tt.bundle != nil {
				err = src.SetBundle(tt.bundle)
			} else {
				err = src.SetIntermediates(tt.inters)
			}
			wantFail := tt.wantErr != nil || tt.text != ""
			if wantFail != (err != nil) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("error = %v, want %v %q", err, tt.wantErr, tt.text)
			}
			if tt.text != "" && !containsText(err, tt.text) {
				t.Errorf("error %q does not say %q", err, tt.text)
			}
			if changed := src.Generation() != before; changed == wantFail {
				t.Errorf("generation changed = %v after error %v", changed, err)
			}
			if anchors := src.Bundle(); len(anchors) != 1 || !anchors[0].Equal(f.p.Root.Cert) {
				t.Errorf("anchors = %d certificates, want the root only", len(anchors))
			}
		})
	}
}

func containsText(err error, text string) bool {
	return err != nil && strings.Contains(err.Error(), text)
}

// TestLeafKeyUsageRules: the X.509-SVID key usage rules at the handshake, both sides, and
// per call.
func TestLeafKeyUsageRules(t *testing.T) {
	p := pkitest.New(t)
	good := p.Server(t, "spiffe://bank.local/service/accounts")
	tests := []struct {
		name  string
		usage x509.KeyUsage
	}{
		{name: "no digitalSignature", usage: x509.KeyUsageKeyEncipherment},
		{name: "keyCertSign", usage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign},
		{name: "cRLSign", usage: x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := rawLeaf(t, p, "spiffe://bank.local/customer/alice", tt.usage)
			t.Run("server refuses client", func(t *testing.T) {
				serr, _, _ := handshake(t, tlsconfig.ServerConfig(newSource(t, p, good)), tlsconfig.ClientConfig(newSource(t, p, bad), "localhost"))
				if !errors.Is(serr, identity.ErrKeyUsage) || tlsconfig.FailureReason(serr) != tlsconfig.ReasonKeyUsage {
					t.Fatalf("server error = %v (%s), want ErrKeyUsage (%s)", serr, tlsconfig.FailureReason(serr), tlsconfig.ReasonKeyUsage)
				}
			})
			t.Run("client refuses server", func(t *testing.T) {
				_, cerr, _ := handshake(t, tlsconfig.ServerConfig(newSource(t, p, bad)), tlsconfig.ClientConfig(newSource(t, p, good), "localhost"))
				if !errors.Is(cerr, identity.ErrKeyUsage) {
					t.Fatalf("client error = %v, want ErrKeyUsage", cerr)
				}
			})
			t.Run("per call", func(t *testing.T) {
				src := newSource(t, p, good)
				if err := src.CheckChain([]*x509.Certificate{bad.Cert, p.Intermediate.Cert, p.Root.Cert}); !errors.Is(err, identity.ErrKeyUsage) {
					t.Fatalf("CheckChain = %v, want ErrKeyUsage", err)
				}
			})
		})
	}
}

// rawLeaf signs, with p's intermediate, a non-CA clientAuth+serverAuth leaf for spiffeID
// (DNS SAN localhost) with exactly the key usage bits given, which internal/pki never makes.
func rawLeaf(tb testing.TB, p *pkitest.PKI, spiffeID string, usage x509.KeyUsage) *pki.Leaf {
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
		DNSNames:              []string{"localhost"},
		KeyUsage:              usage,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
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
	return &pki.Leaf{Cert: cert, Key: key, Chain: []*x509.Certificate{cert, p.Intermediate.Cert}}
}

// TestPerCallReverifiesAgainstCurrentBundle: a chain that verified at handshake time is
// refused by the next CheckChain once its root leaves the bundle, and the cached verdict
// follows every change of generation.
func TestPerCallReverifiesAgainstCurrentBundle(t *testing.T) {
	p := pkitest.New(t)
	other := pkitest.New(t)
	src := newSource(t, p, p.Server(t, "spiffe://bank.local/service/accounts"))
	alice := p.Client(t, "spiffe://bank.local/customer/alice")
	chain := []*x509.Certificate{alice.Cert, p.Intermediate.Cert, p.Root.Cert}

	steps := []struct {
		name    string
		change  func() error
		wantErr error
	}{
		{name: "trusted", change: func() error { return nil }},
		{name: "cached", change: func() error { return nil }},
		{name: "root removed", change: func() error { return src.SetBundle(other.Bundle) }, wantErr: tlsconfig.ErrUntrusted},
		{name: "still refused", change: func() error { return nil }, wantErr: tlsconfig.ErrUntrusted},
		{name: "root back", change: func() error { return src.SetBundle(append(other.Bundle, p.Root.Cert)) }},
		{name: "intermediate revoked", change: func() error {
			crl, err := tlsconfig.ParseCRL(crlOf(t, p.Root, 1, time.Now().Add(time.Hour), p.Intermediate.Cert), src.CRLIssuers())
			if err != nil {
				return err
			}
			return src.SetCRL(crl)
		}, wantErr: tlsconfig.ErrRevoked},
	}
	for _, st := range steps {
		if err := st.change(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		err := src.CheckChain(chain)
		if !errors.Is(err, st.wantErr) || (st.wantErr == nil) != (err == nil) {
			t.Fatalf("%s: CheckChain = %v, want %v", st.name, err, st.wantErr)
		}
	}
}

// TestCRLFreshness: a CRL past its nextUpdate is reported; past the allowed staleness
// the CAs it covers fail closed, at the handshake and per call, and others keep working.
func TestCRLFreshness(t *testing.T) {
	f := newTwoCAs(t)
	start := time.Now()
	var offset atomic.Int64
	clock := func() time.Time { return start.Add(time.Duration(offset.Load())) }
	opts := []tlsconfig.SourceOption{tlsconfig.WithClock(clock), tlsconfig.WithCRLMaxStaleness(time.Hour)}
	server, err := tlsconfig.NewSource(td, leaf(t, f.b, "spiffe://bank.local/service/accounts").TLSCertificate(), f.p.Bundle, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := server.SetIntermediates([]*x509.Certificate{f.a.Cert}); err != nil {
		t.Fatal(err)
	}
	// A's CRL is due in an hour; the root's and B's much later.
	far := start.Add(3 * time.Hour)
	rootCRL, crlB := crlOf(t, f.p.Root, 1, far), crlOf(t, f.b, 1, far)
	setCRL(t, server, join(rootCRL, crlOf(t, f.a, 1, start.Add(time.Hour)), crlB))
	alice := leaf(t, f.a, "spiffe://bank.local/customer/alice")
	bob := leaf(t, f.b, "spiffe://bank.local/customer/bob")
	chains := map[string][]*x509.Certificate{
		"A": {alice.Cert, f.a.Cert, f.p.Root.Cert},
		"B": {bob.Cert, f.b.Cert, f.p.Root.Cert},
	}
	clients := map[string]*pki.Leaf{"A": alice, "B": bob}

	steps := []struct {
		name      string
		at        time.Duration
		wantStale int
		wantErr   map[string]error
	}{
		{name: "fresh", at: 0, wantErr: map[string]error{}},
		{name: "A's CRL stale, within the grace", at: 90 * time.Minute, wantStale: 1, wantErr: map[string]error{}},
		{name: "A's CRL past the grace", at: 2*time.Hour + time.Minute, wantStale: 1, wantErr: map[string]error{"A": tlsconfig.ErrCRLStale}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			offset.Store(int64(st.at))
			stale := server.CRL().Stale(clock())
			if len(stale) != st.wantStale || (st.wantStale == 1 && !stale[0].Issuer.Equal(f.a.Cert)) {
				t.Fatalf("Stale() = %d CRLs, want %d (A's)", len(stale), st.wantStale)
			}
			for name, chain := range chains {
				want := st.wantErr[name]
				if err := server.CheckChain(chain); !errors.Is(err, want) || (want == nil) != (err == nil) {
					t.Errorf("CheckChain(%s) = %v, want %v", name, err, want)
				}
				client := newSource(t, f.p, clients[name], tlsconfig.WithClock(clock))
				serr, _, _ := handshake(t, tlsconfig.ServerConfig(server), tlsconfig.ClientConfig(client, "localhost"))
				if !errors.Is(serr, want) || (want == nil) != (serr == nil) {
					t.Errorf("handshake(%s): server error %v, want %v", name, serr, want)
				}
				if want != nil && tlsconfig.FailureReason(serr) != tlsconfig.ReasonCRLStale {
					t.Errorf("FailureReason = %q, want %q", tlsconfig.FailureReason(serr), tlsconfig.ReasonCRLStale)
				}
			}
		})
	}
	t.Run("fresh CRL restores", func(t *testing.T) {
		setCRL(t, server, join(rootCRL, crlOf(t, f.a, 2, far), crlB))
		if err := server.CheckChain(chains["A"]); err != nil {
			t.Fatalf("CheckChain(A) after a fresh CRL = %v", err)
		}
	})
}

// TestCRLRequired: with WithCRLRequired a chain is refused, at the handshake and per
// call, when a CA in it has no CRL in the set, and accepted once it has one.
func TestCRLRequired(t *testing.T) {
	f := newTwoCAs(t)
	later := time.Now().Add(time.Hour)
	serverLeaf := leaf(t, f.a, "spiffe://bank.local/service/accounts")
	peers := map[string]*pki.Leaf{
		"alice (A)": leaf(t, f.a, "spiffe://bank.local/customer/alice"),
		"bob (B)":   leaf(t, f.b, "spiffe://bank.local/customer/bob"),
	}
	crlA, crlB, crlRoot := crlOf(t, f.a, 1, later), crlOf(t, f.b, 1, later), crlOf(t, f.p.Root, 1, later)
	tests := []struct {
		name    string
		crl     []byte
		wantErr map[string]error
	}{
		{name: "no root CRL", crl: join(crlA, crlB), wantErr: map[string]error{"alice (A)": tlsconfig.ErrCRLMissing, "bob (B)": tlsconfig.ErrCRLMissing}},
		{name: "no CRL of B", crl: join(crlRoot, crlA), wantErr: map[string]error{"bob (B)": tlsconfig.ErrCRLMissing}},
		{name: "every CA has its CRL", crl: join(crlRoot, crlA, crlB), wantErr: map[string]error{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server, err := tlsconfig.NewSource(td, serverLeaf.TLSCertificate(), f.p.Bundle, tlsconfig.WithCRLRequired())
			if err != nil {
				t.Fatal(err)
			}
			if err := server.SetIntermediates([]*x509.Certificate{f.b.Cert}); err != nil {
				t.Fatal(err)
			}
			setCRL(t, server, tt.crl)
			for name, l := range peers {
				want := tt.wantErr[name]
				serr, _, _ := handshake(t, tlsconfig.ServerConfig(server), tlsconfig.ClientConfig(newSource(t, f.p, l), "localhost"))
				if !errors.Is(serr, want) || (want == nil) != (serr == nil) {
					t.Errorf("%s handshake: %v, want %v", name, serr, want)
				}
				if want != nil && tlsconfig.FailureReason(serr) != tlsconfig.ReasonCRLMissing {
					t.Errorf("%s: FailureReason = %q", name, tlsconfig.FailureReason(serr))
				}
				chain := append(append([]*x509.Certificate(nil), l.Chain...), f.p.Root.Cert)
				if err := server.CheckChain(chain); !errors.Is(err, want) || (want == nil) != (err == nil) {
					t.Errorf("%s CheckChain: %v, want %v", name, err, want)
				}
			}
		})
	}
}

// TestMissingCRLs: MissingCRLs names every CA that may sign a CRL (the root, the
// configured intermediate B, the intermediate A of the source's own chain) and has none in
// the set, whether or not the source requires them, so that an operator hears of a CRL
// bundle that lost one.
func TestMissingCRLs(t *testing.T) {
	f := newTwoCAs(t)
	later := time.Now().Add(time.Hour)
	serverLeaf := leaf(t, f.a, "spiffe://bank.local/service/accounts")
	tests := []struct {
		name     string
		crl      func() []byte // nil: no CRL at all
		required bool
		want     []*x509.Certificate
	}{
		{name: "no CRL", want: []*x509.Certificate{f.p.Root.Cert, f.b.Cert, f.a.Cert}},
		{name: "root's only", required: true, crl: func() []byte { return crlOf(t, f.p.Root, 1, later) }, want: []*x509.Certificate{f.b.Cert, f.a.Cert}},
		{name: "intermediates' only", crl: func() []byte { return join(crlOf(t, f.a, 1, later), crlOf(t, f.b, 1, later)) }, want: []*x509.Certificate{f.p.Root.Cert}},
		{name: "complete", required: true, crl: func() []byte {
			return join(crlOf(t, f.p.Root, 1, later), crlOf(t, f.a, 1, later), crlOf(t, f.b, 1, later))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []tlsconfig.SourceOption
			if tt.required {
				opts = append(opts, tlsconfig.WithCRLRequired())
			}
			server, err := tlsconfig.NewSource(td, serverLeaf.TLSCertificate(), f.p.Bundle, opts...)
			if err != nil {
				t.Fatal(err)
			}
			if err := server.SetIntermediates([]*x509.Certificate{f.b.Cert}); err != nil {
				t.Fatal(err)
			}
			if tt.crl != nil {
				setCRL(t, server, tt.crl())
			}
			if server.CRLRequired() != tt.required {
				t.Errorf("CRLRequired() = %v, want %v", server.CRLRequired(), tt.required)
			}
			got := server.MissingCRLs()
			if len(got) != len(tt.want) {
				t.Fatalf("MissingCRLs() = %d CAs, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if !got[i].Equal(tt.want[i]) {
					t.Errorf("MissingCRLs()[%d] = %q, want %q", i, got[i].Subject, tt.want[i].Subject)
				}
			}
		})
	}
}
