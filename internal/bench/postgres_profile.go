package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// profileTransfers records, with perf, the whole machine during one more
// transfer load on each deployment, and writes into cfg.Profile for each the
// recording (transfers-<deployment>.perf.data) and three reports: CPU by
// process (-by-process.txt), and by function in the accounts processes
// (-accounts.txt) and in PostgreSQL's (-postgres.txt). The whole machine,
// because what a transfer costs is spread over the service, the database's
// backends and WAL writer, the kernel (loopback TCP, fsync) and the load
// generator.
func profileTransfers(ctx context.Context, cfg PostgresConfig, loads []*benchDeployment, progress func(string, ...any)) error {
	perf, err := exec.LookPath("perf")
	if err != nil {
		return fmt.Errorf("profile: %w (install linux-perf)", err)
	}
	if err := os.MkdirAll(cfg.Profile, 0o755); err != nil {
		return err
	}
	for _, bd := range loads {
		slug := strings.ReplaceAll(bd.Name, " ", "")
		data := filepath.Join(cfg.Profile, "transfers-"+slug+".perf.data")
		progress("profiling %s transfers for %s into %s", bd.Name, cfg.Duration, data)
		s, err := recordWhile(ctx, perf, data, func() (PGSample, error) { return bd.transfers(ctx, cfg.Duration) })
		if err != nil {
			return fmt.Errorf("profile %s: %w", bd.Name, err)
		}
		sv, db, cl := s.CPUPerCall()
		header := fmt.Sprintf("# %s: %d transfers in %s (%.0f/s), CPU per transfer %d µs in the services, %d µs in the database, %d µs in the load generator\n",
			bd.Name, s.Calls, s.Elapsed.Round(time.Millisecond), s.Rate(), sv.Microseconds(), db.Microseconds(), cl.Microseconds())
		reports := []struct {
			suffix string
			args   []string
		}{
			{"by-process", []string{"--sort", "comm"}},
			{"accounts", []string{"--comms", "accounts", "--sort", "sym"}},
			{"postgres", []string{"--comms", "postgres", "--sort", "sym"}},
		}
		for _, r := range reports {
			out := filepath.Join(cfg.Profile, "transfers-"+slug+"-"+r.suffix+".txt")
			args := append([]string{"report", "-i", data, "--stdio", "--no-children", "-g", "none", "--percent-limit", "0.5"}, r.args...)
			text, err := exec.CommandContext(ctx, perf, args...).Output()
			if err != nil {
				return fmt.Errorf("perf report %s: %w", out, err)
			}
			if err := os.WriteFile(out, append([]byte(header), text...), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// recordWhile runs perf record on every CPU, with call graphs, while load runs.
func recordWhile(ctx context.Context, perf, data string, load func() (PGSample, error)) (PGSample, error) {
	cmd := exec.Command(perf, "record", "--all-cpus", "--call-graph", "fp", "--freq", "999", "--output", data, "--quiet")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return PGSample{}, err
	}
	stop := func() error {
		_ = cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil {
			var exit *exec.ExitError
			// perf exits with the signal's status after writing its file.
			if !errors.As(err, &exit) || !fileHasData(data) {
				return fmt.Errorf("perf record: %w: %s", err, stderr.String())
			}
		}
		return nil
	}
	// perf creates its file once it records.
	deadline := time.Now().Add(30 * time.Second)
	for !fileHasData(data) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return PGSample{}, errors.Join(fmt.Errorf("perf record did not start within 30s: %s", stderr.String()), stop())
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	s, err := load()
	return s, errors.Join(err, stop())
}

func fileHasData(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Size() > 0
}
