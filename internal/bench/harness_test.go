package bench

import (
	"bytes"
	"context"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRunSmoke runs every section with tiny rounds and a tiny flood: real servers, real
// handshakes, real SQLite, real connections from other loopback addresses, and a report
// whose last lines are the targets, each with a measurement.
func TestRunSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts both services and runs every measurement briefly")
	}
	cfg := Config{
		Rounds:               2,
		Duration:             150 * time.Millisecond,
		HandshakeDuration:    100 * time.Millisecond,
		Concurrency:          4,
		Conns:                2,
		HandshakeConcurrency: 2,
		FloodConns:           40,
		FloodSources:         2,
		FloodDuration:        200 * time.Millisecond,
		FloodReopen:          10 * time.Millisecond,
		FloodCalls:           2,
		AccountsPolicy:       "../../services/accounts/policy.yaml",
		PaymentsPolicy:       "../../services/payments/policy.yaml",
		Dir:                  t.TempDir(),
	}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run() = %v", err)
	}
	if len(res.Reads) != 2 || len(res.Handshakes) != len(handshakeKeyTypes) || len(res.Decisions) != 2 {
		t.Fatalf("measured %d read RPCs, %d key types, %d decisions", len(res.Reads), len(res.Handshakes), len(res.Decisions))
	}
	for _, set := range res.Reads {
		if len(set.Rounds) != len(readServers) {
			t.Fatalf("%s: measured on %d servers, want %d", set.RPC, len(set.Rounds), len(readServers))
		}
		for i, rounds := range set.Rounds {
			if len(rounds) != cfg.Rounds {
				t.Errorf("%s on %s: %d rounds, want %d", set.RPC, set.Servers[i], len(rounds), cfg.Rounds)
			}
			if s := merge(rounds); s.calls == 0 || s.errors != 0 {
				t.Errorf("%s on %s: %d calls, %d failed", set.RPC, set.Servers[i], s.calls, s.errors)
			}
		}
	}
	for _, c := range res.Handshakes {
		if len(c.BaseRounds) != cfg.Rounds || len(c.SubjectRounds) != cfg.Rounds {
			t.Errorf("%s: %d and %d rounds, want %d each", c.Name, len(c.BaseRounds), len(c.SubjectRounds), cfg.Rounds)
		}
	}
	for _, d := range res.Decisions {
		if len(d.Rounds) != cfg.Rounds || d.NsPerOp != median(d.Rounds) || d.NsPerOp <= 0 {
			t.Errorf("decision %s: %v ns/op from rounds %v, want the median of %d", d.Case, d.NsPerOp, d.Rounds, cfg.Rounds)
		}
	}
	// Each durable load carries the disk probe made just before it.
	if d := res.Durable; d == nil || len(d.BaseRounds) != cfg.Rounds || len(d.SubjectRounds) != cfg.Rounds {
		t.Fatalf("durable rounds = %+v, want %d of each", d, cfg.Rounds)
	}
	for _, s := range append(slices.Clone(res.Durable.BaseRounds), res.Durable.SubjectRounds...) {
		if s.disk == nil || s.disk.calls == 0 {
			t.Errorf("a durable round has no disk probe: %+v", s.disk)
		}
	}
	// ... and the group commits its calls waited for: a transfer the ledger's and the
	// accounts audit's, a payment also the payments store's (two writes each) and audit's
	// (others may commit too: a timer's flush of the other service's audit trail).
	wantCommits := func(what string, s sample, stores ...string) {
		t.Helper()
		for _, store := range stores {
			if c := s.commits[store]; c.batches == 0 || c.requests < c.batches || c.took <= 0 {
				t.Errorf("%s round: %s commits %+v, want some", what, store, c)
			}
		}
	}
	for i := range cfg.Rounds {
		wantCommits("transfers", res.Durable.BaseRounds[i], commitsLedger, commitsAccountsAudit)
		wantCommits("payments", res.Durable.SubjectRounds[i], commitsLedger, commitsAccountsAudit, commitsPayments, commitsPaymentsAudit)
		if p := res.Durable.SubjectRounds[i]; p.commits[commitsPayments].requests < 2*p.calls {
			t.Errorf("payments round: %d payments store writes for %d payments, want two each", p.commits[commitsPayments].requests, p.calls)
		}
	}
	if res.Audit == nil || res.Audit.CallerCPU <= 0 {
		t.Errorf("audit record cost = %+v, want a measurement", res.Audit)
	}

	// 40 silent connections from two addresses: beyond the 16 handshaking connections a
	// source may hold, so the service refused some, and each call came through.
	if f := res.Flood; f == nil || f.Opened+f.DialErrors < int64(cfg.FloodConns) || f.RefusedTotal() < 1 || len(f.Calls) != cfg.FloodCalls || f.Errors != 0 || len(f.Baseline) != cfg.FloodCalls {
		t.Fatalf("flood = %+v, want %d connections tried, some refused, %d calls completed during and before", f, cfg.FloodConns, cfg.FloodCalls)
	}

	// Tracing: both comparisons ran, and the exporting service's spans reached the receiver.
	if tr := res.Tracing; tr == nil || len(tr.Off.SubjectRounds) != cfg.Rounds || len(tr.Exporting.SubjectRounds) != cfg.Rounds || tr.Calls == 0 || tr.Spans == 0 || tr.Spans > tr.Calls {
		t.Fatalf("tracing = %+v, want %d rounds of each comparison and spans received for the exporting calls", tr, cfg.Rounds)
	}

	var out bytes.Buffer
	if err := res.Write(&out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) < 12 {
		t.Fatalf("report too short:\n%s", out.String())
	}
	lineRE := regexp.MustCompile(`^target (\S+) (\S+) (>=|<=)(\S+) (PASS|MISS)$`)
	want := []string{
		"chain_overhead_ratio_whoami", "chain_overhead_ratio_getaccount", "full_stack_rps_ratio_whoami", "full_stack_rps_ratio_getaccount",
		"handshake_ratio_ecdsa", "authz_decision_ns", "audit_record_ns", "durable_transfers_per_s", "payments_per_s",
		"transfer_cpu_ratio", "payment_cpu_ratio", "flood_fresh_call_max_ms",
	}
	for i, line := range lines[len(lines)-len(want):] {
		m := lineRE.FindStringSubmatch(line)
		if m == nil || m[1] != want[i] {
			t.Errorf("target line %d = %q, want target %s ...", i+1, line, want[i])
			continue
		}
		if v, err := strconv.ParseFloat(m[2], 64); err != nil || v <= 0 {
			t.Errorf("%s measured %q, want a positive number", m[1], m[2])
		}
	}
	for _, section := range []string{"1. Read RPCs", "chain_overhead_ratio", "CPU per call", "2. Full mTLS handshakes", "3. Authorization decision", "4. Durable writes", "fsync p50", "requests per commit", "5. Connection flood", "6. Tracing", "tracing_off_rps_ratio", "tracing_exporting_extra_cpu_us_per_call"} {
		if !strings.Contains(out.String(), section) {
			t.Errorf("report has no section %q", section)
		}
	}
}

// TestRunSections runs one section and reports only its targets.
func TestRunSections(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Sections = []string{SectionAuthz}
	cfg.AccountsPolicy = "../../services/accounts/policy.yaml"
	cfg.PaymentsPolicy = "../../services/payments/policy.yaml"
	cfg.Dir = t.TempDir()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run() = %v", err)
	}
	var out bytes.Buffer
	if err := res.Write(&out); err != nil {
		t.Fatal(err)
	}
	report := out.String()
	if strings.Contains(report, "1. Read RPCs") || strings.Count(report, "\ntarget ") != 2 || !strings.Contains(report, "\ntarget authz_decision_ns ") ||
		!strings.Contains(report, "\ntarget audit_record_ns ") || !strings.Contains(report, "durable after") {
		t.Errorf("report of the authz section alone:\n%s", report)
	}
}
