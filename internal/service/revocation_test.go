package service_test

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/service"
	"mtlsbank/internal/tlsconfig"
)

// crlPEM returns a PEM CRL of ca numbered number, valid from thisUpdate to nextUpdate,
// listing revoked.
func crlPEM(tb testing.TB, ca *pki.CA, number int64, thisUpdate, nextUpdate time.Time, revoked ...*x509.Certificate) []byte {
	tb.Helper()
	serials := make([]*big.Int, 0, len(revoked))
	for _, c := range revoked {
		serials = append(serials, c.SerialNumber)
	}
	der, err := ca.CreateCRL(serials, big.NewInt(number), thisUpdate, nextUpdate)
	if err != nil {
		tb.Fatal(err)
	}
	return pki.EncodeCRLPEM(der)
}

func issueFrom(tb testing.TB, ca *pki.CA, spiffeID string, usage pki.Usage) *pki.Leaf {
	tb.Helper()
	l, err := ca.Issue(pki.Request{CommonName: "leaf", SPIFFEIDs: []string{spiffeID}, DNSNames: []string{"localhost"}, Usage: usage}, pki.WithTTL(pkitest.LeafTTL))
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// twoIntermediates turns f into one root with intermediates A (pkitest's) and B: the
// server's certificate comes from B, the intermediates file holds both, and crl.pem one
// CRL per CA. It returns B.
func (f *fixture) twoIntermediates(tb testing.TB, crls func(b *pki.CA) []byte) *pki.CA {
	tb.Helper()
	b, err := f.pki.Root.NewIntermediate("pkitest Intermediate CA B", pki.WithTTL(pkitest.CATTL))
	if err != nil {
		tb.Fatal(err)
	}
	f.server = issueFrom(tb, b, serverID, pki.ServerAuth|pki.ClientAuth)
	f.cfg.Cert, f.cfg.Key = f.pki.WriteLeaf(tb, "server", f.server)
	writeFile(tb, f.cfg.Intermediates, pki.EncodeCertsPEM(f.pki.Intermediate.Cert, b.Cert))
	writeFile(tb, f.cfg.CRL, crls(b))
	return b
}

func join(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// refusedOpen reports whether a call on a connection opened before a revocation or a
// trust change was refused: Unauthenticated when the per-call check ran first, or
// Unavailable when the recheck after the reload had already closed the connection and
// the reconnect was refused at the handshake. Either way no handler ran.
func refusedOpen(err error) bool {
	c := status.Code(err)
	return c == codes.Unauthenticated || c == codes.Unavailable
}

// TestRevokeIntermediateOpenConnections: one root, two intermediates. The root's CRL
// revoking intermediate A refuses exactly A's leaves: the next call on a connection
// opened before, and new handshakes; B's leaves keep working on both.
func TestRevokeIntermediateOpenConnections(t *testing.T) {
	f := newFixture(t)
	now, later := time.Now().Add(-time.Minute), time.Now().Add(time.Hour)
	var crlA, crlB []byte
	b := f.twoIntermediates(t, func(b *pki.CA) []byte {
		crlA, crlB = crlPEM(t, f.pki.Intermediate, 1, now, later), crlPEM(t, b, 1, now, later)
		return join(crlPEM(t, f.pki.Root, 1, now, later), crlA, crlB)
	})
	r := f.start(t)
	alice := issueFrom(t, f.pki.Intermediate, aliceID, pki.ClientAuth)
	bob := issueFrom(t, b, bobID, pki.ClientAuth)
	aliceCC, bobCC := r.dial(t, alice), r.dial(t, bob)
	if _, err := call(aliceCC); err != nil {
		t.Fatalf("alice (A) before the revocation: %v", err)
	}
	if _, err := call(bobCC); err != nil {
		t.Fatalf("bob (B) before the revocation: %v", err)
	}

	writeFile(t, f.cfg.CRL, join(crlPEM(t, f.pki.Root, 2, now, later, f.pki.Intermediate.Cert), crlA, crlB))
	waitFor(t, "the root's new CRL", func() bool { return r.rt.Source().CRL().Revoked(f.pki.Intermediate.Cert) })

	if _, err := call(aliceCC); !refusedOpen(err) {
		t.Fatalf("alice's open connection after A's revocation: %v, want Unauthenticated or the connection closed", err)
	}
	// The recheck that closed the connection may log it just after the client saw it go.
	waitFor(t, "an audit record or connection-closed line naming the revoked intermediate's serial", func() bool {
		return r.logs.contains(`"code":"Unauthenticated"`, "certificate revoked", pki.SerialHex(f.pki.Intermediate.Cert.SerialNumber)) ||
			r.logs.contains("peer credentials no longer valid", "certificate revoked", pki.SerialHex(f.pki.Intermediate.Cert.SerialNumber))
	})
	if _, err := call(bobCC); err != nil {
		t.Fatalf("bob's open connection after A's revocation: %v", err)
	}
	if _, err := call(r.dial(t, alice)); status.Code(err) != codes.Unavailable {
		t.Fatalf("alice's new connection: %v, want Unavailable (handshake refused)", err)
	}
	if _, err := call(r.dial(t, bob)); err != nil {
		t.Fatalf("bob's new connection: %v", err)
	}
}

// TestBundleReloadRefusesOpenConnection: a CA removed from the bundle by a reload refuses
// the next call of a connection it verified, with Unauthenticated; other CAs' peers go on.
func TestBundleReloadRefusesOpenConnection(t *testing.T) {
	f := newFixture(t)
	other := pkitest.New(t)
	writeFile(t, f.cfg.CA, pki.EncodeCertsPEM(f.pki.Root.Cert, other.Root.Cert))
	// Every CA trusted has its CRL (the other PKI's intermediate is configured, so that its
	// CRL can be verified): the refusal below is the bundle's doing, not a missing CRL.
	writeFile(t, f.cfg.Intermediates, pki.EncodeCertsPEM(f.pki.Intermediate.Cert, other.Intermediate.Cert))
	writeFile(t, f.cfg.CRL, join(f.pki.CRL(t, f.eve.Cert), other.CRL(t)))
	r := f.start(t)
	alice := other.Client(t, aliceID) // under the root that goes away
	bob := f.pki.Client(t, bobID)
	aliceCC, bobCC := r.dial(t, alice), r.dial(t, bob)
	if _, err := call(aliceCC); err != nil {
		t.Fatalf("alice before the reload: %v", err)
	}
	if _, err := call(bobCC); err != nil {
		t.Fatalf("bob before the reload: %v", err)
	}
	gen := r.rt.Source().Generation()
	writeFile(t, f.cfg.CA, pki.EncodeCertsPEM(f.pki.Root.Cert))
	waitFor(t, "the new bundle", func() bool { return r.rt.Source().Generation() != gen && len(r.rt.Source().Bundle()) == 1 })

	if _, err := call(aliceCC); !refusedOpen(err) {
		t.Fatalf("alice's open connection after her root left the bundle: %v, want Unauthenticated or the connection closed", err)
	}
	// The recheck that closed the connection may log it just after the client saw it go.
	waitFor(t, "an audit record or connection-closed line saying why", func() bool {
		return r.logs.contains(`"code":"Unauthenticated"`, "does not verify against the current trust bundle") ||
			r.logs.contains("peer credentials no longer valid", "does not verify against the current trust bundle")
	})
	if _, err := call(bobCC); err != nil {
		t.Fatalf("bob after the reload: %v", err)
	}
}

// TestCRLRollbackRefused: an older CRL is refused by a reload (counted, logged, the last
// good kept) and, after a restart, by the start itself.
func TestCRLRollbackRefused(t *testing.T) {
	f := newFixture(t)
	now, later := time.Now().Add(-time.Minute), time.Now().Add(time.Hour)
	alice := f.pki.Client(t, aliceID)
	older := crlPEM(t, f.pki.Intermediate, 10, now, later, f.eve.Cert)
	newer := crlPEM(t, f.pki.Intermediate, 11, now, later, f.eve.Cert, alice.Cert)
	writeFile(t, f.cfg.CRL, newer)
	r := f.start(t)
	info, err := os.Stat(f.cfg.CRLStatePath())
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("CRL state %s: %v, %v; want a 0600 file", f.cfg.CRLStatePath(), info, err)
	}

	writeFile(t, f.cfg.CRL, older)
	waitFor(t, "the refused reload", func() bool {
		v, _ := r.metric(t, "bank_crl_rejected_total", map[string]string{"reason": tlsconfig.CRLReasonRollback})
		return v == 1
	})
	if !r.rt.Source().CRL().Revoked(alice.Cert) {
		t.Fatal("the rolled-back CRL replaced the newer one: alice is no longer revoked")
	}
	if got := r.reloads(t, service.GroupCRL, "error"); got != 1 {
		t.Errorf("bank_reloads_total{file=crl,outcome=error} = %v, want 1", got)
	}
	if !r.logs.contains(`"level":"WARN"`, "CRL would roll back revocation", "number 10") {
		t.Error("no warning about the rollback in the log")
	}

	// A restart with the older CRL on disk is refused.
	_, err = service.New(context.Background(), testService(&echoServer{}), f.cfg, slog.New(slog.DiscardHandler))
	if !errors.Is(err, tlsconfig.ErrCRLRollback) || !strings.Contains(err.Error(), f.cfg.CRLStatePath()) {
		t.Fatalf("restart with the older CRL: %v, want ErrCRLRollback naming the state file", err)
	}
}

// TestStaleCRL: a CRL past its nextUpdate is reported (metric, log, /readyz); past
// --crl-max-staleness the peers under the CA it covers are refused, and only those.
func TestStaleCRL(t *testing.T) {
	tests := []struct {
		name         string
		maxStaleness time.Duration
		wantRefused  bool
	}{
		{name: "within the grace", maxStaleness: 6 * time.Hour},
		{name: "past the grace", maxStaleness: 30 * time.Minute, wantRefused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.cfg.CRLMaxStaleness = tt.maxStaleness
			now, later := time.Now().Add(-time.Minute), time.Now().Add(time.Hour)
			// B's CRL was due an hour ago.
			b := f.twoIntermediates(t, func(b *pki.CA) []byte {
				return join(crlPEM(t, f.pki.Root, 1, now, later), crlPEM(t, f.pki.Intermediate, 1, now, later),
					crlPEM(t, b, 1, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)))
			})
			r := f.start(t)
			if v, ok := r.metric(t, "bank_crl_stale", map[string]string{"issuer": b.Cert.Subject.String()}); !ok || v != 1 {
				t.Errorf("bank_crl_stale{issuer=B} = %v (%v), want 1", v, ok)
			}
			if v, ok := r.metric(t, "bank_crl_next_update_timestamp_seconds", map[string]string{"issuer": b.Cert.Subject.String()}); !ok || v != float64(r.rt.Source().CRL().For(b.Cert).NextUpdate.Unix()) {
				t.Errorf("bank_crl_next_update_timestamp_seconds{issuer=B} = %v (%v), want B's nextUpdate", v, ok)
			}
			if v, ok := r.metric(t, "bank_crl_stale", map[string]string{"issuer": f.pki.Intermediate.Cert.Subject.String()}); !ok || v != 0 {
				t.Errorf("bank_crl_stale{issuer=A} = %v (%v), want 0", v, ok)
			}
			code, body := get(t, r.metricsURL+"/readyz")
			if code != http.StatusOK || !strings.Contains(body, "crl: CRL of "+b.Cert.Subject.String()) {
				t.Errorf("/readyz = %d %q, want 200 with a crl detail naming B", code, body)
			}
			waitFor(t, "the stale CRL log line", func() bool { return r.logs.contains("CRL past its nextUpdate", "pkitest Intermediate CA B") })

			aliceCC := r.dial(t, f.pki.Client(t, aliceID)) // under A
			if _, err := call(aliceCC); err != nil {
				t.Fatalf("alice (A, fresh CRL): %v", err)
			}
			_, err := call(r.dial(t, issueFrom(t, b, bobID, pki.ClientAuth)))
			switch {
			case tt.wantRefused && status.Code(err) != codes.Unavailable:
				t.Fatalf("bob (B, CRL past the grace): %v, want Unavailable (handshake refused)", err)
			case !tt.wantRefused && err != nil:
				t.Fatalf("bob (B, CRL within the grace): %v", err)
			}
			if tt.wantRefused {
				waitFor(t, "the refusal to be counted", func() bool {
					v, _ := r.metric(t, "bank_tls_handshake_failures_total", map[string]string{"reason": tlsconfig.ReasonCRLStale})
					return v == 1
				})
			}
		})
	}
}
