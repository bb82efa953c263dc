package main

import (
	"context"
	"io"
	"log/slog"

	"mtlsbank/internal/service"
)

func main() { service.Main("payments", run) }

// run serves until ctx ends (SIGINT/SIGTERM), then drains in-flight calls, stops the
// recovery worker, and closes the connection to accounts and the database. opts go to
// service.New (Main passes the SIGHUP channel). With --migrate it migrates the
// database and returns.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, logger *slog.Logger, opts ...service.Option) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	a := &app{cfg: cfg, hooks: crashHooks(getenv, logger)}
	return service.Run(ctx, a.service(), cfg.Config, logger, opts...)
}
