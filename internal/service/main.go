package service

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"mtlsbank/internal/tracing"
)

// RunFunc is a service's run: it parses args (with getenv for the environment), serves
// until ctx ends, and returns nil after a graceful shutdown. opts go to New.
type RunFunc func(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, logger *slog.Logger, opts ...Option) error

// Main is the whole main function of a service: SIGHUP reloads the files (registered
// first, because SIGHUP's default action kills the process), SIGINT and SIGTERM shut down
// gracefully (queued spans are flushed last), logs go to stderr, tracing is configured by
// the OTEL_* environment (tracing.FromEnv), and the exit status is 1 on error.
func Main(name string, run RunFunc) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	tracing.LogErrorsTo(logger)
	trace, err := tracing.FromEnv(os.Getenv)
	if err == nil {
		err = run(ctx, os.Args[1:], os.Getenv, os.Stderr, logger, WithReloadSignal(hup), WithTracing(trace))
	}
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	default:
		logger.Error(name+" stopped", "err", err)
		os.Exit(1)
	}
}
