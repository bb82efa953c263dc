package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	"mtlsbank/internal/dsn"
	"mtlsbank/internal/payments"
	"mtlsbank/internal/payments/pgstore"
	"mtlsbank/internal/payments/sqlitestore"
	"mtlsbank/internal/service"
	"mtlsbank/internal/telemetry"
	"mtlsbank/internal/tlsconfig"
)

// defaultPolicy is the demo policy of DESIGN.md, used when --policy is empty.
//
//go:embed policy.yaml
var defaultPolicy []byte

// app is the payments service as the shared runtime runs it. Setup fills payments.
type app struct {
	cfg   config
	hooks payments.Hooks
	// accountsDial is appended to the options of the connection to accounts (tests
	// pass an in-memory dialer).
	accountsDial []grpc.DialOption
	// revocation, if not nil, replaces the TLS source as the RevocationChecker of
	// pending payments (tests pass one over the CRL file).
	revocation payments.RevocationChecker

	payments *payments.Service
}

// service describes the payments service to the shared runtime, which checks the policy
// and the TLS files before it calls setup, so a broken one never touches the database.
func (a *app) service() service.Service {
	return service.Service{
		Name:          "payments",
		DefaultPolicy: defaultPolicy,
		Services:      []*grpc.ServiceDesc{&paymentsv1.PaymentsService_ServiceDesc},
		Setup:         a.setup,
		Migrate:       migrateStore,
	}
}

// migrateStore is the migration step (payments --migrate): the PostgreSQL schema and
// the grants of the runtime role; an SQLite file is migrated by opening it.
func migrateStore(ctx context.Context, db dsn.DB, runtimeRole string) (int, error) {
	if db.Engine == dsn.Postgres {
		return pgstore.Migrate(ctx, db.URL, runtimeRole)
	}
	s, err := sqlitestore.Open(ctx, db.Path)
	if err != nil {
		return 0, err
	}
	return s.SchemaVersion(), s.Close()
}

// openStore opens the payments store that --db names: an SQLite file (migrated here:
// the embedded default needs no setup), or a PostgreSQL database, which several
// payments processes may share and whose schema the migration step must have brought
// to this build's (the service never changes it). Errors show the URL redacted.
func openStore(ctx context.Context, env *service.Env, db string) (payments.Store, error) {
	d, err := dsn.Parse(db)
	if err != nil {
		return nil, fmt.Errorf("--db: %w", err)
	}
	switch d.Engine {
	case dsn.Postgres:
		s, err := pgstore.Open(ctx, d.URL, pgstore.WithoutMigrations())
		if errors.Is(err, pgstore.ErrSchemaBehind) {
			return nil, fmt.Errorf("open payments database %s: %w; run payments --migrate as the schema owner first", d, err)
		}
		if err != nil {
			return nil, fmt.Errorf("open payments database %s: %w", d, err)
		}
		env.WarnSchemaPrivileged(s.CanChangeSchema())
		return s, nil
	default:
		s, err := sqlitestore.Open(ctx, d.Path, sqlitestore.WithCommitObserver(env.Metrics.CommitObserver(telemetry.StorePayments)))
		if err != nil {
			return nil, fmt.Errorf("open payments database: %w", err)
		}
		return s, nil
	}
}

// setup opens the payments database and the one long-lived connection to accounts,
// registers PaymentsService, and runs the recovery of pending payments beside the
// server from the start, so that payments a previous process left PENDING are finished
// without waiting for their payers to retry. The connection authenticates with the
// runtime's TLS source, so a reloaded certificate is used towards accounts too.
func (a *app) setup(ctx context.Context, env *service.Env) error {
	store, err := openStore(ctx, env, env.Config.DB)
	if err != nil {
		return err
	}
	env.OnClose(store.Close)
	creds := tlsconfig.ClientCredentials(env.Source, a.cfg.AccountsServerName, tlsconfig.WithServerID(a.cfg.AccountsSPIFFEID))
	// The calls to accounts continue the trace of the payment that makes them.
	dial := append([]grpc.DialOption{env.Tracing.DialOption()}, a.accountsDial...)
	conn, err := payments.DialAccounts(a.cfg.AccountsAddr, creds, dial...)
	if err != nil {
		return err
	}
	env.OnClose(conn.Close) // runs before store.Close
	opts := []payments.Option{
		payments.WithCustomerLimits(a.cfg.CustomerLimits),
		payments.WithCustomerDailyLimits(a.cfg.CustomerDaily),
		payments.WithCallTimeout(a.cfg.CallTimeout),
		payments.WithRecoveryInterval(a.cfg.RecoveryInterval),
		payments.WithLogger(env.Logger),
		payments.WithHooks(a.hooks),
	}
	// The TLS source answers revocation by issuer and serial with the CRLs it reloads,
	// so a pending payment whose creator is revoked meanwhile is failed, not carried out.
	var rc payments.RevocationChecker = env.Source
	if a.revocation != nil {
		rc = a.revocation // tests: a checker they control
	}
	opts = append(opts, payments.WithRevocationChecker(rc))
	a.payments = payments.NewService(store, accountsv1.NewAccountsServiceClient(conn), opts...)
	paymentsv1.RegisterPaymentsServiceServer(env.Server, a.payments)
	env.Go(a.payments.RunRecovery)
	env.ReadinessCheck("store", store.Ping)
	// Not ready while accounts is unreachable: orders would only be recorded PENDING, so
	// a load balancer should prefer a payments instance that can finish them now.
	accountsHealth := healthpb.NewHealthClient(conn)
	env.ReadinessCheck("accounts", func(ctx context.Context) error {
		resp, err := accountsHealth.Check(ctx, &healthpb.HealthCheckRequest{Service: accountsv1.AccountsService_ServiceDesc.ServiceName})
		if err != nil {
			return fmt.Errorf("accounts unreachable: %w", err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("accounts is %s", resp.GetStatus())
		}
		return nil
	})
	env.Logger.Info("payments configured", "accounts", a.cfg.AccountsAddr,
		"accounts_spiffe_id", a.cfg.AccountsSPIFFEID.String(), "customer_limit", a.cfg.CustomerLimits.String(), "customer_daily_limit", a.cfg.CustomerDaily.String())
	return nil
}
