package service_test

import (
	"crypto/x509"
	"flag"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/service"
	"mtlsbank/internal/tlsconfig"
)

// requireAllFlag returns Config.CRLRequireAll as the real flags parse args.
func requireAllFlag(tb testing.TB, args ...string) bool {
	tb.Helper()
	var c service.Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(fs, service.Defaults{Name: "test"})
	if err := service.ParseFlags(fs, args, func(string) string { return "" }); err != nil {
		tb.Fatal(err)
	}
	return c.CRLRequireAll
}

// TestRootOnlyCRL is the attack of a CRL bundle missing the issuing CA's CRL: the
// intermediate revoked alice, but crl.pem holds only the root's CRL, and the service starts
// on a fresh database (no CRL history). By default every leaf of that intermediate, alice
// included, is refused at the handshake (crl_missing), and the start warns, names the CA in
// /readyz and sets bank_crl_missing. --crl-require-all=false, the documented opt-out for a
// CA that publishes no CRL, accepts them, revoked alice included, and still warns.
func TestRootOnlyCRL(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		wantRefused bool
		wantLog     string
		wantReady   string
	}{
		{name: "default", wantRefused: true,
			wantLog: "CA has no CRL in --crl: refusing peers under it", wantReady: "refusing peers under it (crl_missing)"},
		{name: "crl-require-all=false", args: []string{"--crl-require-all=false"},
			wantLog: "CA has no CRL in --crl: its certificates are not checked for revocation", wantReady: "not checked for revocation (--crl-require-all=false)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.cfg.CRLRequireAll = requireAllFlag(t, tt.args...)
			alice, bob := f.pki.Client(t, aliceID), f.pki.Client(t, bobID)
			f.pki.IntermediateCRL(t, alice.Cert) // signed, but not deployed
			writeFile(t, f.cfg.CRL, f.pki.SignCRL(t, pkitest.CRLSpec{Issuer: f.pki.Root}))
			r := f.start(t)
			inter := f.pki.Intermediate.Cert

			for _, l := range []*pki.Leaf{alice, bob} {
				_, err := call(r.dial(t, l))
				switch {
				case tt.wantRefused && status.Code(err) != codes.Unavailable:
					t.Errorf("%s: %v, want Unavailable (handshake refused)", l.Cert.Subject.CommonName, err)
				case !tt.wantRefused && err != nil:
					t.Errorf("%s: %v, want accepted (opt-out)", l.Cert.Subject.CommonName, err)
				}
			}
			if tt.wantRefused {
				waitFor(t, "two crl_missing handshake failures", func() bool {
					v, _ := r.metric(t, "bank_tls_handshake_failures_total", map[string]string{"reason": tlsconfig.ReasonCRLMissing})
					return v == 2
				})
			}
			if !r.logs.contains(`"level":"WARN"`, tt.wantLog, inter.Subject.String()) {
				t.Errorf("no start warning %q naming %s", tt.wantLog, inter.Subject)
			}
			if r.logs.contains(tt.wantLog, f.pki.Root.Cert.Subject.String()) {
				t.Error("a warning names the root, whose CRL is in the set")
			}
			if v, ok := r.metric(t, "bank_crl_missing", map[string]string{"issuer": inter.Subject.String()}); !ok || v != 1 {
				t.Errorf("bank_crl_missing{issuer=intermediate} = %v (%v), want 1", v, ok)
			}
			if v, ok := r.metric(t, "bank_crl_missing", map[string]string{"issuer": f.pki.Root.Cert.Subject.String()}); !ok || v != 0 {
				t.Errorf("bank_crl_missing{issuer=root} = %v (%v), want 0", v, ok)
			}
			code, body := get(t, r.metricsURL+"/readyz")
			if code != http.StatusOK || !strings.Contains(body, "crl: no CRL of "+inter.Subject.String()) || !strings.Contains(body, tt.wantReady) {
				t.Errorf("/readyz = %d %q, want 200 with a crl line naming the intermediate and %q", code, body, tt.wantReady)
			}
		})
	}
}

// TestCRLMissingOpenConnection: the per-call side. Bob's intermediate B leaves the
// intermediates file and its CRL leaves crl.pem; bob still sends B, whose chain verifies
// under the root, but nothing can revoke his certificate any more: his open connection is
// closed (or its next call refused) with crl_missing, and a new handshake is refused.
// Alice, under A, keeps working.
func TestCRLMissingOpenConnection(t *testing.T) {
	f := newFixture(t)
	b := f.pki.NewIntermediate(t, "pkitest Intermediate CA B")
	f.cfg.Intermediates = f.pki.WriteIntermediates(t)
	writeFile(t, f.cfg.CRL, f.pki.CRL(t, f.eve.Cert))
	r := f.start(t)
	alice, bob := f.pki.Client(t, aliceID), f.pki.ClientFrom(t, b, bobID)
	aliceCC, bobCC := r.dial(t, alice), r.dial(t, bob)
	if _, err := call(aliceCC); err != nil {
		t.Fatalf("alice before: %v", err)
	}
	if _, err := call(bobCC); err != nil {
		t.Fatalf("bob before: %v", err)
	}

	writeFile(t, f.cfg.Intermediates, pki.EncodeCertsPEM(f.pki.Intermediate.Cert))
	waitFor(t, "B to leave the chain material", func() bool { return len(r.rt.Source().Intermediates()) == 1 })
	writeFile(t, f.cfg.CRL, join(f.pki.SignCRL(t, pkitest.CRLSpec{Issuer: f.pki.Root}),
		f.pki.SignCRL(t, pkitest.CRLSpec{Issuer: f.pki.Intermediate, Revoked: []*x509.Certificate{f.eve.Cert}})))
	waitFor(t, "B's CRL to leave the set", func() bool { return r.rt.Source().CRL().For(b.Cert) == nil })

	if _, err := call(bobCC); !refusedOpen(err) {
		t.Fatalf("bob's open connection: %v, want Unauthenticated or the connection closed", err)
	}
	// The recheck that closed the connection may log it just after the client saw it go.
	waitFor(t, "an audit record or connection-closed line with crl_missing", func() bool {
		return r.logs.contains(`"code":"Unauthenticated"`, "no CRL for this CA") ||
			r.logs.contains(`"msg":"connection closed: peer credentials no longer valid"`, `"reason":"crl_missing"`)
	})
	if _, err := call(r.dial(t, bob)); status.Code(err) != codes.Unavailable {
		t.Fatalf("bob's new connection: %v, want Unavailable (handshake refused)", err)
	}
	if _, err := call(aliceCC); err != nil {
		t.Fatalf("alice after: %v", err)
	}
}

// TestNoCRLConfigured: with --crl empty revocation is off, which the start says plainly:
// eve, revoked in the fixture's crl.pem that is not loaded, is accepted.
func TestNoCRLConfigured(t *testing.T) {
	f := newFixture(t)
	f.cfg.CRL = ""
	f.cfg.CRLRequireAll = requireAllFlag(t)
	r := f.start(t)
	if !r.logs.contains(`"level":"WARN"`, "no CRL configured: revoked certificates are accepted") {
		t.Error("no warning that revocation is off")
	}
	if _, err := call(r.dial(t, f.eve)); err != nil {
		t.Fatalf("eve without a CRL: %v, want accepted", err)
	}
	code, body := get(t, r.metricsURL+"/readyz")
	if code != http.StatusOK || !strings.Contains(body, "crl: no CRL configured: revoked certificates are accepted") {
		t.Errorf("/readyz = %d %q, want 200 saying revocation is off", code, body)
	}
}

// TestMissingCRLReportedOnReload: a reload that leaves a trusted CA without a CRL (a new
// intermediate in the intermediates file, its CRL not yet published) warns naming it and
// sets bank_crl_missing for it; its leaves are refused until its CRL arrives, after which
// the gauge drops to 0 and they are accepted.
func TestMissingCRLReportedOnReload(t *testing.T) {
	f := newFixture(t)
	r := f.start(t)
	c := f.pki.NewIntermediate(t, "pkitest Intermediate CA C")
	carol := f.pki.ClientFrom(t, c, bobID)
	labels := map[string]string{"issuer": c.Cert.Subject.String()}

	gen := r.rt.Source().Generation()
	f.pki.WriteIntermediates(t)
	waitFor(t, "the intermediates reload", func() bool {
		return r.rt.Source().Generation() != gen && r.reloads(t, service.GroupIntermediates, "success") == 1
	})
	if !r.logs.contains(`"level":"WARN"`, "CA has no CRL in --crl: refusing peers under it", c.Cert.Subject.String()) {
		t.Error("no warning naming the new intermediate after the reload")
	}
	if v, ok := r.metric(t, "bank_crl_missing", labels); !ok || v != 1 {
		t.Errorf("bank_crl_missing{issuer=C} = %v (%v), want 1", v, ok)
	}
	if _, err := call(r.dial(t, carol)); status.Code(err) != codes.Unavailable {
		t.Fatalf("carol (C, no CRL): %v, want Unavailable (handshake refused)", err)
	}

	f.pki.WriteCRL(t, f.pki.CRL(t, f.eve.Cert))
	waitFor(t, "C's CRL", func() bool { return r.rt.Source().CRL().For(c.Cert) != nil })
	if v, ok := r.metric(t, "bank_crl_missing", labels); !ok || v != 0 {
		t.Errorf("bank_crl_missing{issuer=C} after its CRL = %v (%v), want 0", v, ok)
	}
	if _, err := call(r.dial(t, carol)); err != nil {
		t.Fatalf("carol once C has its CRL: %v", err)
	}
}
