package main

import (
	"context"
	_ "embed"
	"fmt"

	"google.golang.org/grpc"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	"mtlsbank/internal/accounts"
	"mtlsbank/internal/ledger"
	"mtlsbank/internal/ledger/sqlitestore"
	"mtlsbank/internal/service"
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
	}
}

// setup opens the ledger on its database and registers AccountsService.
func setup(ctx context.Context, env *service.Env, opts []ledger.Option) error {
	store, err := sqlitestore.Open(ctx, env.Config.DB)
	if err != nil {
		return fmt.Errorf("open ledger database: %w", err)
	}
	env.OnClose(store.Close)
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
