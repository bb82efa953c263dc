package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	identityv1 "mtlsbank/gen/bank/identity/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	"mtlsbank/internal/accounts"
	"mtlsbank/internal/auditlog"
	"mtlsbank/internal/authz"
	"mtlsbank/internal/identity"
	"mtlsbank/internal/ledger"
	"mtlsbank/internal/ledger/sqlitestore"
	"mtlsbank/internal/payments"
	paymentsstore "mtlsbank/internal/payments/sqlitestore"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/service"
	"mtlsbank/internal/tlsconfig"
	"mtlsbank/internal/whoami"
)

// accountsLedgerOptions are the ledger options of services/accounts on SQLite.
func accountsLedgerOptions() []ledger.Option {
	return []ledger.Option{ledger.WithAccountCache(ledger.DefaultAccountCache)}
}

// running is a server serving on a loopback port until stop.
type running struct {
	addr        string
	metricsAddr string            // of /metrics; empty without a metrics listener
	src         *tlsconfig.Source // the TLS material it serves with
	stop        func() error
}

// bareServer is the baseline: grpc-go with the bank's server credentials (the same
// tlsconfig.ServerCredentials, so the same handshake and identity derivation) and no
// interceptor, no limits, no logs, answering from memory with the responses the real
// service gave, so both send the same bytes.
type bareServer struct {
	identityv1.UnimplementedIdentityServiceServer
	accountsv1.UnimplementedAccountsServiceServer
	whoami  *identityv1.WhoAmIResponse
	account *accountsv1.GetAccountResponse
}

func (s *bareServer) WhoAmI(context.Context, *identityv1.WhoAmIRequest) (*identityv1.WhoAmIResponse, error) {
	return s.whoami, nil
}

func (s *bareServer) GetAccount(context.Context, *accountsv1.GetAccountRequest) (*accountsv1.GetAccountResponse, error) {
	return s.account, nil
}

func startBare(src *tlsconfig.Source, whoami *identityv1.WhoAmIResponse, account *accountsv1.GetAccountResponse) (*running, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bare server: %w", err)
	}
	srv := grpc.NewServer(grpc.Creds(tlsconfig.ServerCredentials(src)))
	impl := &bareServer{
		whoami:  proto.CloneOf(whoami),
		account: proto.CloneOf(account),
	}
	identityv1.RegisterIdentityServiceServer(srv, impl)
	accountsv1.RegisterAccountsServiceServer(srv, impl)
	return serveGRPC(srv, lis, "bare server", src), nil
}

// serviceConfig is a bank service's production configuration (every flag at its default)
// with files in dir, the given TLS files, and no rate limit: the load comes from one
// identity at a rate far beyond a per-client limit, which is not what is measured.
func serviceConfig(name, dir, policy string, files tlsconfig.Files) (service.Config, error) {
	var cfg service.Config
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.RegisterFlags(fs, service.Defaults{Name: name, Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0"})
	if err := fs.Parse(nil); err != nil {
		return service.Config{}, err
	}
	cfg.DB = filepath.Join(dir, name+".db")
	cfg.Cert, cfg.Key, cfg.CA, cfg.CRL = files.Cert, files.Key, files.CA, files.CRL
	cfg.Intermediates = "" // the leaves send theirs; never the dev PKI's default file
	cfg.Policy = policy
	cfg.RateLimit = 0
	cfg.ExpiryWarning = 0 // the certificates live for the run only, on purpose
	// The audit trail at its production defaults, signed with a key of the run.
	cfg.AuditKey = filepath.Join(dir, name+"-audit.key")
	if _, err := os.Stat(cfg.AuditKey); errors.Is(err, os.ErrNotExist) {
		if err := auditlog.WriteKeyPair(cfg.AuditKey, filepath.Join(dir, name+"-audit.pub")); err != nil {
			return service.Config{}, err
		}
	}
	return cfg, cfg.Validate()
}

// serve runs rt on a loopback port until the returned stop, with the HTTP probes and
// /metrics on another one if metrics (the loads run without: its cost is the scrape, not
// the calls; the flood reads its refusal counts there).
func serve(ctx context.Context, rt *service.Runtime, metrics bool) (*running, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, errors.Join(err, rt.Close())
	}
	r := &running{addr: lis.Addr().String()}
	var metricsLis net.Listener
	if metrics {
		if metricsLis, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, errors.Join(err, lis.Close(), rt.Close())
		}
		r.metricsAddr = metricsLis.Addr().String()
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- rt.Serve(ctx, lis, metricsLis) }()
	r.stop = func() error {
		cancel()
		return <-done
	}
	return r, nil
}

// sharedLedger is a ledger that several servers of the harness serve: the real
// accounts service, the same service exporting its traces, and the bare handlers.
type sharedLedger struct {
	*ledger.Ledger
	close func() error
}

// openLedger opens the accounts ledger as services/accounts does on its embedded
// default: a SQLite file (WAL, synchronous=FULL, group commit), the only process that
// writes it, so with the account cache; opts are added (the harness's commit observer).
func openLedger(ctx context.Context, path string, opts ...ledger.Option) (*sharedLedger, error) {
	store, err := sqlitestore.Open(ctx, path, sqlitestore.WithExclusive())
	if err != nil {
		return nil, fmt.Errorf("open ledger database: %w", err)
	}
	l, err := ledger.New(store, append(accountsLedgerOptions(), opts...)...)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open ledger: %w", err), store.Close())
	}
	return &sharedLedger{Ledger: l, close: func() error { return errors.Join(l.Close(), store.Close()) }}, nil
}

// startAccounts runs the accounts service as services/accounts does: the shared service
// runtime (hardening, full interceptor chain, metrics, reload watcher, audit log) over
// shared, or without it over its own ledger on a SQLite file (WAL, synchronous=FULL,
// group commit) in dir, with policy, and with its /metrics listener if metrics; opts go
// to service.New.
func startAccounts(ctx context.Context, m *material, dir, policy string, logger *slog.Logger, metrics bool, shared *sharedLedger, opts ...service.Option) (*running, error) {
	leaf, err := m.server(accountsID)
	if err != nil {
		return nil, err
	}
	files, err := m.writeFiles(dir, "accounts", leaf)
	if err != nil {
		return nil, err
	}
	cfg, err := serviceConfig("accounts", dir, policy, files)
	if err != nil {
		return nil, err
	}
	svc := service.Service{
		Name:     "accounts",
		Services: []*grpc.ServiceDesc{&accountsv1.AccountsService_ServiceDesc},
		Setup: func(ctx context.Context, env *service.Env) error {
			l := shared
			if l == nil {
				var err error
				if l, err = openLedger(ctx, env.Config.DB); err != nil {
					return err
				}
				env.OnClose(l.close)
			}
			accounts.NewService(l.Ledger, env.Logger).Register(env.Server)
			return nil
		},
	}
	rt, err := service.New(ctx, svc, cfg, logger, opts...)
	if err != nil {
		return nil, fmt.Errorf("accounts service: %w", err)
	}
	r, err := serve(ctx, rt, metrics)
	if err != nil {
		return nil, err
	}
	r.src = rt.Source()
	return r, nil
}

// startHandlers serves the accounts service's own handlers (accounts.Service over l,
// and the IdentityService) with src's credentials, and nothing else: no interceptor
// chain, no stats handler, no limits, no logs. The handlers take the caller's
// authorization decision from the context, as the chain leaves it there; the one
// interceptor of this server puts there the decision computed once at start for caller
// and each method (an unknown method gets none, and the handler refuses the call).
// Against the real service, the difference is what the chain costs.
func startHandlers(src *tlsconfig.Source, l *ledger.Ledger, policy *authz.Policy, caller identity.Identity) (*running, error) {
	decisions := make(map[string]authz.Decision)
	for _, method := range []string{identityv1.IdentityService_WhoAmI_FullMethodName, accountsv1.AccountsService_GetAccount_FullMethodName} {
		d := policy.Decide(caller, method)
		if !d.Allowed {
			return nil, fmt.Errorf("no-chain server: the policy denies %s to %s: %s", method, caller.ID, d.Rule)
		}
		decisions[method] = d
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("no-chain server: %w", err)
	}
	srv := grpc.NewServer(grpc.Creds(tlsconfig.ServerCredentials(src)),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			if d, ok := decisions[info.FullMethod]; ok {
				ctx = authz.NewContext(ctx, d)
			}
			return handler(ctx, req)
		}))
	identityv1.RegisterIdentityServiceServer(srv, whoami.New())
	accounts.NewService(l, nil).Register(srv)
	return serveGRPC(srv, lis, "no-chain server", src), nil
}

// labelled runs start with the pprof label server=name, which every goroutine it starts
// inherits (the server's transport, its stream workers, its handlers), so that a CPU
// profile of the harness (-cpuprofile) splits by server: go tool pprof -tagfocus
// server=real (bare, "no chain", real, exporting).
func labelled(name string, start func() (*running, error)) (r *running, err error) {
	pprof.Do(context.Background(), pprof.Labels("server", name), func(context.Context) { r, err = start() })
	return r, err
}

// serveGRPC serves srv on lis until the returned server's stop.
func serveGRPC(srv *grpc.Server, lis net.Listener, name string, src *tlsconfig.Source) *running {
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	return &running{addr: lis.Addr().String(), src: src, stop: func() error {
		srv.Stop()
		if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}}
}

// startPayments runs the payments service as services/payments does, calling the accounts
// service at accountsAddr over mTLS with its own certificate; its store's and audit
// trail's group commits are counted in commits.
func startPayments(ctx context.Context, m *material, dir, policy, accountsAddr string, logger *slog.Logger, commits *commitTally) (*running, error) {
	leaf, err := m.server(paymentsID)
	if err != nil {
		return nil, err
	}
	files, err := m.writeFiles(dir, "payments", leaf)
	if err != nil {
		return nil, err
	}
	cfg, err := serviceConfig("payments", dir, policy, files)
	if err != nil {
		return nil, err
	}
	svc := service.Service{
		Name:     "payments",
		Services: []*grpc.ServiceDesc{&paymentsv1.PaymentsService_ServiceDesc},
		Setup: func(ctx context.Context, env *service.Env) error {
			store, err := paymentsstore.Open(ctx, env.Config.DB, paymentsstore.WithCommitObserver(commits.observer(commitsPayments)))
			if err != nil {
				return err
			}
			env.OnClose(store.Close)
			creds := tlsconfig.ClientCredentials(env.Source, "localhost", tlsconfig.WithServerID(spiffeid.RequireFromString(accountsID)))
			conn, err := payments.DialAccounts(accountsAddr, creds, env.Tracing.DialOption())
			if err != nil {
				return err
			}
			env.OnClose(conn.Close)
			svc := payments.NewService(store, accountsv1.NewAccountsServiceClient(conn), payments.WithLogger(env.Logger))
			paymentsv1.RegisterPaymentsServiceServer(env.Server, svc)
			env.Go(svc.RunRecovery)
			return nil
		},
	}
	rt, err := service.New(ctx, svc, cfg, logger, service.WithAuditOptions(auditlog.WithCommitObserver(commits.observer(commitsPaymentsAudit))))
	if err != nil {
		return nil, fmt.Errorf("payments service: %w", err)
	}
	return serve(ctx, rt, false)
}

// dial opens n client connections to addr as leaf, each its own HTTP/2 connection
// (grpc.NewClient shares nothing between ClientConns), checking the server's SPIFFE ID.
func dial(m *material, leaf *pki.Leaf, addr, serverID string, n int) (conns []*grpc.ClientConn, err error) {
	src, err := m.source(leaf)
	if err != nil {
		return nil, err
	}
	creds := tlsconfig.ClientCredentials(src, "localhost", tlsconfig.WithServerID(spiffeid.RequireFromString(serverID)))
	defer func() {
		if err != nil {
			closeAll(conns)
		}
	}()
	for range n {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			return conns, fmt.Errorf("dial %s: %w", addr, err)
		}
		conns = append(conns, cc)
	}
	return conns, nil
}

func closeAll(conns []*grpc.ClientConn) {
	for _, cc := range conns {
		cc.Close()
	}
}
