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
