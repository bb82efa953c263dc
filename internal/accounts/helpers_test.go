package accounts_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	typev1 "mtlsbank/gen/bank/type/v1"
	"mtlsbank/internal/accounts"
	"mtlsbank/internal/authz"
	"mtlsbank/internal/grpcserver"
	"mtlsbank/internal/identity"
	"mtlsbank/internal/ledger"
	"mtlsbank/internal/ledger/sqlitestore"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/refusal"
	"mtlsbank/internal/tlsconfig"
)

// The identities of DESIGN.md, plus a second teller for key scoping.
const (
	tellerID   = "spiffe://bank.local/teller/tina"
	teller2ID  = "spiffe://bank.local/teller/tom"
	aliceID    = "spiffe://bank.local/customer/alice"
	bobID      = "spiffe://bank.local/customer/bob"
	carolID    = "spiffe://bank.local/customer/carol"
	auditorID  = "spiffe://bank.local/auditor/audrey"
	paymentsID = "spiffe://bank.local/service/payments"
	accountsID = "spiffe://bank.local/service/accounts"
)

// policyPath is the accounts service's real policy, the one embedded in bin/accounts.
var policyPath = filepath.Join("..", "..", "services", "accounts", "policy.yaml")

var td = spiffeid.RequireTrustDomainFromString(identity.DefaultTrustDomain)

// unknownAccount is a well-formed account id that no ledger assigned.
const unknownAccount = "acc_00000000000000000000000000"

// env is the accounts service as bin/accounts assembles it (grpcserver, the real policy,
// the ledger on a SQLite file), served over bufconn with real mutual TLS.
type env struct {
	pki    *pkitest.PKI
	lis    *bufconn.Listener
	ledger *ledger.Ledger
	store  *sqlitestore.Store
	src    *tlsconfig.Source // the server's TLS material, for a test to revoke with
	logs   *syncBuffer
}

// newEnv starts the service; opts configure its ledger (after the account cache every
// env has).
func newEnv(tb testing.TB, opts ...ledger.Option) *env {
	tb.Helper()
	return newEnvWithPolicy(tb, policyPath, opts...)
}

// newEnvWithPolicy is newEnv enforcing the policy file at policyFile.
func newEnvWithPolicy(tb testing.TB, policyFile string, opts ...ledger.Option) *env {
	tb.Helper()
	e := &env{pki: pkitest.New(tb), logs: &syncBuffer{}}
	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("server logs:\n%s", e.logs.String())
		}
	})

	// As services/accounts runs the embedded default: the file held alone, accounts cached.
	store, err := sqlitestore.Open(context.Background(), filepath.Join(tb.TempDir(), "accounts.db"), sqlitestore.WithExclusive())
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() { _ = store.Close() }) // a test may have closed it already
	l, err := ledger.New(store, append([]ledger.Option{ledger.WithAccountCache(ledger.DefaultAccountCache)}, opts...)...)
	if err != nil {
		tb.Fatalf("new ledger: %v", err)
	}
	tb.Cleanup(func() { _ = l.Close() })
	e.ledger, e.store = l, store

	policy, err := authz.LoadPolicy(policyFile)
	if err != nil {
		tb.Fatalf("load policy: %v", err)
	}
	src, err := tlsconfig.NewSource(td, e.pki.Server(tb, accountsID).TLSCertificate(), e.pki.Bundle)
	if err != nil {
		tb.Fatalf("server source: %v", err)
	}
	e.src = src
	srv, err := grpcserver.New(src, policy, logger)
	if err != nil {
		tb.Fatalf("grpcserver.New: %v", err)
	}
	accounts.NewService(l, logger).Register(srv)

	e.lis = bufconn.Listen(1 << 20)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(e.lis) }()
	tb.Cleanup(func() {
		srv.GRPC().Stop()
		if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			tb.Errorf("Serve: %v", err)
		}
	})
	return e
}

// client returns an AccountsService client presenting a fresh certificate for spiffeID.
func (e *env) client(tb testing.TB, spiffeID string) accountsv1.AccountsServiceClient {
	tb.Helper()
	src, err := tlsconfig.NewSource(td, e.pki.Client(tb, spiffeID).TLSCertificate(), e.pki.Bundle)
	if err != nil {
		tb.Fatalf("client source: %v", err)
	}
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return e.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(tlsconfig.ClientCredentials(src, "bufnet",
			tlsconfig.WithServerID(spiffeid.RequireFromString(accountsID)))),
	)
	if err != nil {
		tb.Fatalf("dial as %s: %v", spiffeID, err)
	}
	tb.Cleanup(func() { conn.Close() })
	return accountsv1.NewAccountsServiceClient(conn)
}

// callCtx bounds one test's calls, so that a hang fails instead of stalling the run.
func callCtx(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

func amountOf(currency string, minor int64) *typev1.Money {
	return &typev1.Money{CurrencyCode: currency, MinorUnits: minor}
}

func openAccount(tb testing.TB, c accountsv1.AccountsServiceClient, owner, currency string) *accountsv1.Account {
	tb.Helper()
	resp, err := c.OpenAccount(callCtx(tb), &accountsv1.OpenAccountRequest{Owner: owner, Currency: currency, DisplayName: "test"})
	if err != nil {
		tb.Fatalf("open %s account for %s: %v", currency, owner, err)
	}
	return resp.GetAccount()
}

func deposit(tb testing.TB, c accountsv1.AccountsServiceClient, a *accountsv1.Account, minor int64, key string) *accountsv1.DepositResponse {
	tb.Helper()
	resp, err := c.Deposit(callCtx(tb), &accountsv1.DepositRequest{AccountId: a.GetId(), Amount: amountOf(a.GetCurrency(), minor), IdempotencyKey: key})
	if err != nil {
		tb.Fatalf("deposit %d into %s: %v", minor, a.GetId(), err)
	}
	return resp
}

// balances returns the balance of every account, as a teller lists them: a refusal must
// leave it exactly as it was (no money moved, no account opened).
func balances(tb testing.TB, teller accountsv1.AccountsServiceClient) map[string]int64 {
	tb.Helper()
	out := make(map[string]int64)
	token := ""
	for {
		resp, err := teller.ListAccounts(callCtx(tb), &accountsv1.ListAccountsRequest{PageSize: 500, PageToken: token})
		if err != nil {
			tb.Fatalf("list accounts: %v", err)
		}
		for _, a := range resp.GetAccounts() {
			out[a.GetId()] = a.GetBalance().GetMinorUnits()
		}
		if token = resp.GetNextPageToken(); token == "" {
			return out
		}
	}
}

func balanceOf(tb testing.TB, teller accountsv1.AccountsServiceClient, id string) int64 {
	tb.Helper()
	resp, err := teller.GetAccount(callCtx(tb), &accountsv1.GetAccountRequest{Id: id})
	if err != nil {
		tb.Fatalf("get account %s: %v", id, err)
	}
	return resp.GetAccount().GetBalance().GetMinorUnits()
}

// wantStatus fails unless err has code, and, when field is not empty, a BadRequest
// detail naming field.
func wantStatus(tb testing.TB, err error, code codes.Code, field string) {
	tb.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != code {
		tb.Fatalf("got %v, want code %s", err, code)
	}
	if field == "" {
		return
	}
	var got []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				got = append(got, v.GetField())
			}
		}
	}
	if len(got) != 1 || got[0] != field {
		tb.Fatalf("field violations %q, want [%s] (status %v)", got, field, err)
	}
}

// wantReason checks the google.rpc.ErrorInfo of a refusal: exactly one, in the bank's
// domain, with reason; or, for reason "" (an authentication or authorization denial),
// none at all, so that such a denial stays generic.
func wantReason(tb testing.TB, err error, reason string) {
	tb.Helper()
	var infos []*errdetails.ErrorInfo
	for _, d := range status.Convert(err).Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			infos = append(infos, ei)
		}
	}
	if reason == "" {
		if len(infos) != 0 {
			tb.Fatalf("denial carries ErrorInfo %v, want none (status %v)", infos, err)
		}
		return
	}
	if len(infos) != 1 || infos[0].GetReason() != reason || infos[0].GetDomain() != refusal.Domain {
		tb.Fatalf("ErrorInfo %v, want one with reason %s in domain %s (status %v)", infos, reason, refusal.Domain, err)
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
