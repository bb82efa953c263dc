package main

import (
	"context"
	"io"
	"log/slog"

	"mtlsbank/internal/service"
)

func main() { service.Main("accounts", run) }

// run serves until ctx ends (SIGINT/SIGTERM), then drains in-flight calls and closes the
// ledger; with --migrate it migrates the database and returns. opts go to service.New
// (Main passes the SIGHUP channel).
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, logger *slog.Logger, opts ...service.Option) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	return service.Run(ctx, accountsService(cfg.ledgerOptions()...), cfg.Config, logger, opts...)
}
