package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	typev1 "mtlsbank/gen/bank/type/v1"
	"mtlsbank/internal/auditlog/auditlogtest"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/roundrobin"
	"mtlsbank/internal/tlsconfig"
)

// These tests run the real binaries as separate processes over loopback TCP, and kill
// them with SIGKILL, to prove that no acknowledged payment is lost or done twice.

const (
	tellerID   = "spiffe://bank.local/teller/tina"
	aliceID    = "spiffe://bank.local/customer/alice"
	bobID      = "spiffe://bank.local/customer/bob"
	accountsID = "spiffe://bank.local/service/accounts"
	paymentsID = "spiffe://bank.local/service/payments"
)

// waitTimeout bounds every wait for a condition; generous, because two cores are shared.
const waitTimeout = 60 * time.Second

func TestProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the service binaries")
	}
	bin := buildBinaries(t)
	t.Run("payments killed mid-payment completes it exactly once on restart", func(t *testing.T) {
		testCrashRecovery(t, bin)
	})
	t.Run("accounts killed under concurrent payments", func(t *testing.T) {
		testAccountsRestart(t, bin)
	})
}

type binaries struct{ accounts, payments string }

// buildBinaries builds accounts and a crashtest build of payments into a temp dir.
func buildBinaries(tb testing.TB) binaries {
	tb.Helper()
	dir := tb.TempDir()
	b := binaries{accounts: filepath.Join(dir, "accounts"), payments: filepath.Join(dir, "payments")}
	for _, args := range [][]string{
		{"build", "-o", b.accounts, "mtlsbank/services/accounts"},
		{"build", "-tags", "crashtest", "-o", b.payments, "mtlsbank/services/payments"},
	} {
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			tb.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return b
}

// testbed is a PKI written to files plus the flags each service needs.
type testbed struct {
	pki          *pkitest.PKI
	dir          string
	accountsAddr string
	caPath       string
	crlPath      string
	certs        map[string][2]string // name -> cert, key paths
	auditKeys    map[string]string    // name -> audit signing key path
	clients      map[string]*pki.Leaf
}

func newTestbed(tb testing.TB) *testbed {
	tb.Helper()
	p := pkitest.New(tb)
	b := &testbed{
		pki:          p,
		dir:          tb.TempDir(),
		accountsAddr: freeAddr(tb),
		caPath:       p.WriteBundle(tb),
		crlPath:      p.WriteCRL(tb, p.CRL(tb)),
		certs:        make(map[string][2]string),
		auditKeys:    make(map[string]string),
		clients:      make(map[string]*pki.Leaf),
	}
	for name, id := range map[string]string{"accounts": accountsID, "payments": paymentsID} {
		c, k := p.WriteLeaf(tb, name, p.Server(tb, id))
		b.certs[name] = [2]string{c, k}
		b.auditKeys[name], _ = auditlogtest.WriteKeyPair(tb, p.Dir, name)
	}
	for name, id := range map[string]string{"teller": tellerID, "alice": aliceID, "bob": bobID} {
		b.clients[name] = p.Client(tb, id)
	}
	return b
}

func (b *testbed) accountsArgs() []string {
	return []string{
		"--listen", b.accountsAddr, "--metrics-listen", "127.0.0.1:0",
		"--db", filepath.Join(b.dir, "accounts.db"),
		"--cert", b.certs["accounts"][0], "--key", b.certs["accounts"][1],
		"--ca", b.caPath, "--crl", b.crlPath, "--audit-key", b.auditKeys["accounts"],
	}
}

func (b *testbed) paymentsArgs(listen string, recovery time.Duration) []string {
	return []string{
		"--listen", listen, "--metrics-listen", "127.0.0.1:0",
		"--db", filepath.Join(b.dir, "payments.db"),
		"--cert", b.certs["payments"][0], "--key", b.certs["payments"][1],
		"--ca", b.caPath, "--crl", b.crlPath, "--audit-key", b.auditKeys["payments"],
		"--accounts-addr", b.accountsAddr, "--accounts-server-name", "localhost",
		"--recovery-interval", recovery.String(), "--accounts-timeout", "3s",
		"--rate-limit", "0", // the load test's tellers would hit it; rate limits are not its subject
	}
}

// dial returns a client connection to addr authenticated as the named client,
// checking that the server presents serverID. addr may be a comma-separated list of
// replicas, balanced round robin as payments balances accounts.
func (b *testbed) dial(tb testing.TB, name, addr, serverID string) *grpc.ClientConn {
	tb.Helper()
	src, err := tlsconfig.NewSource(spiffeid.RequireTrustDomainFromString("bank.local"), b.clients[name].TLSCertificate(), b.pki.Bundle)
	if err != nil {
		tb.Fatal(err)
	}
	creds := tlsconfig.ClientCredentials(src, "localhost", tlsconfig.WithServerID(spiffeid.RequireFromString(serverID)))
	target, opts := "passthrough:///"+addr, []grpc.DialOption{grpc.WithTransportCredentials(creds),
		// A short reconnect backoff: the tests restart servers and should find them again fast.
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{
			BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second,
		}, MinConnectTimeout: 5 * time.Second})}
	if strings.Contains(addr, ",") {
		var list []grpc.DialOption
		if target, list, err = roundrobin.Target(addr); err != nil {
			tb.Fatal(err)
		}
		opts = append(append(opts, list...), grpc.WithDefaultServiceConfig(`{`+roundrobin.ServiceConfig+`}`))
	}
	cc, err := grpc.NewClient(target, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cc.Close() })
	return cc
}

// process is a running service binary.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, valid after done
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs bin with args and extra environment; the test's cleanup kills it if it
// still runs and prints its output if the test failed.
func start(tb testing.TB, name, bin string, args []string, env ...string) *process {
	tb.Helper()
	p := &process{name: name, cmd: exec.Command(bin, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(withoutBankEnv(os.Environ()), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		p.kill(tb)
		if tb.Failed() {
			tb.Logf("output of %s (pid %d):\n%s", name, p.cmd.Process.Pid, p.out.String())
		}
	})
	return p
}

// withoutBankEnv drops BANK_* variables of the developer's shell, so that only the
// flags of the test configure the services.
func withoutBankEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "BANK_") {
			out = append(out, kv)
		}
	}
	return out
}

// kill sends SIGKILL (if the process still runs) and waits for it to exit.
func (p *process) kill(tb testing.TB) {
	tb.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	p.wait(tb)
}

// wait waits for the process to exit.
func (p *process) wait(tb testing.TB) {
	tb.Helper()
	select {
	case <-p.done:
	case <-time.After(waitTimeout):
		tb.Fatalf("%s did not exit within %v", p.name, waitTimeout)
	}
}

// terminate sends SIGTERM and checks that the process shuts down cleanly (exit 0).
func (p *process) terminate(tb testing.TB) {
	tb.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		tb.Fatalf("SIGTERM %s: %v", p.name, err)
	}
	p.wait(tb)
	if p.err != nil {
		tb.Fatalf("%s after SIGTERM: %v, want a clean exit", p.name, p.err)
	}
}

// killedBySIGKILL reports whether the exited process died of SIGKILL.
func (p *process) killedBySIGKILL() bool {
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// eventually polls cond until it returns nil or waitTimeout passes.
func eventually(tb testing.TB, what string, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %v: %v", what, waitTimeout, err)
		}
		<-tick.C
	}
}

// waitServing waits until the server behind cc answers its health check with SERVING,
// or p exits.
func waitServing(tb testing.TB, p *process, cc *grpc.ClientConn) {
	tb.Helper()
	eventually(tb, p.name+" serving", func() error {
		select {
		case <-p.done:
			tb.Fatalf("%s exited: %v", p.name, p.err)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return err
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("status %s", resp.GetStatus())
		}
		return nil
	})
}

func eur(minor int64) *typev1.Money { return &typev1.Money{CurrencyCode: "EUR", MinorUnits: minor} }

// openFunded opens an EUR account for owner as the teller and deposits minor units.
func openFunded(tb testing.TB, teller accountsv1.AccountsServiceClient, owner string, minor int64) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	acc, err := teller.OpenAccount(ctx, &accountsv1.OpenAccountRequest{Owner: owner, Currency: "EUR"})
	if err != nil {
		tb.Fatalf("OpenAccount(%s): %v", owner, err)
	}
	id := acc.GetAccount().GetId()
	if minor > 0 {
		if _, err := teller.Deposit(ctx, &accountsv1.DepositRequest{
			AccountId: id, Amount: eur(minor), IdempotencyKey: "deposit-" + id,
		}); err != nil {
			tb.Fatalf("Deposit(%s): %v", id, err)
		}
	}
	return id
}

// balance returns an account's balance in minor units, read by the teller.
func balance(tb testing.TB, teller accountsv1.AccountsServiceClient, id string) int64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	resp, err := teller.GetAccount(ctx, &accountsv1.GetAccountRequest{Id: id})
	if err != nil {
		tb.Fatalf("GetAccount(%s): %v", id, err)
	}
	return resp.GetAccount().GetBalance().GetMinorUnits()
}

// allPayments pages through every payment the client may list.
func allPayments(ctx context.Context, c paymentsv1.PaymentsServiceClient) ([]*paymentsv1.Payment, error) {
	var out []*paymentsv1.Payment
	token := ""
	for {
		resp, err := c.ListPayments(ctx, &paymentsv1.ListPaymentsRequest{PageSize: 100, PageToken: token})
		if err != nil {
			return nil, err
		}
		out = append(out, resp.GetPayments()...)
		if token = resp.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}

func testCrashRecovery(t *testing.T, bin binaries) {
	b := newTestbed(t)
	acc := start(t, "accounts", bin.accounts, b.accountsArgs())
	tellerAcc := b.dial(t, "teller", b.accountsAddr, accountsID)
	waitServing(t, acc, tellerAcc)
	teller := accountsv1.NewAccountsServiceClient(tellerAcc)
	aliceAccount := openFunded(t, teller, aliceID, 100_00)
	bobAccount := openFunded(t, teller, bobID, 0)

	tests := []struct {
		name    string
		crashAt string
		// movedAtCrash says whether the transfer happened before the process died.
		movedAtCrash bool
	}{
		{name: "after record, before transfer", crashAt: "after-record", movedAtCrash: false},
		{name: "after transfer, before outcome recorded", crashAt: "after-transfer", movedAtCrash: true},
	}
	wantAlice, wantBob := int64(100_00), int64(0)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := freeAddr(t)
			key := fmt.Sprintf("crash-%d", i)
			order := &paymentsv1.CreatePaymentRequest{
				FromAccountId: aliceAccount, ToAccountId: bobAccount, Amount: eur(25_00), IdempotencyKey: key,
			}

			// The recovery interval is long: only the pass at start-up may finish the payment.
			crashing := start(t, "payments (crashing)", bin.payments, b.paymentsArgs(addr, time.Hour), "BANK_TEST_CRASH="+tt.crashAt)
			alicePay := b.dial(t, "alice", addr, paymentsID)
			waitServing(t, crashing, alicePay)
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			if _, err := paymentsv1.NewPaymentsServiceClient(alicePay).CreatePayment(ctx, order); status.Code(err) != codes.Unavailable {
				t.Fatalf("CreatePayment on a crashing server: %v, want Unavailable", err)
			}
			crashing.wait(t)
			if !crashing.killedBySIGKILL() {
				t.Fatalf("payments exited with %v, want killed by SIGKILL at %s", crashing.err, tt.crashAt)
			}
			if tt.movedAtCrash {
				wantAlice, wantBob = wantAlice-25_00, wantBob+25_00
			}
			if a, b := balance(t, teller, aliceAccount), balance(t, teller, bobAccount); a != wantAlice || b != wantBob {
				t.Fatalf("balances at the crash: alice %d bob %d, want %d and %d", a, b, wantAlice, wantBob)
			}
			if !tt.movedAtCrash {
				wantAlice, wantBob = wantAlice-25_00, wantBob+25_00
			}

			restarted := start(t, "payments", bin.payments, b.paymentsArgs(addr, time.Hour))
			waitServing(t, restarted, alicePay)
			payments := paymentsv1.NewPaymentsServiceClient(alicePay)
			var recovered *paymentsv1.Payment
			eventually(t, "recovery completes the payment", func() error {
				ps, err := allPayments(ctx, payments)
				if err != nil {
					return err
				}
				for _, p := range ps {
					if p.GetIdempotencyKey() == key {
						if p.GetStatus() != paymentsv1.PaymentStatus_PAYMENT_STATUS_COMPLETED {
							return fmt.Errorf("payment %s is %s", p.GetId(), p.GetStatus())
						}
						recovered = p
						return nil
					}
				}
				return fmt.Errorf("no payment with key %s among %d", key, len(ps))
			})
			if a, b := balance(t, teller, aliceAccount), balance(t, teller, bobAccount); a != wantAlice || b != wantBob {
				t.Fatalf("balances after recovery: alice %d bob %d, want %d and %d (exactly once)", a, b, wantAlice, wantBob)
			}

			// The payer retries with the same key: the same payment, and no money moves.
			resp, err := payments.CreatePayment(ctx, order)
			if err != nil {
				t.Fatalf("retry with the same key: %v", err)
			}
			if !resp.GetReplayed() || resp.GetPayment().GetId() != recovered.GetId() ||
				resp.GetPayment().GetTransactionId() != recovered.GetTransactionId() {
				t.Fatalf("retry returned %v (replayed %v), want payment %s replayed", resp.GetPayment(), resp.GetReplayed(), recovered.GetId())
			}
			if a, b := balance(t, teller, aliceAccount), balance(t, teller, bobAccount); a != wantAlice || b != wantBob {
				t.Fatalf("balances after the retry: alice %d bob %d, want %d and %d", a, b, wantAlice, wantBob)
			}
			restarted.terminate(t)
		})
	}
}

func testAccountsRestart(t *testing.T, bin binaries) {
	const (
		workers           = 4
		paymentsPerWorker = 20
		deposit           = 50_00
	)
	b := newTestbed(t)
	acc := start(t, "accounts", bin.accounts, b.accountsArgs())
	tellerAcc := b.dial(t, "teller", b.accountsAddr, accountsID)
	waitServing(t, acc, tellerAcc)
	teller := accountsv1.NewAccountsServiceClient(tellerAcc)
	var ids []string
	for _, owner := range []string{aliceID, bobID, "spiffe://bank.local/customer/carol", "spiffe://bank.local/customer/dave"} {
		ids = append(ids, openFunded(t, teller, owner, deposit))
	}
	aliceAccount, bobAccount := ids[0], ids[1]

	payAddr := freeAddr(t)
	pay := start(t, "payments", bin.payments, b.paymentsArgs(payAddr, 200*time.Millisecond))
	conns := map[string]*grpc.ClientConn{}
	for _, name := range []string{"teller", "alice", "bob"} {
		conns[name] = b.dial(t, name, payAddr, paymentsID)
	}
	waitServing(t, pay, conns["teller"])

	// Each worker orders its payments one by one and retries each with its key until
	// it gets an answer; alice and bob pay from their own account, the tellers from any.
	var finished, unavailableAfterKill atomic.Int64
	var killed atomic.Bool
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		who := []string{"teller", "alice", "bob", "teller"}[w]
		client := paymentsv1.NewPaymentsServiceClient(conns[who])
		rng := rand.New(rand.NewPCG(uint64(w), 42))
		wg.Go(func() {
			for i := range paymentsPerWorker {
				from := ids[rng.IntN(len(ids))]
				switch who {
				case "alice":
					from = aliceAccount
				case "bob":
					from = bobAccount
				}
				to := from
				for to == from {
					to = ids[rng.IntN(len(ids))]
				}
				req := &paymentsv1.CreatePaymentRequest{
					FromAccountId: from, ToAccountId: to, Amount: eur(int64(1_00 + rng.IntN(20_00))),
					IdempotencyKey: fmt.Sprintf("w%d-p%d", w, i),
				}
				if err := payUntilAnswered(client, req, &killed, &unavailableAfterKill); err != nil {
					errs <- fmt.Errorf("worker %d (%s) payment %d: %w", w, who, i, err)
					return
				}
				finished.Add(1)
			}
		})
	}

	eventually(t, "a quarter of the payments finished", func() error {
		if n := finished.Load(); n < workers*paymentsPerWorker/4 {
			return fmt.Errorf("%d finished", n)
		}
		return nil
	})
	acc.kill(t)
	killed.Store(true)
	eventually(t, "a payment refused as Unavailable while accounts is down", func() error {
		if unavailableAfterKill.Load() == 0 {
			return errors.New("none yet")
		}
		return nil
	})
	acc = start(t, "accounts (restarted)", bin.accounts, b.accountsArgs())
	waitServing(t, acc, tellerAcc)

	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	tellerPay := paymentsv1.NewPaymentsServiceClient(conns["teller"])
	all := settledPayments(t, ctx, tellerPay)
	if len(all) != workers*paymentsPerWorker {
		t.Fatalf("%d payments recorded, want %d (one per key)", len(all), workers*paymentsPerWorker)
	}

	want := make(map[string]int64, len(ids))
	for _, id := range ids {
		want[id] = deposit
	}
	var completed, failed int
	for _, p := range all {
		switch p.GetStatus() {
		case paymentsv1.PaymentStatus_PAYMENT_STATUS_COMPLETED:
			completed++
			want[p.GetFromAccountId()] -= p.GetAmount().GetMinorUnits()
			want[p.GetToAccountId()] += p.GetAmount().GetMinorUnits()
		case paymentsv1.PaymentStatus_PAYMENT_STATUS_FAILED:
			failed++
		default:
			t.Fatalf("payment %s is %s", p.GetId(), p.GetStatus())
		}
	}
	var total int64
	for _, id := range ids {
		got := balance(t, teller, id)
		total += got
		if got < 0 {
			t.Errorf("account %s has a negative balance %d", id, got)
		}
		if got != want[id] {
			t.Errorf("account %s: balance %d, want %d = deposit + completed payments", id, got, want[id])
		}
	}
	if total != deposit*int64(len(ids)) {
		t.Errorf("money not conserved: %d in the accounts, %d deposited", total, deposit*int64(len(ids)))
	}
	if completed == 0 {
		t.Error("no payment completed")
	}
	t.Logf("%d payments: %d completed, %d failed (insufficient funds)", len(all), completed, failed)
}

// settledPayments waits until no payment the client may list is PENDING (the
// recovery loop finishes them) and returns them all.
func settledPayments(tb testing.TB, ctx context.Context, c paymentsv1.PaymentsServiceClient) []*paymentsv1.Payment {
	tb.Helper()
	var all []*paymentsv1.Payment
	eventually(tb, "no payment left PENDING", func() error {
		var err error
		if all, err = allPayments(ctx, c); err != nil {
			return err
		}
		for _, p := range all {
			if p.GetStatus() == paymentsv1.PaymentStatus_PAYMENT_STATUS_PENDING {
				return fmt.Errorf("payment %s is PENDING", p.GetId())
			}
		}
		return nil
	})
	return all
}

// payUntilAnswered calls CreatePayment, retrying with the same key while the answer is
// Unavailable (accounts down) or the connection fails, until it gets a definitive one.
func payUntilAnswered(c paymentsv1.PaymentsServiceClient, req *paymentsv1.CreatePaymentRequest, killed *atomic.Bool, unavailable *atomic.Int64) error {
	deadline := time.Now().Add(waitTimeout)
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := c.CreatePayment(ctx, req)
		cancel()
		switch status.Code(err) {
		case codes.OK:
			if resp.GetPayment().GetStatus() != paymentsv1.PaymentStatus_PAYMENT_STATUS_COMPLETED {
				return fmt.Errorf("OK with a %s payment", resp.GetPayment().GetStatus())
			}
			return nil
		case codes.FailedPrecondition:
			if !strings.Contains(status.Convert(err).Message(), "insufficient funds") {
				return fmt.Errorf("unexpected refusal: %v", err)
			}
			return nil
		case codes.Unavailable, codes.DeadlineExceeded:
			if killed.Load() {
				unavailable.Add(1)
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("still %v after %d attempts", err, attempt)
			}
		default:
			return fmt.Errorf("unexpected answer: %v", err)
		}
	}
}
