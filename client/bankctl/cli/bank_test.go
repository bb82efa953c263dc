package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	identityv1 "mtlsbank/gen/bank/identity/v1"
	typev1 "mtlsbank/gen/bank/type/v1"
	"mtlsbank/internal/authz"
	"mtlsbank/internal/grpcserver"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/refusal"
	"mtlsbank/internal/tlsconfig"
	"mtlsbank/internal/whoami"
)

// testPolicy is a small policy in the shape of the services' own.
const testPolicy = `trust_domain: bank.local
identities:
  - name: tellers
    match: { spiffe_id_prefix: "spiffe://bank.local/teller/" }
    roles: [teller]
  - name: customers
    match: { spiffe_id_prefix: "spiffe://bank.local/customer/" }
    roles: [customer]
roles:
  teller:
    scope: any
    methods: ["/bank.accounts.v1.AccountsService/*"]
  customer:
    scope: own
    methods: ["/bank.accounts.v1.AccountsService/GetAccount", "/bank.accounts.v1.AccountsService/ListAccounts"]
  authenticated:
    methods:
      - /bank.identity.v1.IdentityService/WhoAmI
      - /grpc.health.v1.Health/*
      - /grpc.reflection.v1.ServerReflection/*
      - /grpc.reflection.v1alpha.ServerReflection/*
`

// fixtures is a directory laid out like certs/dev: ca.crt, crl.pem and NAME.crt/NAME.key
// for good and bad identities, all made at test time.
type fixtures struct {
	pki    *pkitest.PKI
	dir    string
	bundle []*x509.Certificate
	crl    *tlsconfig.CRL
	server *pki.Leaf
}

// newFixtures writes the identities the tests call as. The CRL lists "revoked".
func newFixtures(tb testing.TB) *fixtures {
	tb.Helper()
	p := pkitest.New(tb)
	now := time.Now()
	f := &fixtures{pki: p, dir: p.Dir, bundle: []*x509.Certificate{p.Root.Cert, p.Intermediate.Cert}}
	if err := os.WriteFile(filepath.Join(f.dir, "ca.crt"), pki.EncodeCertsPEM(f.bundle...), 0o644); err != nil {
		tb.Fatal(err)
	}
	f.server = p.Server(tb, "spiffe://bank.local/service/accounts")

	p.WriteLeaf(tb, "alice", p.Client(tb, "spiffe://bank.local/customer/alice"))
	teller := p.Client(tb, "spiffe://bank.local/teller/tina")
	p.WriteLeaf(tb, "teller", teller)
	p.WriteLeaf(tb, "expired", p.Client(tb, "spiffe://bank.local/customer/old", pki.WithValidity(now.Add(-48*time.Hour), now.Add(-24*time.Hour))))
	p.WriteLeaf(tb, "notyet", p.Client(tb, "spiffe://bank.local/customer/new", pki.WithValidity(now.Add(24*time.Hour), now.Add(48*time.Hour))))
	p.WriteLeaf(tb, "serveronly", p.Issue(tb, pki.Request{CommonName: "serveronly", SPIFFEIDs: []string{"spiffe://bank.local/customer/so"}, Usage: pki.ServerAuth}))
	p.WriteLeaf(tb, "cacert", p.Issue(tb, pki.Request{CommonName: "cacert", SPIFFEIDs: []string{"spiffe://bank.local/customer/ca"}, Usage: pki.ClientAuth, IsCA: true}))
	p.WriteLeaf(tb, "nospiffe", p.Issue(tb, pki.Request{CommonName: "nospiffe", Usage: pki.ClientAuth}))
	p.WriteLeaf(tb, "otherdomain", p.Client(tb, "spiffe://other.example/customer/eve"))
	// A serial of an odd number of hex digits: bankctl must print it as openssl does, 0ABC.
	revoked := p.Client(tb, "spiffe://bank.local/customer/rita", pki.WithSerial(big.NewInt(0xabc)))
	p.WriteLeaf(tb, "revoked", revoked)
	crlPEM := p.CRL(tb, revoked.Cert)
	p.WriteCRL(tb, crlPEM)
	crl, err := tlsconfig.ParseCRL(crlPEM, f.bundle)
	if err != nil {
		tb.Fatal(err)
	}
	f.crl = crl

	rogue := pkitest.New(tb).Client(tb, "spiffe://bank.local/customer/mallory")
	p.WriteLeaf(tb, "rogue", rogue)
	self, err := pki.SelfSigned(pki.Request{CommonName: "selfie", SPIFFEIDs: []string{"spiffe://bank.local/customer/selfie"}, Usage: pki.ClientAuth}, pki.WithTTL(time.Hour))
	if err != nil {
		tb.Fatal(err)
	}
	p.WriteLeaf(tb, "selfsigned", self)

	// A certificate paired with another identity's key.
	aliceCert, err := os.ReadFile(filepath.Join(f.dir, "alice.crt"))
	if err != nil {
		tb.Fatal(err)
	}
	tellerKey, err := pki.EncodeKeyPEM(teller.Key)
	if err != nil {
		tb.Fatal(err)
	}
	writeFile(tb, filepath.Join(f.dir, "mismatch.crt"), aliceCert)
	writeFile(tb, filepath.Join(f.dir, "mismatch.key"), tellerKey)
	return f
}

func writeFile(tb testing.TB, path string, data []byte) {
	tb.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
}

// startBank serves IdentityService and AccountsService the way the services do: the
// bank's TLS credentials (CRL included), the authorization interceptor with testPolicy,
// health and reflection. Behind them, ledgerDouble answers from the request alone.
func startBank(tb testing.TB, f *fixtures) string {
	tb.Helper()
	return startBankAs(tb, f, f.server)
}

// startBankAs is startBank presenting the server certificate server.
func startBankAs(tb testing.TB, f *fixtures, server *pki.Leaf) string {
	tb.Helper()
	src, err := tlsconfig.NewSource(spiffeid.RequireTrustDomainFromString("bank.local"), server.TLSCertificate(), f.bundle, tlsconfig.WithCRL(f.crl))
	if err != nil {
		tb.Fatal(err)
	}
	policy, err := authz.ParsePolicy("test-policy.yaml", []byte(testPolicy))
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := grpcserver.New(src, policy, nil)
	if err != nil {
		tb.Fatal(err)
	}
	identityv1.RegisterIdentityServiceServer(srv, whoami.New())
	accountsv1.RegisterAccountsServiceServer(srv, ledgerDouble{})
	return serve(tb, func(lis net.Listener) error { return srv.Serve(lis) }, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
}

// ledgerDouble answers the AccountsService calls of the CLI tests from the request alone,
// so that a test sees exactly what bankctl put on the wire. The real service is exercised
// by the end-to-end test in client/e2e.
type ledgerDouble struct {
	accountsv1.UnimplementedAccountsServiceServer
}

const aliceAccount = "acc_0000000000000000000000a1ce"

func (ledgerDouble) GetAccount(_ context.Context, req *accountsv1.GetAccountRequest) (*accountsv1.GetAccountResponse, error) {
	if req.GetId() != aliceAccount {
		return nil, status.Errorf(codes.NotFound, "account %q not found", req.GetId())
	}
	return &accountsv1.GetAccountResponse{Account: &accountsv1.Account{
		Id: aliceAccount, Owner: "spiffe://bank.local/customer/alice", Currency: "EUR", DisplayName: "Alice current",
		Balance: &typev1.Money{CurrencyCode: "EUR", MinorUnits: 2500},
	}}, nil
}

func (ledgerDouble) Deposit(_ context.Context, req *accountsv1.DepositRequest) (*accountsv1.DepositResponse, error) {
	return &accountsv1.DepositResponse{Transaction: &accountsv1.Transaction{
		Id: "txn_1", Kind: accountsv1.TransactionKind_TRANSACTION_KIND_DEPOSIT, Amount: req.GetAmount(),
		Reference: req.GetReference(), IdempotencyKey: req.GetIdempotencyKey(),
		Entries: []*accountsv1.LedgerEntry{{Sequence: 1, TransactionId: "txn_1", AccountId: req.GetAccountId(), Amount: req.GetAmount(), BalanceAfter: req.GetAmount()}},
	}}, nil
}

// WatchLedger sends three entries after req.AfterSequence, then waits for the caller to go.
// poorAccount is the account a withdrawal from is refused for insufficient funds.
const poorAccount = "acc_00000000000000000000009e0b"

// Withdraw refuses a withdrawal from poorAccount as the real service refuses an
// overdraft, with an ErrorInfo of reason INSUFFICIENT_FUNDS, so that the diagnosis from
// the reason is exercised over the wire; it serves no other account, as if it did not
// implement the method.
func (d ledgerDouble) Withdraw(ctx context.Context, req *accountsv1.WithdrawRequest) (*accountsv1.WithdrawResponse, error) {
	if req.GetAccountId() != poorAccount {
		return d.UnimplementedAccountsServiceServer.Withdraw(ctx, req)
	}
	return nil, refusal.WithErrorInfo(status.Newf(codes.FailedPrecondition, "account_id: insufficient funds: account %s cannot pay it", req.GetAccountId()),
		refusal.InsufficientFunds, map[string]string{"field": "account_id"})
}

func (ledgerDouble) WatchLedger(req *accountsv1.WatchLedgerRequest, stream grpc.ServerStreamingServer[accountsv1.WatchLedgerResponse]) error {
	for i := int64(1); i <= 3; i++ {
		seq := req.GetAfterSequence() + i
		entry := &accountsv1.LedgerEntry{Sequence: seq, TransactionId: fmt.Sprintf("txn_%d", seq), AccountId: aliceAccount,
			Amount: &typev1.Money{CurrencyCode: "EUR", MinorUnits: -5}, BalanceAfter: &typev1.Money{CurrencyCode: "EUR", MinorUnits: 100 - 5*seq}}
		if err := stream.Send(&accountsv1.WatchLedgerResponse{Entry: entry}); err != nil {
			return err
		}
	}
	<-stream.Context().Done()
	return nil
}

// startPlainTLSBank is a server that checks the chain with crypto/tls alone and leaves
// identity to the authorization interceptor, so that a certificate without a usable
// bank identity gets as far as Unauthenticated.
func startPlainTLSBank(tb testing.TB, f *fixtures) string {
	tb.Helper()
	return startPlainTLSBankAs(tb, f, f.server)
}

// startPlainTLSBankAs is startPlainTLSBank presenting the server certificate server, which
// need not carry a SPIFFE ID.
func startPlainTLSBankAs(tb testing.TB, f *fixtures, server *pki.Leaf) string {
	tb.Helper()
	policy, err := authz.ParsePolicy("test-policy.yaml", []byte(testPolicy))
	if err != nil {
		tb.Fatal(err)
	}
	az := authz.NewAuthorizer(policy, nil)
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pki.NewCertPool(f.bundle...),
		Certificates: []tls.Certificate{server.TLSCertificate()},
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)), grpc.ChainUnaryInterceptor(az.UnaryServerInterceptor()))
	identityv1.RegisterIdentityServiceServer(srv, whoami.New())
	return serve(tb, srv.Serve, srv.Stop)
}

// serve runs serveFn on a fresh loopback listener until the test ends.
func serve(tb testing.TB, serveFn func(net.Listener) error, stop func()) string {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serveFn(lis) }()
	tb.Cleanup(func() {
		stop()
		if err := <-done; err != nil && err != grpc.ErrServerStopped {
			tb.Errorf("serve: %v", err)
		}
	})
	return lis.Addr().String()
}

// startSilent accepts connections and never answers: a server that hangs.
func startSilent(tb testing.TB) string {
	tb.Helper()
	return startRaw(tb, func(c net.Conn) {
		// Hold the connection until the client gives up.
		_, _ = c.Read(make([]byte, 1<<16))
		_, _ = c.Read(make([]byte, 1<<16))
	})
}

// startRaw serves each connection with handle, then closes it.
func startRaw(tb testing.TB, handle func(net.Conn)) string {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	tb.Cleanup(func() {
		lis.Close()
		<-done
	})
	return lis.Addr().String()
}

// closedAddr returns a loopback address where nothing listens.
func closedAddr(tb testing.TB) string {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// result is what one bankctl run printed and returned.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs bankctl in-process with env as its whole environment.
func runCLI(tb testing.TB, env map[string]string, args ...string) result {
	tb.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := Run(ctx, args, &stdout, &stderr, func(k string) string { return env[k] })
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// jsonError decodes the error that --output json prints on stderr.
func jsonError(tb testing.TB, r result) errorJSON {
	tb.Helper()
	var e errorJSON
	if err := json.Unmarshal([]byte(strings.TrimSpace(r.stderr)), &e); err != nil {
		tb.Fatalf("stderr is not one JSON error: %v\n%s", err, r.stderr)
	}
	return e
}
