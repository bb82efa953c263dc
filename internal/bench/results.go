package bench

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"mtlsbank/internal/auditlog"
	"mtlsbank/internal/pki"
)

// Results is everything one run measured.
type Results struct {
	Machine    Machine
	Config     Config
	Reads      []*ReadSet    // every read server, per RPC
	Handshakes []*Comparison // raw vs ours, per key type
	Decisions  []DecisionCost
	Audit      *auditlog.Measurement // the audit hand-off (authz section)
	Durable    *Comparison           // the durable rounds: transfers, payments, each with its disk probe; nil unless the section ran
	Flood      *FloodResult          // nil unless the flood section ran
	Tracing    *TracingCost          // nil unless the tracing section ran
}

// Machine is what the run was measured on.
type Machine struct {
	CPUs, GOMAXPROCS   int
	CPUModel           string
	GoVersion, OS      string
	LoadStart, LoadEnd string // /proc/loadavg's 1, 5 and 15 minute averages
}

// ReadSet is one read RPC measured on every server of the reads section (readServers)
// in alternating rounds.
type ReadSet struct {
	RPC     string
	Servers []string
	Rounds  [][]sample // per server, per round
}

// Compare returns the comparison of two of the set's servers, round by round.
func (r *ReadSet) Compare(base, subject string) *Comparison {
	c := &Comparison{Name: r.RPC, Base: base, Subject: subject}
	for i, name := range r.Servers {
		switch name {
		case base:
			c.BaseRounds = r.Rounds[i]
		case subject:
			c.SubjectRounds = r.Rounds[i]
		}
	}
	return c
}

// Server returns the samples of one server, merged.
func (r *ReadSet) Server(name string) sample {
	for i, n := range r.Servers {
		if n == name {
			return merge(r.Rounds[i])
		}
	}
	return sample{}
}

// ChainOverhead is the real service's rate against its handlers without the chain.
func (r *ReadSet) ChainOverhead() *Comparison { return r.Compare(serverNoChain, serverReal) }

// FullStack is the real service's rate against the bare server.
func (r *ReadSet) FullStack() *Comparison { return r.Compare(serverBare, serverReal) }

// readGoals are the full_stack_rps_ratio goals per RPC: a GetAccount reads the
// ledger (or its cache), which the bare server's canned answer does not.
var readGoals = map[string]float64{"WhoAmI": 0.90, "GetAccount": 0.75}

// Goals of the chain overhead and of the CPU of a durable write against a bare call.
const (
	chainOverheadGoal   = 0.90
	transferCPURatioMax = 5
	paymentCPURatioMax  = 12
	auditRecordNsMax    = 1000
)

// Comparison is a base and a subject measured in alternating rounds.
type Comparison struct {
	Name          string
	Base, Subject string
	KeyType       pki.KeyType // handshakes only
	BaseRounds    []sample
	SubjectRounds []sample
}

// Ratios returns subject/base of each round.
func (c *Comparison) Ratios() []float64 {
	out := make([]float64, len(c.BaseRounds))
	for i := range c.BaseRounds {
		if b := c.BaseRounds[i].rate(); b > 0 {
			out[i] = c.SubjectRounds[i].rate() / b
		}
	}
	return out
}

// Ratio is the median of the per-round ratios: each round's pair ran back to back under
// the same conditions, and the median ignores the round in which a neighbour's build
// landed on one of the two.
func (c *Comparison) Ratio() float64 { return median(c.Ratios()) }

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// Target is one goal of issue 8 (or 11: the flood).
type Target struct {
	Name     string
	Measured float64
	Goal     float64
	AtMost   bool   // the goal is an upper bound (a cost), else a lower bound
	Format   string // of Measured and Goal
}

// Met reports whether the measurement meets the goal.
func (t Target) Met() bool {
	if t.AtMost {
		return t.Measured <= t.Goal
	}
	return t.Measured >= t.Goal
}

// String is the target line: "target NAME MEASURED GOAL PASS|MISS", the goal written
// with its direction (">=0.90", "<=200").
func (t Target) String() string {
	op, verdict := ">=", "MISS"
	if t.AtMost {
		op = "<="
	}
	if t.Met() {
		verdict = "PASS"
	}
	return fmt.Sprintf("target %s "+t.Format+" %s"+t.Format+" %s", t.Name, t.Measured, op, t.Goal, verdict)
}

// Targets returns the goals of issues 8, 11 and 14 with their measurements (those of
// the sections run): per read RPC, the chain's overhead and the full stack against the
// bare server; the handshake, the decision, the audit record, the durable rates, the CPU
// of a durable write against a bare call, the flood.
func (r *Results) Targets() []Target {
	var out []Target
	if r.Config.runs(SectionReads) {
		for _, set := range r.Reads {
			out = append(out, Target{Name: "chain_overhead_ratio_" + strings.ToLower(set.RPC), Measured: set.ChainOverhead().Ratio(), Goal: chainOverheadGoal, Format: "%.2f"})
		}
		for _, set := range r.Reads {
			out = append(out, Target{Name: "full_stack_rps_ratio_" + strings.ToLower(set.RPC), Measured: set.FullStack().Ratio(), Goal: readGoals[set.RPC], Format: "%.2f"})
		}
	}
	if r.Config.runs(SectionHandshakes) {
		handshake := 0.0
		for _, c := range r.Handshakes {
			if c.KeyType == pki.ECDSAP256 {
				handshake = c.Ratio()
			}
		}
		out = append(out, Target{Name: "handshake_ratio_ecdsa", Measured: handshake, Goal: 0.90, Format: "%.2f"})
	}
	if r.Config.runs(SectionAuthz) {
		decision := 0.0
		if len(r.Decisions) > 0 {
			decision = r.Decisions[0].NsPerOp
		}
		out = append(out, Target{Name: "authz_decision_ns", Measured: decision, Goal: 200, AtMost: true, Format: "%.0f"})
		if r.Audit != nil {
			out = append(out, Target{Name: "audit_record_ns", Measured: float64(r.Audit.CallerCPU.Nanoseconds()), Goal: 1000, AtMost: true, Format: "%.0f"})
		}
	}
	if r.Config.runs(SectionDurable) {
		out = append(out,
			Target{Name: "durable_transfers_per_s", Measured: r.transfers().rate(), Goal: 5000, Format: "%.0f"},
			Target{Name: "payments_per_s", Measured: r.payments().rate(), Goal: 2000, Format: "%.0f"})
		if bare := r.bareCPU(); bare > 0 {
			out = append(out,
				Target{Name: "transfer_cpu_ratio", Measured: float64(r.transfers().cpuPerCall()) / float64(bare), Goal: transferCPURatioMax, AtMost: true, Format: "%.1f"},
				Target{Name: "payment_cpu_ratio", Measured: float64(r.payments().cpuPerCall()) / float64(bare), Goal: paymentCPURatioMax, AtMost: true, Format: "%.1f"})
		}
	}
	if r.Config.runs(SectionFlood) && r.Flood != nil {
		out = append(out, Target{Name: "flood_fresh_call_max_ms", Measured: r.Flood.CallMaxMs(), Goal: 1000, AtMost: true, Format: "%.1f"})
	}
	return out
}

// transfers and payments are the durable rounds' loads, merged (zero if the section did
// not run).
func (r *Results) transfers() sample {
	if r.Durable == nil {
		return sample{}
	}
	return merge(r.Durable.BaseRounds)
}

func (r *Results) payments() sample {
	if r.Durable == nil {
		return sample{}
	}
	return merge(r.Durable.SubjectRounds)
}

// bareCPU is the CPU of a bare call (the bare server's WhoAmI, both ends), or 0 if the
// reads section did not run.
func (r *Results) bareCPU() time.Duration {
	for _, set := range r.Reads {
		if set.RPC == "WhoAmI" {
			return set.Server(serverBare).cpuPerCall()
		}
	}
	return 0
}

// Write prints the report: the machine and method, a table per measurement, and last
// the target lines.
func (r *Results) Write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	m, c := r.Machine, r.Config
	fmt.Fprintf(bw, "mtlsbank benchmarks: the cost of security, measured against the bare minimum in one run\n")
	fmt.Fprintf(bw, "machine: %d CPUs (%s), GOMAXPROCS %d, %s, %s; load average %s at start, %s at end\n",
		m.CPUs, m.CPUModel, m.GOMAXPROCS, m.OS, m.GoVersion, m.LoadStart, m.LoadEnd)
	fmt.Fprintf(bw, "method: %d alternating rounds; RPC loads: %d concurrent callers on %d connections, %s per round;\n"+
		"        handshakes: %d concurrent clients, %s per round; clients and servers share this machine\n\n",
		c.Rounds, c.Concurrency, c.Conns, c.Duration, c.HandshakeConcurrency, c.HandshakeDuration)
	if c.ServiceLogLevel != slog.LevelInfo {
		fmt.Fprintf(bw, "NOT AS DEPLOYED: the services' log records are formatted from %s only (-service-log-level)\n\n", c.ServiceLogLevel)
	}

	if c.runs(SectionReads) {
		r.writeReads(bw)
	}
	if c.runs(SectionHandshakes) {
		r.writeHandshakes(bw)
	}
	if c.runs(SectionAuthz) {
		r.writeDecisions(bw)
	}
	if c.runs(SectionDurable) {
		r.writeDurable(bw)
	}
	if c.runs(SectionReads) {
		r.writeCPU(bw)
	}
	if c.runs(SectionFlood) && r.Flood != nil {
		r.writeFlood(bw)
	}
	if c.runs(SectionTracing) && r.Tracing != nil {
		r.writeTracing(bw)
	}
	targets := r.Targets()
	r.writeChanges(bw, targets)
	for _, t := range targets {
		fmt.Fprintln(bw, t)
	}
	return bw.Flush()
}

func (r *Results) writeReads(bw io.Writer) {
	fmt.Fprintf(bw, "1. Read RPCs over reused mTLS connections (ECDSA P-256), on four servers: bare (grpc-go, the bank's\n"+
		"   credentials, canned answers), no chain (the accounts service's handlers over its ledger, the real\n"+
		"   service's credentials, no interceptor), real (the accounts service as deployed: full chain, audit,\n"+
		"   tracing without an exporter endpoint), exporting (real, exporting every call's span to a receiver here)\n")
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "RPC\tserver\tcalls/s\tp50\tp99\tCPU/call\terrors\t")
	var failed []sample
	for _, set := range r.Reads {
		for _, name := range set.Servers {
			s := set.Server(name)
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t%s\t%d\t\n", set.RPC, name, s.rate(), ms(s.quantile(0.5)), ms(s.quantile(0.99)), us(s.cpuPerCall()), s.errors)
			failed = append(failed, s)
		}
	}
	tw.Flush()
	fmt.Fprintf(bw, "   ratios of calls/s, the median of the per-round ratios (per round in brackets); the same from the\n"+
		"   CPU per call (what a CPU-bound server's rate would be: steadier on a shared machine); the chain's extra CPU:\n")
	tw = tabwriter.NewWriter(bw, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "RPC\ttracing\tchain_overhead_ratio\tfull_stack_rps_ratio\tby CPU: chain\tfull stack\tchain CPU/call\t")
	for _, set := range r.Reads {
		for _, subject := range []string{serverReal, serverExporting} {
			chain, full := set.Compare(serverNoChain, subject), set.Compare(serverBare, subject)
			label := "off (default)"
			if subject == serverExporting {
				label = "exporting"
			}
			cpu, noChain, bare := set.Server(subject).cpuPerCall(), set.Server(serverNoChain).cpuPerCall(), set.Server(serverBare).cpuPerCall()
			fmt.Fprintf(tw, "%s\t%s\t%.2f [%s]\t%.2f [%s]\t%.2f\t%.2f\t%+.1fµs\t\n", set.RPC, label,
				chain.Ratio(), ratios(chain.Ratios()), full.Ratio(), ratios(full.Ratios()),
				cpuRatio(noChain, cpu), cpuRatio(bare, cpu), float64(cpu-noChain)/float64(time.Microsecond))
		}
	}
	tw.Flush()
	writeErrors(bw, failed...)
	fmt.Fprintln(bw)
}

// cpuRatio is base/subject of two CPU costs per call: the rate ratio of a CPU-bound server.
func cpuRatio(base, subject time.Duration) float64 {
	if subject <= 0 {
		return 0
	}
	return float64(base) / float64(subject)
}

// writeCPU prints the CPU per call of the reads and the durable writes against a bare
// call's: steadier than rates when other work shares the machine.
func (r *Results) writeCPU(bw io.Writer) {
	bare := r.bareCPU()
	if bare <= 0 {
		return
	}
	fmt.Fprintf(bw, "CPU per call (this process: client and server ends), against a bare call (bare WhoAmI, %s)\n", us(bare))
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "call\tCPU/call\tx bare\t")
	row := func(name string, s sample) {
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t\n", name, us(s.cpuPerCall()), float64(s.cpuPerCall())/float64(bare))
	}
	for _, set := range r.Reads {
		row(set.RPC+" (real)", set.Server(serverReal))
	}
	if r.Config.runs(SectionDurable) {
		row("durable transfer", r.transfers())
		row("payment", r.payments())
	}
	tw.Flush()
	fmt.Fprintln(bw)
}

// writeChanges prints, for every target a previous report also measured, the change.
func (r *Results) writeChanges(bw io.Writer, targets []Target) {
	if len(r.Config.Previous) == 0 {
		return
	}
	fmt.Fprintf(bw, "change from the previous report:\n")
	for _, t := range targets {
		was, ok := r.Config.Previous[t.Name]
		if !ok {
			continue
		}
		change := "n/a"
		if was != 0 {
			change = fmt.Sprintf("%+.0f%%", 100*(t.Measured-was)/was)
		}
		fmt.Fprintf(bw, "   %s "+t.Format+" -> "+t.Format+" (%s)\n", t.Name, was, t.Measured, change)
	}
	fmt.Fprintln(bw)
}

// writeErrors notes the first failed call of each sample that had any.
func writeErrors(w io.Writer, samples ...sample) {
	for _, s := range samples {
		if s.errors > 0 {
			fmt.Fprintf(w, "   %d failed calls, first: %v\n", s.errors, s.example)
		}
	}
}

func (r *Results) writeHandshakes(bw io.Writer) {
	fmt.Fprintf(bw, "2. Full mTLS handshakes (new TCP connection each, no resumption): raw crypto/tls\n"+
		"   (RequireAndVerifyClientCert, nothing else) vs tlsconfig.ServerConfig, per key type of the whole PKI\n")
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "key type\traw/s\tours/s\traw p50\tours p50\tCPU raw\tCPU ours\terrors\tours/raw\tper round\t")
	var failed []sample
	for _, cmp := range r.Handshakes {
		b, s := merge(cmp.BaseRounds), merge(cmp.SubjectRounds)
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%d\t%.2f\t%s\t\n", cmp.KeyType, b.rate(), s.rate(),
			ms(b.quantile(0.5)), ms(s.quantile(0.5)), us(b.cpuPerCall()), us(s.cpuPerCall()), b.errors+s.errors, cmp.Ratio(), ratios(cmp.Ratios()))
		failed = append(failed, b, s)
	}
	tw.Flush()
	writeErrors(bw, failed...)
	fmt.Fprintln(bw)
}

func (r *Results) writeDecisions(bw io.Writer) {
	fmt.Fprintf(bw, "3. Authorization decision (authz.Policy.Decide, accounts policy, testing.Benchmark; the median of the rounds)\n")
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\tns/op\tallocs/op\tB/op\tper round\t")
	for _, d := range r.Decisions {
		rounds := make([]string, len(d.Rounds))
		for i, ns := range d.Rounds {
			rounds[i] = fmt.Sprintf("%.0f", ns)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%d\t%d\t%s\t\n", d.Case, d.NsPerOp, d.AllocsPerOp, d.BytesPerOp, strings.Join(rounds, " "))
	}
	tw.Flush()
	if a := r.Audit; a != nil {
		fmt.Fprintf(bw, "audit record hand-off (auditlog.Sink.Write of a read, CPU of the calling thread): %d ns/record;\n"+
			"a lone read's record durable after %s (median), %s (max), flush window %s\n",
			a.CallerCPU.Nanoseconds(), a.WindowMedian.Round(time.Millisecond), a.WindowMax.Round(time.Millisecond), auditlog.DefaultFlushInterval)
	}
	fmt.Fprintln(bw)
}

func (r *Results) writeDurable(bw io.Writer) {
	fmt.Fprintf(bw, "4. Durable writes (SQLite WAL, synchronous=FULL: fsync before each acknowledgement), %d concurrent callers\n", r.Config.Concurrency)
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "what\tper second\tp50\tp99\tCPU/call\terrors\t")
	for _, row := range []struct {
		name string
		s    sample
	}{
		{"transfers: accounts over gRPC, group commit", r.transfers()},
		{"payments: payments -> accounts, both real", r.payments()},
	} {
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%d\t\n", row.name, row.s.rate(), ms(row.s.quantile(0.5)), ms(row.s.quantile(0.99)), us(row.s.cpuPerCall()), row.s.errors)
	}
	tw.Flush()
	writeErrors(bw, r.transfers(), r.payments())
	r.writeDisk(bw)
	r.writeCommits(bw)
	fmt.Fprintln(bw)
}

// writeCommits prints, for each durable load over all its rounds, the group commits of
// each store its calls waited for: how often, how many requests shared one, how long one
// took, and the share of the load's time the store was committing (its committer is one
// goroutine: near 100% it is the bound).
func (r *Results) writeCommits(bw io.Writer) {
	if r.Durable == nil || len(r.Durable.BaseRounds) == 0 {
		return
	}
	fmt.Fprintln(bw, "   the group commits during the loads (all rounds): per second, requests per commit, a commit's mean time, share of the time committing:")
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "load\tstore\tcommits/s\trequests\tmean\tbusy\t")
	for _, load := range []struct {
		name    string
		samples []sample
	}{{"transfers", r.Durable.BaseRounds}, {"payments", r.Durable.SubjectRounds}} {
		sum, elapsed, names := sumCommits(load.samples)
		if elapsed <= 0 {
			continue
		}
		for _, name := range names {
			t := sum[name]
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.1f\t%s\t%.0f%%\t\n", load.name, name,
				float64(t.batches)/elapsed.Seconds(), float64(t.requests)/float64(t.batches),
				us(t.took/time.Duration(t.batches)), 100*t.took.Seconds()/elapsed.Seconds())
		}
	}
	tw.Flush()
}

// writeDisk prints each durable round's rates beside the disk's fsync latency probed just
// before each load: on a shared machine the rates follow the disk.
func (r *Results) writeDisk(bw io.Writer) {
	if r.Durable == nil || len(r.Durable.BaseRounds) == 0 {
		return
	}
	fmt.Fprintf(bw, "   per round, with the disk's fsync latency (%d KiB appends for %s in the run's directory) just before each load:\n",
		fsyncProbeWrite>>10, fsyncProbeDuration)
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "round\ttransfers/s\tfsync p50\tfsync p99\tpayments/s\tfsync p50\tfsync p99\t")
	disk := func(s sample) string {
		if s.disk == nil {
			return "-\t-"
		}
		return us(s.disk.quantile(0.5)) + "\t" + us(s.disk.quantile(0.99))
	}
	for i, t := range r.Durable.BaseRounds {
		p := r.Durable.SubjectRounds[i]
		fmt.Fprintf(tw, "%d\t%.0f\t%s\t%.0f\t%s\t\n", i+1, t.rate(), disk(t), p.rate(), disk(p))
	}
	tw.Flush()
}

func (r *Results) writeFlood(bw io.Writer) {
	c, f := r.Config, r.Flood
	fmt.Fprintf(bw, "5. Connection flood: %d silent TCP connections from %d addresses (127.0.0.10 and up), each reopened\n"+
		"   %s after the service drops it, against an accounts service at its default caps, for %s; meanwhile\n"+
		"   %d legitimate calls from 127.0.0.2, each a fresh connection (TCP, full mTLS handshake, WhoAmI)\n",
		c.FloodConns, c.FloodSources, c.FloodReopen, c.FloodDuration, c.FloodCalls)
	fmt.Fprintf(bw, "   flood: %d connections opened (reopens included: %.0f/s), at most %d open at once, %d dials failed\n",
		f.Opened, float64(f.Opened)/c.FloodDuration.Seconds(), f.PeakHeld, f.DialErrors)
	if f.FirstDialError != nil {
		fmt.Fprintf(bw, "   first failed dial of the flood: %v\n", f.FirstDialError)
	}
	fmt.Fprintf(bw, "   refused by the service (%s): %.0f", floodRefusedMetric, f.RefusedTotal())
	for i, reason := range sortedReasons(f.Refused) {
		sep := ", "
		if i == 0 {
			sep = " ("
		}
		fmt.Fprintf(bw, "%s%s %.0f", sep, reason, f.Refused[reason])
		if i == len(f.Refused)-1 {
			fmt.Fprint(bw, ")")
		}
	}
	fmt.Fprintln(bw)
	fmt.Fprintf(bw, "   legitimate calls: %d completed, %d failed\n", len(f.Calls), f.Errors)
	if f.FirstError != nil {
		fmt.Fprintf(bw, "   first failed call: %v\n", f.FirstError)
	}
	if len(f.Baseline) > 0 {
		fmt.Fprintf(bw, "   the same calls before the flood, one after the other: p50 %s, max %s\n",
			ms(quantile(f.Baseline, 0.5)), ms(slices.Max(f.Baseline)))
	}
	fmt.Fprintf(bw, "   flood_fresh_call_p50_ms %.1f\n", msFloat(f.CallQuantile(0.5)))
	fmt.Fprintf(bw, "   flood_fresh_call_max_ms %.1f\n\n", f.CallMaxMs())
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
func us(d time.Duration) string { return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond)) }

func ratios(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, " ")
}

// cpuModel returns the first "model name" of /proc/cpuinfo, or "unknown CPU".
func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// loadAverage returns the 1, 5 and 15 minute load averages of /proc/loadavg, or "?".
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// ParseTargets reads the target lines of a report ("target NAME MEASURED GOAL VERDICT")
// and returns the measurement of each; other lines are skipped.
func ParseTargets(r io.Reader) (map[string]float64, error) {
	out := make(map[string]float64)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 5 || f[0] != "target" {
			continue
		}
		v, err := strconv.ParseFloat(f[2], 64)
		if err != nil {
			return nil, fmt.Errorf("target %s: measurement %q: %w", f[1], f[2], err)
		}
		out[f[1]] = v
	}
	return out, sc.Err()
}
