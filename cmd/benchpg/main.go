// Command benchpg is the PostgreSQL part of `make bench`: durable transfers and
// payments per second, and CPU per request, on SQLite and on PostgreSQL with one
// and two replicas of each service, in alternating rounds (bench.RunPostgres).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"mtlsbank/internal/bench"
	"mtlsbank/internal/pgcluster"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "benchpg:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := bench.DefaultPostgresConfig()
	fs := flag.NewFlagSet("benchpg", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "alternating rounds of every deployment")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "load of one round against one deployment")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "discarded load before the first round of each deployment")
	fs.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "concurrent callers")
	fs.StringVar(&cfg.Dir, "dir", "", "directory for the binaries, cluster, databases and TLS files (default: a temporary one, removed)")
	fs.StringVar(&cfg.Profile, "profile", "", "after the rounds, record each deployment's transfers with perf (whole machine) into this directory, with reports by process and by function")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	rep, err := bench.RunPostgres(ctx, cfg)
	if errors.Is(err, pgcluster.ErrNoBinaries) {
		fmt.Fprintf(stdout, "benchpg: skipped, PostgreSQL is not installed here: %v\n", err)
		return nil
	}
	if err != nil {
		return err
	}
	rep.Write(stdout)
	return nil
}
