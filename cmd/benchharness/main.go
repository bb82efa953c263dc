// Command benchharness is `make bench`: it measures the cost of the bank's security
// against a bare grpc-go server in one run and prints a table and one line per target.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"mtlsbank/internal/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "benchharness:", err)
		os.Exit(1)
	}
}

// run parses args, runs the harness and writes the report to stdout and progress to
// stderr. A missed target is not an error: the report says so.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := bench.DefaultConfig()
	fs := flag.NewFlagSet("benchharness", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "alternating rounds of every comparison")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "load of one round against one target")
	fs.DurationVar(&cfg.HandshakeDuration, "handshake-duration", cfg.HandshakeDuration, "one round of handshakes against one configuration")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "discarded load before the first round of each target")
	fs.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "concurrent callers of the RPC loads")
	fs.IntVar(&cfg.Conns, "conns", cfg.Conns, "client connections the callers share")
	fs.IntVar(&cfg.HandshakeConcurrency, "handshake-concurrency", cfg.HandshakeConcurrency, "concurrently handshaking clients")
	fs.IntVar(&cfg.FloodConns, "flood-conns", cfg.FloodConns, "silent TCP connections of the flood")
	fs.IntVar(&cfg.FloodSources, "flood-sources", cfg.FloodSources, "loopback addresses the flood comes from (127.0.0.10 and up)")
	fs.DurationVar(&cfg.FloodDuration, "flood-duration", cfg.FloodDuration, "how long the flood lasts, the legitimate calls spread over it")
	fs.DurationVar(&cfg.FloodReopen, "flood-reopen", cfg.FloodReopen, "how long a dropped flood connection waits before it is reopened (sets the rate of new connections)")
	fs.IntVar(&cfg.FloodCalls, "flood-calls", cfg.FloodCalls, "legitimate calls during the flood, each on a fresh connection from 127.0.0.2")
	fs.StringVar(&cfg.AccountsPolicy, "accounts-policy", cfg.AccountsPolicy, "policy of the accounts service")
	fs.StringVar(&cfg.PaymentsPolicy, "payments-policy", cfg.PaymentsPolicy, "policy of the payments service")
	fs.StringVar(&cfg.Dir, "dir", "", "directory for the databases and TLS files (default: a temporary one, removed)")
	fs.Func("sections", "comma-separated sections to run (default all: "+strings.Join(bench.Sections, ",")+")", func(s string) error {
		cfg.Sections = strings.Split(s, ",")
		return nil
	})
	fs.TextVar(&cfg.ServiceLogLevel, "service-log-level", cfg.ServiceLogLevel, "level from which the services' log records are formatted (info as deployed; warn leaves allowed calls' audit records unformatted)")
	previous := fs.String("previous", "", "an earlier report (this command's output): print each target's change from it")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof)")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	if *previous != "" {
		f, err := os.Open(*previous)
		if err != nil {
			return err
		}
		cfg.Previous, err = bench.ParseTargets(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("-previous %s: %w", *previous, err)
		}
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	return res.Write(stdout)
}
