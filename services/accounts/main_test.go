package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	identityv1 "mtlsbank/gen/bank/identity/v1"
	"mtlsbank/internal/auditlog"
	"mtlsbank/internal/auditlog/auditlogtest"
	"mtlsbank/internal/authz"
	"mtlsbank/internal/grpcserver"
	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/service"
	"mtlsbank/internal/svidsource"
	"mtlsbank/internal/tlsconfig"
)

var td = spiffeid.RequireTrustDomainFromString(identity.DefaultTrustDomain)

// fixture is a dev-like PKI written to files, and a config pointing at them.
type fixture struct {
	pki *pkitest.PKI
	cfg service.Config
}

func newFixture(tb testing.TB) fixture {
	tb.Helper()
	p := pkitest.New(tb)
	certPath, keyPath := p.WriteLeaf(tb, "accounts", p.Server(tb, "spiffe://bank.local/service/accounts"))
	cfg, err := parseConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Listen, cfg.MetricsListen, cfg.DB = "127.0.0.1:0", "127.0.0.1:0", filepath.Join(p.Dir, "accounts.db")
	cfg.Cert, cfg.Key, cfg.CA, cfg.CRL = certPath, keyPath, p.WriteBundle(tb), p.WriteCRL(tb, p.CRL(tb))
	cfg.AuditKey, _ = auditlogtest.WriteKeyPair(tb, p.Dir, "accounts")
	cfg.AuditFile = filepath.Join(tb.TempDir(), "accounts.audit.jsonl")
	cfg.AuditFlushInterval = 0 // reads' records are written at once: tests count them
	return fixture{pki: p, cfg: cfg.Config}
}

// auditRecords counts the call records in the audit file.
func (f fixture) auditRecords(tb testing.TB) int {
	tb.Helper()
	data, err := os.ReadFile(f.cfg.AuditFile)
	if err != nil {
		tb.Fatal(err)
	}
	return bytes.Count(data, []byte(`"type":"call"`))
}

// waitAuditRecords waits until the audit file holds n call records, and fails if it
// holds more.
func (f fixture) waitAuditRecords(tb testing.TB, n int) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for got := f.auditRecords(tb); got != n; got = f.auditRecords(tb) {
		if got > n || time.Now().After(deadline) {
			tb.Fatalf("%d audit records, want %d: one per call", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// serve starts the service over transport ("bufconn" or "tcp") and returns a dialer for
// client certificates and the server's log. Cleanup shuts it down and checks that the
// shutdown, closing the ledger included, went well.
func (f fixture) serve(tb testing.TB, transport string) (func(tb testing.TB, leaf *pki.Leaf) *grpc.ClientConn, *logBuffer) {
	tb.Helper()
	logs := &logBuffer{}
	rt, err := service.New(context.Background(), accountsService(), f.cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		tb.Fatalf("service.New: %v", err)
	}
	var (
		lis        net.Listener
		target     string
		serverName string
		dialOpts   []grpc.DialOption
	)
	switch transport {
	case "bufconn":
		bl := bufconn.Listen(1 << 20)
		lis, target, serverName = bl, "passthrough:///bufnet", "bufnet"
		dialOpts = append(dialOpts, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return bl.DialContext(ctx) }))
	case "tcp":
		if lis, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			tb.Fatal(err)
		}
		target, serverName = lis.Addr().String(), "localhost"
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Serve(ctx, lis, nil) }()
	tb.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			tb.Errorf("Serve: %v", err)
		}
	})
	accounts := spiffeid.RequireFromString("spiffe://bank.local/service/accounts")
	return func(tb testing.TB, leaf *pki.Leaf) *grpc.ClientConn {
		tb.Helper()
		src, err := tlsconfig.NewSource(td, leaf.TLSCertificate(), f.pki.Bundle)
		if err != nil {
			tb.Fatal(err)
		}
		creds := tlsconfig.ClientCredentials(src, serverName, tlsconfig.WithServerID(accounts))
		cc, err := grpc.NewClient(target, append(dialOpts, grpc.WithTransportCredentials(creds))...)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { cc.Close() })
		return cc
	}, logs
}

// call invokes one method with an empty request; streams are read to their first result.
type call func(ctx context.Context, cc *grpc.ClientConn) error

var methods = map[string]call{
	accountsv1.AccountsService_OpenAccount_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := accountsv1.NewAccountsServiceClient(cc).OpenAccount(ctx, &accountsv1.OpenAccountRequest{})
		return err
	},
	accountsv1.AccountsService_GetAccount_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := accountsv1.NewAccountsServiceClient(cc).GetAccount(ctx, &accountsv1.GetAccountRequest{})
		return err
	},
	accountsv1.AccountsService_ListAccounts_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := accountsv1.NewAccountsServiceClient(cc).ListAccounts(ctx, &accountsv1.ListAccountsRequest{})
		return err
	},
	accountsv1.AccountsService_Deposit_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := accountsv1.NewAccountsServiceClient(cc).Deposit(ctx, &accountsv1.DepositRequest{})
		return err
	},
	accountsv1.AccountsService_Withdraw_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := accountsv1.NewAccountsServiceClient(cc).Withdraw(ctx, &accountsv1.WithdrawRequest{})
		return err
	},
	accountsv1.AccountsService_Transfer_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := accountsv1.NewAccountsServiceClient(cc).Transfer(ctx, &accountsv1.TransferRequest{})
		return err
	},
	accountsv1.AccountsService_WatchLedger_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		s, err := accountsv1.NewAccountsServiceClient(cc).WatchLedger(ctx, &accountsv1.WatchLedgerRequest{})
		if err != nil {
			return err
		}
		// An accepted stream sends its headers at once; a refused one ends with
		// trailers only, and Recv returns its status.
		if md, err := s.Header(); err == nil && md != nil {
			return nil
		}
		_, err = s.Recv()
		return err
	},
	accountsv1.AccountsService_ListTransactions_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := accountsv1.NewAccountsServiceClient(cc).ListTransactions(ctx, &accountsv1.ListTransactionsRequest{})
		return err
	},
	identityv1.IdentityService_WhoAmI_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := identityv1.NewIdentityServiceClient(cc).WhoAmI(ctx, &identityv1.WhoAmIRequest{})
		return err
	},
}

// allowedCode is what a call that passed authorization returns for the empty request
// the matrix sends: the ledger refuses the missing fields, which proves the call got
// past authorization to the handler.
func allowedCode(method string) codes.Code {
	switch method {
	case accountsv1.AccountsService_ListAccounts_FullMethodName, accountsv1.AccountsService_WatchLedger_FullMethodName,
		accountsv1.AccountsService_ListTransactions_FullMethodName, identityv1.IdentityService_WhoAmI_FullMethodName:
		return codes.OK
	}
	return codes.InvalidArgument
}

// TestRoleMatrix: every role of the demo policy against every method, over bufconn and
// loopback TCP, with real mTLS.
func TestRoleMatrix(t *testing.T) {
	const (
		open, get, list         = accountsv1.AccountsService_OpenAccount_FullMethodName, accountsv1.AccountsService_GetAccount_FullMethodName, accountsv1.AccountsService_ListAccounts_FullMethodName
		deposit, withdraw       = accountsv1.AccountsService_Deposit_FullMethodName, accountsv1.AccountsService_Withdraw_FullMethodName
		transfer, watch, whoami = accountsv1.AccountsService_Transfer_FullMethodName, accountsv1.AccountsService_WatchLedger_FullMethodName, identityv1.IdentityService_WhoAmI_FullMethodName
		transactions            = accountsv1.AccountsService_ListTransactions_FullMethodName
	)
	roles := []struct {
		name       string
		spiffeID   string
		onBehalfOf string
		allowed    []string
	}{
		{name: "teller", spiffeID: "spiffe://bank.local/teller/tina", allowed: []string{open, get, list, deposit, withdraw, whoami}},
		{name: "alice", spiffeID: "spiffe://bank.local/customer/alice", allowed: []string{get, list, whoami}},
		{name: "bob", spiffeID: "spiffe://bank.local/customer/bob", allowed: []string{get, list, whoami}},
		{name: "auditor", spiffeID: "spiffe://bank.local/auditor/audrey", allowed: []string{get, list, watch, transactions, whoami}},
		{name: "intern", spiffeID: "spiffe://bank.local/intern/ivan", allowed: []string{whoami}},
		{name: "payments-service", spiffeID: "spiffe://bank.local/service/payments", allowed: []string{transfer, whoami}},
		// On behalf of alice only what alice's on_behalf rule lists: WhoAmI is granted to
		// payments by a role that may not delegate.
		{name: "payments-service on behalf of alice", spiffeID: "spiffe://bank.local/service/payments", onBehalfOf: "spiffe://bank.local/customer/alice", allowed: []string{transfer}},
		{name: "alice naming bob as on-behalf-of", spiffeID: "spiffe://bank.local/customer/alice", onBehalfOf: "spiffe://bank.local/customer/bob"},
	}
	f := newFixture(t)
	for _, transport := range []string{"bufconn", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			connect, _ := f.serve(t, transport)
			for _, r := range roles {
				cc := connect(t, f.pki.Client(t, r.spiffeID))
				ctx := context.Background()
				if r.onBehalfOf != "" {
					ctx = metadata.AppendToOutgoingContext(ctx, authz.OnBehalfOfKey, r.onBehalfOf)
				}
				for method, invoke := range methods {
					t.Run(r.name+method, func(t *testing.T) {
						want := codes.PermissionDenied
						allowed := contains(r.allowed, method)
						if allowed {
							want = allowedCode(method)
						}
						audits := f.auditRecords(t)
						err := invoke(ctx, cc)
						if got := status.Code(err); got != want {
							t.Fatalf("%s: %v, want %v", method, err, want)
						}
						f.waitAuditRecords(t, audits+1)
						if !allowed && status.Convert(err).Message() != "permission denied" {
							t.Errorf("denial message %q is not the generic one", status.Convert(err).Message())
						}
					})
				}
			}
		})
	}
}

func TestWhoAmI(t *testing.T) {
	f := newFixture(t)
	connect, _ := f.serve(t, "bufconn")
	alice := f.pki.Client(t, "spiffe://bank.local/customer/alice")
	resp, err := identityv1.NewIdentityServiceClient(connect(t, alice)).WhoAmI(context.Background(), &identityv1.WhoAmIRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetSpiffeId() != "spiffe://bank.local/customer/alice" || strings.Join(resp.GetRoles(), ",") != "customer" || resp.GetSerial() != pki.SerialHex(alice.Cert.SerialNumber) {
		t.Fatalf("WhoAmI = %v", resp)
	}
	payments := identityv1.NewIdentityServiceClient(connect(t, f.pki.Server(t, "spiffe://bank.local/service/payments")))
	resp, err = payments.WhoAmI(context.Background(), &identityv1.WhoAmIRequest{})
	if err != nil || resp.GetOnBehalfOf() != "" || strings.Join(resp.GetRoles(), ",") != "payments-service" {
		t.Fatalf("WhoAmI for payments = %v, %v", resp, err)
	}
	// Delegation covers only what the end user's on_behalf rule lists (Transfer).
	ctx := metadata.AppendToOutgoingContext(context.Background(), authz.OnBehalfOfKey, "spiffe://bank.local/customer/alice")
	if _, err := payments.WhoAmI(ctx, &identityv1.WhoAmIRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("WhoAmI for payments on behalf of alice: %v, want PermissionDenied", err)
	}
}

func TestNewServerRefuses(t *testing.T) {
	f := newFixture(t)
	writePolicy := func(tb testing.TB, content string) string {
		path := filepath.Join(tb.TempDir(), "policy.yaml")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			tb.Fatal(err)
		}
		return path
	}
	withoutWatch := strings.Replace(string(defaultPolicy), "      - /bank.accounts.v1.AccountsService/WatchLedger\n", "", 1)
	malformed := strings.Replace(string(defaultPolicy), "scope: own\n    methods:", "scope: own\n    method:", 1)
	badLine := strings.Count(malformed[:strings.Index(malformed, "    method:")], "\n") + 1
	// The default policy as it was before on_behalf rules: payments may delegate Transfer,
	// and no end user's role lets it.
	beforeOnBehalf := regexp.MustCompile(`(?m)^    on_behalf:\n(?:      .*\n)+`).ReplaceAllString(string(defaultPolicy), "")
	tests := []struct {
		name string
		edit func(tb testing.TB, cfg *service.Config)
		want []string
	}{
		{name: "uncovered method", edit: func(tb testing.TB, cfg *service.Config) { cfg.Policy = writePolicy(tb, withoutWatch) },
			want: []string{"methods without a policy rule", "/bank.accounts.v1.AccountsService/WatchLedger"}},
		{name: "delegation no end user's role grants", edit: func(tb testing.TB, cfg *service.Config) { cfg.Policy = writePolicy(tb, beforeOnBehalf) },
			want: []string{"methods a role may delegate but no role grants on_behalf", "/bank.accounts.v1.AccountsService/Transfer"}},
		{name: "malformed policy", edit: func(tb testing.TB, cfg *service.Config) { cfg.Policy = writePolicy(tb, malformed) },
			want: []string{fmt.Sprintf("policy.yaml:%d: unknown field method", badLine)}},
		{name: "missing policy file", edit: func(tb testing.TB, cfg *service.Config) { cfg.Policy = filepath.Join(tb.TempDir(), "nope.yaml") },
			want: []string{"nope.yaml"}},
		{name: "missing key", edit: func(tb testing.TB, cfg *service.Config) { cfg.Key = filepath.Join(tb.TempDir(), "nope.key") },
			want: []string{"nope.key", "no such file"}},
		{name: "garbage CRL", edit: func(tb testing.TB, cfg *service.Config) { cfg.CRL = cfg.Key }, want: []string{"CRL", "PRIVATE KEY"}},
		{name: "invalid limit", edit: func(tb testing.TB, cfg *service.Config) { cfg.RateBurst = 0 }, want: []string{"--rate-burst 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := f.cfg
			tt.edit(t, &cfg)
			_, err := service.New(context.Background(), accountsService(), cfg, slog.New(slog.DiscardHandler))
			if err == nil {
				t.Fatal("service.New succeeded")
			}
			if _, err := os.Stat(cfg.DB); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused start touched the database %s: %v", cfg.DB, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseConfig(t *testing.T) {
	payments := spiffeid.RequireFromString("spiffe://bank.local/service/payments")
	defaults := service.Config{
		Listen: "localhost:50051", MetricsListen: "localhost:9091", DB: "data/accounts.db",
		Cert: "certs/dev/accounts.crt", Key: "certs/dev/accounts.key", CA: "certs/dev/ca.crt", CRL: "certs/dev/crl.pem",
		Intermediates: "certs/dev/intermediates.crt", CRLMaxStaleness: 6 * time.Hour, CRLRequireAll: true,
		ReloadInterval: 2 * time.Second, HandshakeTimeout: grpcserver.DefaultConnectionTimeout,
		MaxConnectionAge: 30 * time.Minute, MaxConnectionAgeGrace: time.Minute,
		MaxRecvMsgSize: grpcserver.DefaultMaxRecvMsgSize, MaxConcurrentStreams: grpcserver.DefaultMaxConcurrentStreams, KeepaliveMinTime: 30 * time.Second,
		RateLimit: 20, RateBurst: 40, RateLimitExempt: service.IDList{payments},
		DefaultDeadline: 30 * time.Second, ExpiryWarning: 168 * time.Hour, ShutdownGrace: 10 * time.Second,
		MaxConnections: grpcserver.DefaultMaxConnections, MaxConnectionsPerSource: grpcserver.DefaultMaxConnectionsPerSource,
		MaxHandshaking: grpcserver.DefaultMaxHandshaking, MaxHandshakingPerSource: grpcserver.DefaultMaxHandshakingPerSource,
		MaxStreamsPerIdentity: grpcserver.DefaultMaxStreamsPerIdentity, MaxStreams: grpcserver.DefaultMaxStreams,
		SPIFFEStartTimeout: svidsource.DefaultStartTimeout,
		AuditKey:           "certs/dev/accounts-audit.key", AuditFlushInterval: auditlog.DefaultFlushInterval,
		AuditCheckpointInterval: auditlog.DefaultCheckpointInterval, AuditMaxFileSize: auditlog.DefaultMaxFileSize,
	}
	with := func(edit func(c *service.Config)) service.Config {
		c := defaults
		c.RateLimitExempt = slices.Clone(defaults.RateLimitExempt)
		edit(&c)
		return c
	}
	env := map[string]string{"BANK_LISTEN": "0.0.0.0:7000", "BANK_POLICY": "env.yaml", "BANK_RATE_LIMIT": "5", "BANK_MAX_RECV_MSG_SIZE": "512KiB"}
	getenv := func(k string) string { return env[k] }
	noEnv := func(string) string { return "" }
	tests := []struct {
		name    string
		args    []string
		getenv  func(string) string
		want    service.Config
		wantErr string
	}{
		{name: "defaults", getenv: noEnv, want: defaults},
		{name: "env then flags", args: []string{"--policy", "flag.yaml", "--crl", "", "--rate-limit-exempt", ""}, getenv: getenv, want: with(func(c *service.Config) {
			c.Listen, c.Policy, c.CRL, c.RateLimit, c.MaxRecvMsgSize, c.RateLimitExempt = "0.0.0.0:7000", "flag.yaml", "", 5, 512<<10, nil
		})},
		{name: "hardening flags", getenv: noEnv, args: []string{"--handshake-timeout=300ms", "--max-recv-msg-size=1MiB", "--max-concurrent-streams=8",
			"--rate-limit=0", "--default-deadline=0", "--reload-interval=0", "--max-connection-age=0"}, want: with(func(c *service.Config) {
			c.HandshakeTimeout, c.MaxRecvMsgSize, c.MaxConcurrentStreams, c.RateLimit, c.DefaultDeadline, c.ReloadInterval, c.MaxConnectionAge = 300*time.Millisecond, 1<<20, 8, 0, 0, 0, 0
		})},
		{name: "Workload API", getenv: func(k string) string { return map[string]string{"SPIFFE_ENDPOINT_SOCKET": "unix:///run/agent.sock"}[k] },
			want: with(func(c *service.Config) {
				c.SPIFFEEndpoint, c.Cert, c.Key, c.CA, c.Intermediates, c.CRL = "unix:///run/agent.sock", "", "", "", "", ""
			})},
		{name: "Workload API and a certificate", args: []string{"--spiffe-endpoint", "unix:///run/agent.sock", "--ca", "ca.crt"}, getenv: noEnv,
			wantErr: "two sources of the certificate"},
		{name: "empty required", args: []string{"--cert="}, getenv: getenv, wantErr: "--cert must not be empty"},
		{name: "stray argument", args: []string{"serve"}, getenv: getenv, wantErr: "unexpected arguments: serve"},
		{name: "unknown flag", args: []string{"--nope"}, getenv: getenv, wantErr: "flag provided but not defined"},
		{name: "bad env value", getenv: func(k string) string { return map[string]string{"BANK_RATE_BURST": "many"}[k] }, wantErr: `BANK_RATE_BURST="many"`},
		{name: "bad exempt id", args: []string{"--rate-limit-exempt", "payments"}, getenv: noEnv, wantErr: `SPIFFE ID "payments"`},
		{name: "bad size", args: []string{"--max-recv-msg-size", "4GB"}, getenv: noEnv, wantErr: `size "4GB"`},
		{name: "zero handshake timeout", args: []string{"--handshake-timeout=0"}, getenv: noEnv, wantErr: "--handshake-timeout 0s must be positive"},
		{name: "negative deadline", args: []string{"--default-deadline=-1s"}, getenv: noEnv, wantErr: "--default-deadline -1s must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig(tt.args, tt.getenv, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseConfig error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got.Config, tt.want) {
				t.Fatalf("parseConfig = %+v, %v;\nwant %+v", got, err, tt.want)
			}
		})
	}
}

// TestRunShutsDownOnSignal: run serves until its context ends, then drains and returns nil.
func TestRunShutsDownOnSignal(t *testing.T) {
	f := newFixture(t)
	args := []string{"--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--db", f.cfg.DB, "--cert", f.cfg.Cert, "--key", f.cfg.Key, "--ca", f.cfg.CA, "--crl", f.cfg.CRL, "--audit-key", f.cfg.AuditKey}
	logs := &logBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, func(string) string { return "" }, io.Discard, slog.New(slog.NewJSONHandler(logs, nil)))
	}()
	deadline := time.Now().Add(10 * time.Second)
	for logs.count(`"msg":"accounts serving"`) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the service did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The probes answer on the metrics address, the store check included.
	metricsAddr := logs.field(t, "accounts serving", "metrics_addr")
	resp, err := http.Get("http://" + metricsAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
		t.Errorf("/readyz = %d %q, want 200 ok", resp.StatusCode, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run() = %v, want nil after a graceful shutdown", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// logBuffer is a goroutine-safe log sink.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// field returns the string attribute key of the first JSON record whose message is msg.
func (l *logBuffer) field(tb testing.TB, msg, key string) string {
	tb.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for line := range strings.Lines(l.buf.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err == nil && rec["msg"] == msg {
			if v, ok := rec[key].(string); ok {
				return v
			}
		}
	}
	tb.Fatalf("no %q record with %s", msg, key)
	return ""
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), sub)
}
