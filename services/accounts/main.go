package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// shutdownGrace is how long in-flight calls get to finish on SIGINT/SIGTERM.
const shutdownGrace = 10 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr, logger); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		logger.Error("accounts stopped", "err", err)
		os.Exit(1)
	}
}

// run serves until ctx ends (SIGINT/SIGTERM), then drains in-flight calls.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, logger *slog.Logger) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	srv, closeLedger, err := newServer(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer func() {
		if err := closeLedger(); err != nil {
			logger.Error("close ledger", "err", err)
		}
	}()
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	logger.Info("accounts serving", "addr", lis.Addr().String(), "policy", srv.Authorizer().Policy().Name())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("accounts shutting down", "grace", shutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	srv.Shutdown(sctx)
	return <-errc
}
