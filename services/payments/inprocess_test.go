package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/test/bufconn"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	identityv1 "mtlsbank/gen/bank/identity/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	"mtlsbank/internal/accounts"
	"mtlsbank/internal/auditlog/auditlogtest"
	"mtlsbank/internal/authz"
	"mtlsbank/internal/grpcserver"
	"mtlsbank/internal/ledger"
	"mtlsbank/internal/ledger/sqlitestore"
	"mtlsbank/internal/money"
	"mtlsbank/internal/payments"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/service"
	"mtlsbank/internal/tlsconfig"
	"mtlsbank/internal/whoami"
)

// Both services in one test process: each behind its real gRPC server (mutual TLS with
// certificates from pkitest, the authorization interceptors, its policy), connected
// through in-memory bufconn listeners; the ledger on a real SQLite file.

const (
	auditorID = "spiffe://bank.local/auditor/audrey"
	internID  = "spiffe://bank.local/intern/ivan"
)

func bankTD() spiffeid.TrustDomain { return spiffeid.RequireTrustDomainFromString("bank.local") }

// bank is the pair of services under test.
type bank struct {
	pki      *pkitest.PKI
	ledger   *ledger.Ledger
	accounts *accountsNode
	app      *app
	payLis   *bufconn.Listener
	logs     *syncBuffer
	// probes is the base URL of payments' /healthz and /readyz on loopback.
	probes string
}

// accountsNode is the accounts service on a bufconn listener that can be stopped and
// started again over the same ledger, as if the process restarted.
type accountsNode struct {
	src    *tlsconfig.Source
	policy *authz.Policy
	ledger *ledger.Ledger
	logger *slog.Logger
	mu     sync.Mutex
	srv    *grpcserver.Server
	lis    atomic.Pointer[bufconn.Listener]
	served chan error
}

func (n *accountsNode) start(tb testing.TB) {
	tb.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	srv, err := grpcserver.New(n.src, n.policy, n.logger)
	if err != nil {
		tb.Fatal(err)
	}
	identityv1.RegisterIdentityServiceServer(srv, whoami.New())
	accounts.NewService(n.ledger, n.logger).Register(srv)
	lis := bufconn.Listen(1 << 20)
	n.srv = srv
	n.lis.Store(lis)
	n.served = make(chan error, 1)
	go func(served chan error) { served <- srv.Serve(lis) }(n.served)
}

// stop shuts the server down; until start, every dial fails as a refused connection does.
func (n *accountsNode) stop(tb testing.TB) {
	tb.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv == nil {
		return
	}
	n.lis.Store(nil)
	n.srv.GRPC().Stop()
	if err := <-n.served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		tb.Errorf("accounts Serve: %v", err)
	}
	n.srv = nil
}

func (n *accountsNode) dial(ctx context.Context, _ string) (net.Conn, error) {
	lis := n.lis.Load()
	if lis == nil {
		return nil, errors.New("accounts is down: connection refused")
	}
	return lis.DialContext(ctx)
}

func newBank(tb testing.TB, extraArgs ...string) *bank {
	tb.Helper()
	return newBankWith(tb, bankSetup{}, extraArgs...)
}

// bankSetup is what a test changes in the pair of services beyond payments' flags.
type bankSetup struct {
	// accountsDial is appended to payments' options of its connection to accounts
	// (a test's interceptor).
	accountsDial []grpc.DialOption
	// revocation, if not nil, returns the RevocationChecker payments uses over p.
	revocation func(p *pkitest.PKI) payments.RevocationChecker
}

func newBankWith(tb testing.TB, setup bankSetup, extraArgs ...string) *bank {
	tb.Helper()
	ctx := context.Background()
	p := pkitest.New(tb)
	b := &bank{pki: p, logs: &syncBuffer{}}
	logger := slog.New(slog.NewTextHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("server logs:\n%s", b.logs.String())
		}
	})

	store, err := sqlitestore.Open(ctx, filepath.Join(tb.TempDir(), "accounts.db"))
	if err != nil {
		tb.Fatal(err)
	}
	b.ledger, err = ledger.New(store)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		b.ledger.Close()
		store.Close()
	})
	accPolicy, err := authz.LoadPolicy(filepath.Join("..", "accounts", "policy.yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	accSrc, err := tlsconfig.NewSource(bankTD(), p.Server(tb, accountsID).TLSCertificate(), p.Bundle)
	if err != nil {
		tb.Fatal(err)
	}
	b.accounts = &accountsNode{src: accSrc, policy: accPolicy, ledger: b.ledger, logger: logger.With("service", "accounts")}
	b.accounts.start(tb)
	tb.Cleanup(func() { b.accounts.stop(tb) })

	node := b.startPayments(tb, setup, extraArgs...)
	b.app, b.payLis, b.probes = node.app, node.lis, node.probes
	return b
}

// paymentsNode is one payments service runtime: what one payments process runs.
type paymentsNode struct {
	app    *app
	lis    *bufconn.Listener
	probes string // base URL of its /healthz and /readyz on loopback
}

// startPayments starts a payments runtime connected to the bank's accounts
// service, with its own certificate files, and its own database unless extraArgs
// name one (--db): a second runtime on the first one's database is a second
// replica.
func (b *bank) startPayments(tb testing.TB, setup bankSetup, extraArgs ...string) *paymentsNode {
	tb.Helper()
	ctx := context.Background()
	p := b.pki
	logger := slog.New(slog.NewTextHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cert, key := p.WriteLeaf(tb, "payments", p.Server(tb, paymentsID))
	auditKey, _ := auditlogtest.WriteKeyPair(tb, p.Dir, "payments")
	args := append([]string{
		"--db", filepath.Join(tb.TempDir(), "payments.db"),
		"--cert", cert, "--key", key, "--ca", p.WriteBundle(tb), "--crl", p.WriteCRL(tb, p.CRL(tb)),
		"--audit-key", auditKey,
		"--accounts-addr", "passthrough:///bufnet", "--accounts-server-name", "bufnet",
		"--accounts-timeout", "2s", "--recovery-interval", "100ms",
		"--rate-limit", "0", // these tests are about payments, not about rate limits
	}, extraArgs...)
	cfg, err := parseConfig(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		tb.Fatal(err)
	}
	n := &paymentsNode{app: &app{cfg: cfg, accountsDial: append([]grpc.DialOption{grpc.WithContextDialer(b.accounts.dial)}, setup.accountsDial...)}}
	if setup.revocation != nil {
		n.app.revocation = setup.revocation(p)
	}
	rt, err := service.New(ctx, n.app.service(), cfg.Config, logger.With("service", "payments"))
	if err != nil {
		tb.Fatal(err)
	}
	n.lis = bufconn.Listen(1 << 20)
	probeLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	n.probes = "http://" + probeLis.Addr().String()
	serveCtx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- rt.Serve(serveCtx, n.lis, probeLis) }()
	tb.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			tb.Errorf("payments Serve: %v", err)
		}
	})
	return n
}

// client connects to a service's listener as the holder of a fresh certificate for
// spiffeID, checking the server's SPIFFE ID.
func (b *bank) client(tb testing.TB, spiffeID string, lis func(context.Context, string) (net.Conn, error), serverID string) *grpc.ClientConn {
	tb.Helper()
	src, err := tlsconfig.NewSource(bankTD(), b.pki.Client(tb, spiffeID).TLSCertificate(), b.pki.Bundle)
	if err != nil {
		tb.Fatal(err)
	}
	creds := tlsconfig.ClientCredentials(src, "bufnet", tlsconfig.WithServerID(spiffeid.RequireFromString(serverID)))
	cc, err := grpc.NewClient("passthrough:///bufnet", grpc.WithTransportCredentials(creds), grpc.WithContextDialer(lis))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cc.Close() })
	return cc
}

// readyz returns payments' /readyz status code and body.
func (b *bank) readyz(tb testing.TB) (int, string) {
	tb.Helper()
	resp, err := http.Get(b.probes + "/readyz")
	if err != nil {
		tb.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("read /readyz: %v", err)
	}
	return resp.StatusCode, string(body)
}

func (b *bank) payments(tb testing.TB, spiffeID string) paymentsv1.PaymentsServiceClient {
	tb.Helper()
	return b.paymentsOf(tb, &paymentsNode{lis: b.payLis}, spiffeID)
}

// paymentsOf is a client of the payments runtime n.
func (b *bank) paymentsOf(tb testing.TB, n *paymentsNode, spiffeID string) paymentsv1.PaymentsServiceClient {
	tb.Helper()
	dial := func(ctx context.Context, _ string) (net.Conn, error) { return n.lis.DialContext(ctx) }
	return paymentsv1.NewPaymentsServiceClient(b.client(tb, spiffeID, dial, paymentsID))
}

func (b *bank) accountsClient(tb testing.TB, spiffeID string) accountsv1.AccountsServiceClient {
	tb.Helper()
	return accountsv1.NewAccountsServiceClient(b.client(tb, spiffeID, b.accounts.dial, accountsID))
}

// open opens an EUR account for owner straight in the ledger and deposits minor units.
func (b *bank) open(tb testing.TB, owner string, minor int64) string {
	tb.Helper()
	return b.openIn(tb, owner, "EUR", minor)
}

func (b *bank) openIn(tb testing.TB, owner, currency string, minor int64) string {
	tb.Helper()
	ctx := context.Background()
	a, err := b.ledger.OpenAccount(ctx, ledger.OpenAccountRequest{Owner: owner, Currency: currency})
	if err != nil {
		tb.Fatal(err)
	}
	if minor > 0 {
		if _, err := b.ledger.Deposit(ctx, ledger.DepositRequest{
			AccountID: a.ID.String(), Amount: money.Amount{Currency: currency, Minor: minor},
			IdempotencyKey: "deposit-" + a.ID.String(), Principal: tellerID,
		}); err != nil {
			tb.Fatal(err)
		}
	}
	return a.ID.String()
}

// balances reads balances straight from the ledger, which works while accounts is down.
func (b *bank) balances(tb testing.TB, ids ...string) []int64 {
	tb.Helper()
	out := make([]int64, len(ids))
	for i, id := range ids {
		a, err := b.ledger.GetAccount(context.Background(), id)
		if err != nil {
			tb.Fatal(err)
		}
		out[i] = a.Balance
	}
	return out
}

func (b *bank) wantBalances(tb testing.TB, ids []string, want ...int64) {
	tb.Helper()
	if got := b.balances(tb, ids...); fmt.Sprint(got) != fmt.Sprint(want) {
		tb.Fatalf("balances %v, want %v", got, want)
	}
}
