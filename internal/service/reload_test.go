package service_test

import (
	"math/big"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/service"
	"mtlsbank/internal/telemetry"
	"mtlsbank/internal/tlsconfig"
)

// TestRotateServerCertificate: new certificate and key files are picked up while one
// client loops on RPCs over its open connection and another keeps opening new ones. No
// RPC fails, the open connection keeps its handshake, new connections see the new serial.
func TestRotateServerCertificate(t *testing.T) {
	f := newFixture(t)
	r := f.start(t)
	oldSerial := f.server.Cert.SerialNumber
	alice := f.pki.Client(t, aliceID)
	bob := f.pki.Client(t, bobID)
	open := r.dial(t, alice)

	var (
		failures    atomic.Int64
		errMu       sync.Mutex
		firstErr    error
		openCalls   atomic.Int64
		openChanged atomic.Bool // the open connection saw another serial: it re-handshook
		newConns    atomic.Int64
		newestSeen  atomic.Pointer[big.Int]
		stop        = make(chan struct{})
		wg          sync.WaitGroup
	)
	fail := func(err error) {
		failures.Add(1)
		errMu.Lock()
		defer errMu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	wg.Go(func() {
		for i := 0; i < 1_000_000 && !stopped(); i++ {
			serial, err := call(open)
			if err != nil {
				fail(err)
				continue
			}
			if serial.Cmp(oldSerial) != 0 {
				openChanged.Store(true)
			}
			openCalls.Add(1)
		}
	})
	bobCreds := f.clientCreds(t, bob)
	wg.Go(func() {
		for i := 0; i < 100_000 && !stopped(); i++ {
			cc, err := grpc.NewClient(r.addr, grpc.WithTransportCredentials(bobCreds))
			if err != nil {
				fail(err)
				return
			}
			serial, err := call(cc)
			cc.Close()
			if err != nil {
				fail(err)
				continue
			}
			newestSeen.Store(serial)
			newConns.Add(1)
		}
	})
	waitFor(t, "traffic on both kinds of connection", func() bool { return openCalls.Load() > 5 && newConns.Load() > 2 })

	rotated := f.pki.Server(t, serverID)
	f.pki.WriteLeaf(t, "server", rotated)
	waitFor(t, "the new certificate to be served", func() bool {
		return r.rt.Source().Certificate().Leaf.SerialNumber.Cmp(rotated.Cert.SerialNumber) == 0
	})
	waitFor(t, "a new connection to see the new serial", func() bool {
		s := newestSeen.Load()
		return s != nil && s.Cmp(rotated.Cert.SerialNumber) == 0
	})
	after := openCalls.Load()
	waitFor(t, "more calls on the open connection", func() bool { return openCalls.Load() > after+5 })
	close(stop)
	wg.Wait()

	if n := failures.Load(); n != 0 {
		t.Fatalf("%d RPCs failed during the rotation; first: %v", n, firstErr)
	}
	if openChanged.Load() {
		t.Error("the open connection changed server certificate: it was dropped and re-handshook")
	}
	if got := r.reloads(t, service.GroupCertificate, telemetry.OutcomeSuccess); got < 1 {
		t.Errorf("bank_reloads_total{file=certificate,outcome=success} = %v", got)
	}
}

// TestRevokeOpenConnection: a new CRL listing alice closes the connection she opened
// before it as soon as the reload is taken, so her next RPC on it reconnects and is
// refused at the handshake (Unavailable, counted as revoked), before any handler runs;
// bob is unaffected. (The per-call check that refuses a revoked caller with
// Unauthenticated in the moment between a reload and the recheck of the connections is
// tested in grpcserver: TestRevocationReachesOpenConnections.)
func TestRevokeOpenConnection(t *testing.T) {
	f := newFixture(t)
	r := f.start(t)
	alice := f.pki.Client(t, aliceID)
	aliceCC, bobCC := r.dial(t, alice), r.dial(t, f.pki.Client(t, bobID))
	if _, err := call(aliceCC); err != nil {
		t.Fatalf("before revocation: %v", err)
	}
	if _, err := call(bobCC); err != nil {
		t.Fatalf("bob before revocation: %v", err)
	}

	f.pki.WriteCRL(t, f.pki.CRL(t, f.eve.Cert, alice.Cert))
	waitFor(t, "the new CRL", func() bool { return r.reloads(t, service.GroupCRL, telemetry.OutcomeSuccess) == 1 })

	handled := r.svc.calls.Load()
	if _, err := call(aliceCC); status.Code(err) != codes.Unavailable {
		t.Fatalf("alice after revocation: %v, want Unavailable (connection closed, handshake refused)", err)
	}
	if r.svc.calls.Load() != handled {
		t.Error("the handler ran for a revoked caller")
	}
	if _, err := call(bobCC); err != nil {
		t.Errorf("bob after alice's revocation: %v", err)
	}
	if _, err := call(r.dial(t, alice)); status.Code(err) != codes.Unavailable {
		t.Fatalf("alice's new connection: %v, want Unavailable (handshake refused)", err)
	}
	waitFor(t, "the revoked handshakes to be counted", func() bool {
		v, _ := r.metric(t, "bank_tls_handshake_failures_total", map[string]string{"reason": tlsconfig.ReasonRevoked})
		return v >= 2
	})
}

// TestBrokenReloadsKeepServing: a broken file of each group is refused, counted as an
// error, logged, and the service keeps serving with the last good state.
func TestBrokenReloadsKeepServing(t *testing.T) {
	tests := []struct {
		name    string
		group   string
		breakIt func(tb testing.TB, f *fixture)
	}{
		{name: "garbage certificate", group: service.GroupCertificate, breakIt: func(tb testing.TB, f *fixture) {
			writeFile(tb, f.cfg.Cert, []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"))
		}},
		{name: "certificate without its key", group: service.GroupCertificate, breakIt: func(tb testing.TB, f *fixture) {
			writeFile(tb, f.cfg.Cert, pki.EncodeCertsPEM(f.pki.Server(tb, serverID).Chain...))
		}},
		{name: "half-written certificate", group: service.GroupCertificate, breakIt: func(tb testing.TB, f *fixture) {
			data := pki.EncodeCertsPEM(f.pki.Server(tb, serverID).Chain...)
			writeFile(tb, f.cfg.Cert, data[:len(data)*3/4])
		}},
		{name: "certificate of another identity", group: service.GroupCertificate, breakIt: func(tb testing.TB, f *fixture) {
			f.pki.WriteLeaf(tb, "server", f.pki.Server(tb, "spiffe://bank.local/service/other"))
		}},
		{name: "garbage CA bundle", group: service.GroupBundle, breakIt: func(tb testing.TB, f *fixture) {
			writeFile(tb, f.cfg.CA, []byte("garbage"))
		}},
		{name: "CA bundle holding a leaf", group: service.GroupBundle, breakIt: func(tb testing.TB, f *fixture) {
			writeFile(tb, f.cfg.CA, pki.EncodeCertsPEM(f.server.Cert))
		}},
		{name: "garbage CRL", group: service.GroupCRL, breakIt: func(tb testing.TB, f *fixture) {
			writeFile(tb, f.cfg.CRL, []byte("garbage"))
		}},
		{name: "CRL signed by another CA", group: service.GroupCRL, breakIt: func(tb testing.TB, f *fixture) {
			writeFile(tb, f.cfg.CRL, pkitest.New(tb).CRL(tb))
		}},
		{name: "malformed policy", group: service.GroupPolicy, breakIt: func(tb testing.TB, f *fixture) {
			writeFile(tb, f.cfg.Policy, []byte(strings.Replace(testPolicy, "methods: [/test.v1.TestService/Echo]", "method: [/test.v1.TestService/Echo]", 1)))
		}},
		{name: "policy leaving a served method uncovered", group: service.GroupPolicy, breakIt: func(tb testing.TB, f *fixture) {
			p := strings.Replace(testPolicy, "  customer: { methods: [/test.v1.TestService/Echo] }\n", "", 1)
			p = strings.Replace(p, `    roles: [customer]`, `    roles: []`, 1)
			p = strings.Replace(p, `"/test.v1.TestService/*"`, `/test.v1.TestService/Nothing`, 1)
			writeFile(tb, f.cfg.Policy, []byte(p))
		}},
		{name: "policy file removed", group: service.GroupPolicy, breakIt: func(tb testing.TB, f *fixture) {
			if err := os.Remove(f.cfg.Policy); err != nil {
				tb.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			r := f.start(t)
			alice := f.pki.Client(t, aliceID)
			open := r.dial(t, alice)
			if _, err := call(open); err != nil {
				t.Fatal(err)
			}

			tt.breakIt(t, f)
			waitFor(t, "the failed reload to be counted", func() bool {
				return r.reloads(t, tt.group, telemetry.OutcomeError) >= 1
			})
			if got := r.reloads(t, tt.group, telemetry.OutcomeSuccess); got != 0 {
				t.Errorf("bank_reloads_total{file=%s,outcome=success} = %v, want 0", tt.group, got)
			}
			if !r.logs.contains("reload failed, keeping the last good state", `"group":"`+tt.group+`"`) {
				t.Error("the failed reload was not logged")
			}
			// The last good state serves on: the open connection, a new one (old serial),
			// the old CRL (eve refused) and the old policy (alice allowed).
			if _, err := call(open); err != nil {
				t.Errorf("open connection after the broken reload: %v", err)
			}
			serial, err := call(r.dial(t, f.pki.Client(t, bobID)))
			if err != nil || serial.Cmp(f.server.Cert.SerialNumber) != 0 {
				t.Errorf("new connection after the broken reload: serial %v, %v; want the old certificate", serial, err)
			}
			if _, err := call(r.dial(t, f.eve)); status.Code(err) != codes.Unavailable {
				t.Errorf("eve after the broken reload: %v, want her handshake still refused", err)
			}
			if leaf := r.rt.Source().Certificate().Leaf; !leaf.Equal(f.server.Cert) {
				t.Error("the served certificate changed")
			}
			if b := r.rt.Source().Bundle(); len(b) != 1 || !b[0].Equal(f.pki.Root.Cert) {
				t.Error("the trusted bundle changed")
			}
		})
	}
}

// TestPolicyChangeAppliesWithoutRestart: customers lose Echo in the policy file; alice's
// next call on her open connection is PermissionDenied, tellers keep it.
func TestPolicyChangeAppliesWithoutRestart(t *testing.T) {
	f := newFixture(t)
	r := f.start(t)
	aliceCC := r.dial(t, f.pki.Client(t, aliceID))
	tellerCC := r.dial(t, f.pki.Client(t, tellerID))
	if _, err := call(aliceCC); err != nil {
		t.Fatalf("alice before the change: %v", err)
	}
	writeFile(t, f.cfg.Policy, []byte(strings.Replace(testPolicy, "customer: { methods: [/test.v1.TestService/Echo] }", "customer: { methods: [/bank.identity.v1.IdentityService/WhoAmI] }", 1)))
	waitFor(t, "the new policy", func() bool { return r.reloads(t, service.GroupPolicy, telemetry.OutcomeSuccess) == 1 })

	if _, err := call(aliceCC); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("alice after losing Echo: %v, want PermissionDenied", err)
	}
	if _, err := call(tellerCC); err != nil {
		t.Fatalf("teller after the change: %v", err)
	}
}

// TestSIGHUPReloads: with polling off, nothing changes until the reload signal; then a new
// CRL takes effect on the open connection (closed, and its reconnection refused).
func TestSIGHUPReloads(t *testing.T) {
	f := newFixture(t)
	f.cfg.ReloadInterval = 0
	hup := make(chan os.Signal, 1)
	r := f.start(t, service.WithReloadSignal(hup))
	alice := f.pki.Client(t, aliceID)
	cc := r.dial(t, alice)

	f.pki.WriteCRL(t, f.pki.CRL(t, f.eve.Cert, alice.Cert))
	// Without polling only the signal can reload: the file change alone does nothing.
	if _, err := call(cc); err != nil {
		t.Fatalf("before SIGHUP: %v", err)
	}
	hup <- syscall.SIGHUP
	waitFor(t, "the reload on SIGHUP", func() bool { return r.reloads(t, service.GroupCRL, telemetry.OutcomeSuccess) == 1 })
	if _, err := call(cc); status.Code(err) != codes.Unavailable {
		t.Fatalf("after SIGHUP: %v, want Unavailable (connection closed, handshake refused)", err)
	}
	// SIGHUP reloads every group, changed or not.
	for _, g := range []string{service.GroupBundle, service.GroupCertificate, service.GroupPolicy} {
		if got := r.reloads(t, g, telemetry.OutcomeSuccess); got != 1 {
			t.Errorf("bank_reloads_total{file=%s,outcome=success} = %v after SIGHUP, want 1", g, got)
		}
	}
}

// TestRevocationClosesOpenConnections: a CRL reload that revokes alice closes her open
// connection (it leaves READY without any call being made on it) within the reload
// interval; bob's connection stays the same one, and the closing is logged and counted.
func TestRevocationClosesOpenConnections(t *testing.T) {
	f := newFixture(t)
	r := f.start(t)
	alice := f.pki.Client(t, aliceID)
	aliceCC, bobCC := r.dial(t, alice), r.dial(t, f.pki.Client(t, bobID))
	for _, cc := range []*grpc.ClientConn{aliceCC, bobCC} {
		if _, err := call(cc); err != nil {
			t.Fatal(err)
		}
	}
	bobConns := func() []string {
		var out []string
		for _, c := range r.rt.Server().Connections() {
			if c.ID == bobID {
				out = append(out, c.Remote.String())
			}
		}
		return out
	}
	bobBefore := bobConns()

	f.pki.WriteCRL(t, f.pki.CRL(t, f.eve.Cert, alice.Cert))
	waitFor(t, "alice's connection to be closed", func() bool { return aliceCC.GetState() != connectivity.Ready })
	if !r.logs.contains(`"msg":"connection closed: peer credentials no longer valid"`, pki.SerialHex(alice.Cert.SerialNumber), `"reason":"revoked"`) {
		t.Error("no log record naming alice's revoked serial")
	}
	if v, _ := r.metric(t, "bank_connections_closed_total", map[string]string{"reason": tlsconfig.ReasonRevoked}); v != 1 {
		t.Errorf("bank_connections_closed_total{reason=revoked} = %v, want 1", v)
	}
	if _, err := call(bobCC); err != nil {
		t.Fatalf("bob: %v", err)
	}
	if got := bobConns(); len(got) != 1 || got[0] != bobBefore[0] {
		t.Errorf("bob's connections %v, want the one he had, %v", got, bobBefore)
	}
}
