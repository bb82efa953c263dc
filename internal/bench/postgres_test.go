package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestPostgresReportWrite: the ratios are of the median rates against SQLite's, the
// CPU per call pools the rounds, and a target line per PostgreSQL deployment says
// PASS only at half of SQLite's transfers or more.
func TestPostgresReportWrite(t *testing.T) {
	s := func(calls int, services, database time.Duration) PGSample {
		return PGSample{Calls: calls, Elapsed: time.Second, Services: services, Database: database, Client: 0}
	}
	rep := &PostgresReport{Config: DefaultPostgresConfig(), Deployments: []*Deployment{
		{Name: "sqlite", Transfers: []PGSample{s(1000, time.Second, 0), s(900, time.Second, 0), s(1100, time.Second, 0)},
			Payments: []PGSample{s(500, time.Second, 0)}},
		{Name: "postgres x1", Transfers: []PGSample{s(600, time.Second, time.Second)}, Payments: []PGSample{s(100, time.Second, 0)}},
		{Name: "postgres x2", Transfers: []PGSample{s(400, time.Second, 0)}, Payments: []PGSample{s(100, time.Second, 0)}},
	}}
	var out bytes.Buffer
	rep.Write(&out)
	for _, want := range []string{
		"| sqlite | 1000 | 1.00 | 1000 µs (1000 + 0 + 0) | 500 | 1.00 |",
		"| postgres x1 | 600 | 0.60 | 3333 µs (1666 + 1666 + 0) | 100 | 0.20 |",
		"target pg_transfers_ratio_x1 0.60 >= 0.50 PASS",
		"target pg_transfers_ratio_x2 0.40 >= 0.50 MISS",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// TestBreakdown: perf script's samples are counted per process, idle ones
// left out, and those of the accounts and PostgreSQL processes sorted by what
// their stacks did, the first matching category winning (pgx under a gRPC
// handler is database client); 999 samples a second make µs per transfer.
func TestBreakdown(t *testing.T) {
	sample := func(comm string, frames ...string) string {
		out := comm + " \n"
		for _, f := range frames {
			out += "\t ffffffff " + f + "\n"
		}
		return out + "\n"
	}
	var script string
	for range 4 {
		script += sample("accounts", "github.com/jackc/pgx/v5.(*Conn).Query", "mtlsbank/internal/accounts.(*Service).Transfer", "google.golang.org/grpc.(*Server).handleStream")
	}
	for range 2 {
		script += sample("accounts", "crypto/tls.(*Conn).Write", "google.golang.org/grpc/internal/transport.(*loopyWriter).run")
	}
	script += sample("accounts", "runtime.mallocgc", "runtime.gcBgMarkWorker")
	script += sample("postgres", "fdatasync", "issue_xlog_fsync", "XLogFlush", "PostgresMain")
	script += sample("postgres", "SPI_execute_snapshot", "AfterTriggerEndQuery", "PortalRun", "PostgresMain")
	script += sample("swapper", "default_idle")
	script += sample("benchpg", "main.main")
	// Columns are aligned with spaces: compare words.
	got := strings.Join(strings.Fields(breakdown([]byte(script), 1)), " ")
	for _, want := range []string{
		"accounts 7007 µs 70.0%",
		"database client (pgx, pgstore) 4004 µs 57.1% of accounts",
		"TLS 2002 µs 28.6% of accounts",
		"garbage collection 1001 µs 14.3% of accounts",
		"postgres 2002 µs 20.0%",
		"WAL write and fsync 1001 µs 50.0% of postgres",
		"foreign key checks 1001 µs 50.0% of postgres",
		"benchpg 1001 µs 10.0%",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("breakdown lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "swapper") {
		t.Errorf("breakdown counts the idle task:\n%s", got)
	}
}
