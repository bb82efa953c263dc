package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	identityv1 "mtlsbank/gen/bank/identity/v1"
	"mtlsbank/internal/accounts"
	"mtlsbank/internal/authz"
	"mtlsbank/internal/grpcserver"
	"mtlsbank/internal/ledger"
	"mtlsbank/internal/ledger/sqlitestore"
	"mtlsbank/internal/tlsconfig"
	"mtlsbank/internal/whoami"
)

// defaultPolicy is the demo policy of DESIGN.md, used when --policy is empty.
//
//go:embed policy.yaml
var defaultPolicy []byte

// loadPolicy returns the policy named by cfg, or the embedded default.
func loadPolicy(cfg config) (*authz.Policy, error) {
	if cfg.Policy == "" {
		return authz.ParsePolicy("embedded policy.yaml", defaultPolicy)
	}
	return authz.LoadPolicy(cfg.Policy)
}

// newServer assembles the accounts gRPC server: TLS material and policy from cfg, the
// ledger on its database, then every service registered. The configuration files are
// all checked before the database is opened, so a broken one changes nothing. The
// returned close releases the ledger and its database; call it after the server stopped.
func newServer(ctx context.Context, cfg config, logger *slog.Logger, opts ...grpcserver.Option) (*grpcserver.Server, func() error, error) {
	policy, err := loadPolicy(cfg)
	if err != nil {
		return nil, nil, err
	}
	src, err := tlsconfig.LoadSource(policy.TrustDomain(), tlsconfig.Files{Cert: cfg.Cert, Key: cfg.Key, CA: cfg.CA, CRL: cfg.CRL})
	if err != nil {
		return nil, nil, err
	}
	srv, err := grpcserver.New(src, policy, logger, opts...)
	if err != nil {
		return nil, nil, err
	}
	identityv1.RegisterIdentityServiceServer(srv, whoami.New())
	if err := srv.CheckWith(&accountsv1.AccountsService_ServiceDesc); err != nil {
		return nil, nil, fmt.Errorf("accounts: %w", err)
	}
	store, err := sqlitestore.Open(ctx, cfg.DB)
	if err != nil {
		return nil, nil, fmt.Errorf("open ledger database: %w", err)
	}
	l, err := ledger.New(store)
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("open ledger: %w", err), store.Close())
	}
	accounts.NewService(l, logger).Register(srv)
	return srv, func() error { return errors.Join(l.Close(), store.Close()) }, nil
}
