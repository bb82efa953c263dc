package bench

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// profileTransfers records, with perf, the whole machine during one more
// transfer load on each deployment, and writes into cfg.Profile for each the
// recording (transfers-<deployment>.perf.data), CPU per transfer by process
// and by what the accounts and PostgreSQL processes did (-breakdown.txt, also
// printed as progress), and three perf reports: by process (-by-process.txt),
// and by function in the accounts processes (-accounts.txt) and in
// PostgreSQL's (-postgres.txt). The whole machine,
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
			{"accounts", []string{"--comms", "accounts", "--sort", "sym", "--percentage", "relative"}},
			{"postgres", []string{"--comms", "postgres", "--sort", "sym", "--percentage", "relative"}},
		}
		script, err := exec.CommandContext(ctx, perf, "script", "-i", data, "-F", "comm,ip,sym").Output()
		if err != nil {
			return fmt.Errorf("perf script %s: %w", data, err)
		}
		text := header + breakdown(script, s.Calls)
		if err := os.WriteFile(filepath.Join(cfg.Profile, "transfers-"+slug+"-breakdown.txt"), []byte(text), 0o644); err != nil {
			return err
		}
		progress("%s", text)
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

// category names what a stack of a process was doing: the first category one
// of whose patterns a frame of the stack contains.
type category struct {
	name     string
	patterns []string
}

// serviceCategories sort the samples of the Go services, the pgx calls in a
// gRPC handler being database client, for instance.
var serviceCategories = []category{
	{"garbage collection", []string{"runtime.gcBgMarkWorker", "runtime.gcAssist", "runtime.bgsweep", "runtime.bgscavenge", "runtime.gcMark"}},
	{"database client (pgx, pgstore)", []string{"github.com/jackc/pgx", "mtlsbank/internal/ledger/pgstore"}},
	{"database engine in process (SQLite)", []string{"modernc.org/", "mtlsbank/internal/ledger/sqlitestore"}},
	{"audit log", []string{"mtlsbank/internal/auditlog"}},
	{"ledger (rules, group commit)", []string{"mtlsbank/internal/ledger", "mtlsbank/internal/groupcommit"}},
	{"TLS", []string{"crypto/"}},
	{"gRPC, HTTP/2, protobuf, interceptors, handlers", []string{"google.golang.org/", "golang.org/x/net/", "mtlsbank/"}},
	{"Go scheduler (parking, waking)", []string{"runtime.schedule", "runtime.findRunnable", "runtime.park_m", "runtime.mcall", "runtime.goready", "runtime.ready"}},
}

// postgresCategories sort the samples of the PostgreSQL processes.
var postgresCategories = []category{
	{"WAL write and fsync", []string{"XLogFlush", "XLogWrite", "issue_xlog_fsync", "fdatasync", "WalWriterMain"}},
	{"background (autovacuum, checkpointer, writer, stats)", []string{"analyze_rel", "vacuum", "CheckpointerMain", "BackgroundWriterMain", "AutoVac", "pgstat_", "PgArch"}},
	{"client protocol (sockets, waiting, messages, parameters)", []string{"pq_getbyte", "pq_getmessage", "secure_read", "secure_write", "pq_flush", "__send", "__libc_recv", "epoll_wait", "WaitEventSetWait", "FetchPreparedStatement", "getTypeInputInfo", "ReceiveFunctionCall", "array_recv"}},
	{"foreign key checks", []string{"SPI_execute_snapshot", "RI_FKey"}},
	{"planning", []string{"standard_planner", "pg_plan_quer"}},
	{"executing statements", []string{"PortalRun", "PortalStart", "standard_Executor", "PortalDrop", "exec_bind", "CreatePortal", "GetCachedPlan"}},
	{"transaction begin and end", []string{"CommitTransactionCommand", "StartTransactionCommand", "AbortCurrentTransaction"}},
}

// breakdown sorts the samples of perf script's output (comm, then a frame a
// line, samples separated by blank lines) by process and, for the accounts
// and PostgreSQL processes, by category. A sample is 1/999 s of CPU.
func breakdown(script []byte, transfers int) string {
	type tally struct {
		samples int
		by      map[string]int
	}
	procs := map[string]*tally{}
	total := 0
	for _, block := range strings.Split(string(script), "\n\n") {
		lines := strings.Split(strings.TrimSpace(block), "\n")
		if len(lines) == 0 || lines[0] == "" {
			continue
		}
		comm := strings.TrimSpace(lines[0])
		if comm == "swapper" {
			continue // idle
		}
		total++
		t := procs[comm]
		if t == nil {
			t = &tally{by: map[string]int{}}
			procs[comm] = t
		}
		t.samples++
		var cats []category
		switch comm {
		case "accounts", "payments":
			cats = serviceCategories
		case "postgres":
			cats = postgresCategories
		default:
			continue
		}
		stack := strings.Join(lines[1:], "\n")
		name := "other"
		for _, c := range cats {
			if slices.ContainsFunc(c.patterns, func(p string) bool { return strings.Contains(stack, p) }) {
				name = c.name
				break
			}
		}
		t.by[name]++
	}
	perTransfer := func(n int) int64 {
		return int64(float64(n) * float64(time.Second/999) / float64(max(transfers, 1)) / float64(time.Microsecond))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# CPU by process and by what it did, in µs per transfer (%d transfers, %d busy samples)\n", transfers, total)
	names := slices.Collect(maps.Keys(procs))
	slices.SortFunc(names, func(x, y string) int { return procs[y].samples - procs[x].samples })
	for _, comm := range names {
		t := procs[comm]
		if t.samples*200 < total {
			continue
		}
		fmt.Fprintf(&b, "%-16s %5d µs  %4.1f%%\n", comm, perTransfer(t.samples), 100*float64(t.samples)/float64(total))
		cats := slices.Collect(maps.Keys(t.by))
		slices.SortFunc(cats, func(x, y string) int { return t.by[y] - t.by[x] })
		for _, c := range cats {
			fmt.Fprintf(&b, "    %-56s %5d µs  %4.1f%% of %s\n", c, perTransfer(t.by[c]), 100*float64(t.by[c])/float64(t.samples), comm)
		}
	}
	return b.String()
}
