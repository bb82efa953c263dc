package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"

	"google.golang.org/grpc"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	"mtlsbank/internal/accounts"
	"mtlsbank/internal/dsn"
	"mtlsbank/internal/ledger"
	"mtlsbank/internal/ledger/pgstore"
	"mtlsbank/internal/ledger/sqlitestore"
	"mtlsbank/internal/service"
	"mtlsbank/internal/telemetry"
)

// defaultPolicy is the demo policy of DESIGN.md, used when --policy is empty.
//
//go:embed policy.yaml
var defaultPolicy []byte

// accountsService describes the service to the shared runtime, with the ledger built
// with opts. The runtime checks the policy and the TLS files before it calls setup, so
// a broken one never touches the database.
func accountsService(opts ...ledger.Option) service.Service {
	return service.Service{
		Name:          "accounts",
		DefaultPolicy: defaultPolicy,
		Services:      []*grpc.ServiceDesc{&accountsv1.AccountsService_ServiceDesc},
		Setup: func(ctx context.Context, env *service.Env) error {
			return setup(ctx, env, opts)
		},
		Migrate: migrateStore,
	}
}

// migrateStore is the migration step (accounts --migrate): the PostgreSQL schema,
// and the grants of the runtime role; an SQLite file is migrated by opening it.
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

// store is a ledger store the service closes on shutdown.
type store interface {
	ledger.Store
	Close() error
}

// openStore opens the ledger store that --db names: an SQLite file (migrated
// here: the embedded default needs no setup), or a PostgreSQL database, whose
// schema the migration step must have brought to this build's (the service
// never changes it). Errors show the URL redacted.
func openStore(ctx context.Context, env *service.Env, db string) (store, error) {
	d, err := dsn.Parse(db)
	if err != nil {
		return nil, fmt.Errorf("--db: %w", err)
	}
	switch d.Engine {
	case dsn.Postgres:
		s, err := pgstore.Open(ctx, d.URL, pgstore.WithoutMigrations())
		if errors.Is(err, pgstore.ErrSchemaBehind) {
			return nil, fmt.Errorf("open ledger database %s: %w; run accounts --migrate as the schema owner first", d, err)
		}
		if err != nil {
			return nil, fmt.Errorf("open ledger database %s: %w", d, err)
		}
		env.WarnSchemaPrivileged(s.CanChangeSchema())
		return s, nil
	default:
		// Held alone (one process per file), so that the ledger may cache accounts.
		s, err := sqlitestore.Open(ctx, d.Path, sqlitestore.WithExclusive())
		if err != nil {
			return nil, fmt.Errorf("open ledger database: %w", err)
		}
		return s, nil
	}
}

// setup opens the ledger on its database and registers AccountsService.
func setup(ctx context.Context, env *service.Env, opts []ledger.Option) error {
	store, err := openStore(ctx, env, env.Config.DB)
	if err != nil {
		return err
	}
	env.OnClose(store.Close)
	if sw, ok := store.(ledger.SoleWriter); ok && sw.SoleWriter() {
		// The embedded default: every write goes through this ledger, so GetAccount
		// (and the ownership checks of money-moving calls) can answer from memory. Never
		// with PostgreSQL, whose replicas each see only their own writes.
		opts = append([]ledger.Option{ledger.WithAccountCache(ledger.DefaultAccountCache)}, opts...)
	}
	opts = append([]ledger.Option{ledger.WithCommitObserver(env.Metrics.CommitObserver(telemetry.StoreLedger))}, opts...)
	l, err := ledger.New(store, opts...)
	if err != nil {
		return fmt.Errorf("open ledger: %w", err)
	}
	env.OnClose(l.Close) // runs before store.Close
	accounts.NewService(l, env.Logger).Register(env.Server)
	// Ready when the database answers a query (any indexed lookup will do).
	env.ReadinessCheck("store", func(ctx context.Context) error {
		return store.View(ctx, func(tx ledger.ReadTx) error {
			_, _, err := tx.SystemAccount(ctx, "XXX")
			return err
		})
	})
	return nil
}
