package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	identityv1 "mtlsbank/gen/bank/identity/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	typev1 "mtlsbank/gen/bank/type/v1"
	"mtlsbank/internal/auditlog"
	"mtlsbank/internal/authz"
	"mtlsbank/internal/identity"
	"mtlsbank/internal/ledger"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/service"
	"mtlsbank/internal/tlsconfig"
	"mtlsbank/internal/tracesink"
	"mtlsbank/internal/tracing"
)

// Config is one run of the harness.
type Config struct {
	// Rounds is how many alternating rounds each comparison and each durable measurement
	// gets (default 5).
	Rounds int
	// Duration is the load of one round against one target (default 4s).
	Duration time.Duration
	// HandshakeDuration is one round of handshakes against one configuration (default 2s).
	HandshakeDuration time.Duration
	// Warmup is the discarded load before the first round of each target (default 1s).
	Warmup time.Duration
	// Concurrency is the number of concurrent callers of the RPC loads (default 50).
	Concurrency int
	// Conns is the number of client connections the callers share (default 4).
	Conns int
	// HandshakeConcurrency is the number of concurrently handshaking clients (default 8).
	HandshakeConcurrency int
	// FloodConns is how many silent TCP connections the flood keeps open (reopening those
	// the service drops), from FloodSources loopback addresses 127.0.0.10 and up, for
	// FloodDuration, while FloodCalls legitimate calls, each on a fresh connection from
	// 127.0.0.2, are timed (defaults 2000, 20, 10s, 20). A flood connection that the
	// service drops, or whose dial fails, is reopened FloodReopen later (default 100ms):
	// that sets the rate of new connections the service has to refuse.
	FloodConns, FloodSources   int
	FloodDuration, FloodReopen time.Duration
	FloodCalls                 int
	// AccountsPolicy and PaymentsPolicy are the services' policy files (defaults: their
	// embedded defaults in services/, relative to the repository root).
	AccountsPolicy, PaymentsPolicy string
	// Dir holds the databases and TLS files (default: a new temporary directory, removed
	// afterwards).
	Dir string
	// Sections are the measurements to run (default: all of Sections, in that order);
	// the report and its target lines cover only those run.
	Sections []string
	// Progress receives a line per step (default: nowhere).
	Progress io.Writer
	// ServiceLogLevel is the level from which the services' records are formatted
	// (default Info, as deployed: every allowed call's audit record). Warn leaves the
	// allowed calls' audit records unformatted (their attributes are still built): an
	// estimate of the chain once the audit record is handed to a sink instead.
	ServiceLogLevel slog.Level
	// Previous are the target measurements of an earlier report (ParseTargets), to
	// print each target's change; nil: none.
	Previous map[string]float64
}

// The sections of a run.
const (
	SectionReads      = "reads"      // bare vs real read RPCs
	SectionHandshakes = "handshakes" // raw vs ours full handshakes per key type
	SectionAuthz      = "authz"      // the authorization decision
	SectionDurable    = "durable"    // durable transfers and payments
	SectionFlood      = "flood"      // fresh legitimate calls during a connection flood
	SectionTracing    = "tracing"    // WhoAmI untraced, with tracing off, exporting
)

// Sections lists every section in the order a run measures them.
var Sections = []string{SectionReads, SectionHandshakes, SectionAuthz, SectionDurable, SectionFlood, SectionTracing}

func (c Config) runs(section string) bool {
	return len(c.Sections) == 0 || slices.Contains(c.Sections, section)
}

// DefaultConfig returns the configuration of `make bench`: about six and a half minutes on two
// cores.
func DefaultConfig() Config {
	return Config{
		Rounds:               5,
		Duration:             4 * time.Second,
		HandshakeDuration:    2 * time.Second,
		Warmup:               time.Second,
		Concurrency:          50,
		Conns:                4,
		HandshakeConcurrency: 8,
		FloodConns:           2000,
		FloodSources:         20,
		FloodDuration:        10 * time.Second,
		FloodReopen:          100 * time.Millisecond,
		FloodCalls:           20,
		AccountsPolicy:       "services/accounts/policy.yaml",
		PaymentsPolicy:       "services/payments/policy.yaml",
	}
}

// Validate reports every setting that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Rounds < 1 {
		errs = append(errs, fmt.Errorf("rounds %d: want at least 1", c.Rounds))
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"duration", c.Duration}, {"handshake duration", c.HandshakeDuration}, {"flood duration", c.FloodDuration}} {
		if d.d <= 0 {
			errs = append(errs, fmt.Errorf("%s %s: want > 0", d.name, d.d))
		}
	}
	if c.FloodSources > maxFloodSources {
		errs = append(errs, fmt.Errorf("flood sources %d: want at most %d (127.0.0.10 to 127.0.0.%d)", c.FloodSources, maxFloodSources, 9+maxFloodSources))
	}
	if c.Warmup < 0 {
		errs = append(errs, fmt.Errorf("warmup %s: want >= 0", c.Warmup))
	}
	if c.FloodReopen < 0 {
		errs = append(errs, fmt.Errorf("flood reopen %s: want >= 0", c.FloodReopen))
	}
	for _, n := range []struct {
		name string
		n    int
	}{
		{"concurrency", c.Concurrency}, {"conns", c.Conns}, {"handshake concurrency", c.HandshakeConcurrency},
		{"flood conns", c.FloodConns}, {"flood sources", c.FloodSources}, {"flood calls", c.FloodCalls},
	} {
		if n.n < 1 {
			errs = append(errs, fmt.Errorf("%s %d: want at least 1", n.name, n.n))
		}
	}
	for _, f := range []struct{ name, path string }{{"accounts policy", c.AccountsPolicy}, {"payments policy", c.PaymentsPolicy}} {
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w (run from the repository root or pass its path)", f.name, err))
		}
	}
	for _, sec := range c.Sections {
		if !slices.Contains(Sections, sec) {
			errs = append(errs, fmt.Errorf("section %q: want one of %s", sec, strings.Join(Sections, ", ")))
		}
	}
	return errors.Join(errs...)
}

// handshakeKeyTypes are the key types the handshake benchmark compares, the default first.
var handshakeKeyTypes = []pki.KeyType{pki.ECDSAP256, pki.Ed25519, pki.RSA2048}

// Run runs every measurement and returns the results; an error means the harness
// failed (a server did not start, a call failed), never that a target was missed.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if cfg.Dir == "" {
		dir, err := os.MkdirTemp("", "mtlsbank-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		cfg.Dir = dir
	}
	h := &harness{
		commits: newCommitTally(),
		cfg:     cfg,
		res:     &Results{Machine: describeMachine(), Config: cfg},
		logger:  serviceLogger(cfg.Progress, cfg.ServiceLogLevel),
	}
	if err := h.run(ctx); err != nil {
		return nil, err
	}
	h.res.Machine.LoadEnd = loadAverage()
	return h.res, nil
}

type harness struct {
	cfg     Config
	res     *Results
	logger  *slog.Logger // the services' (serviceLogger)
	commits *commitTally // the group commits of the durable loads' stores
}

func (h *harness) progress(format string, args ...any) {
	fmt.Fprintf(h.cfg.Progress, "bench: "+format+"\n", args...)
}

func (h *harness) run(ctx context.Context) (err error) {
	// The accounts service serves the read and the durable loads; the other sections
	// need no server of the bank.
	var (
		m        *material
		shared   *sharedLedger
		accounts *running
		f        *fixtures
	)
	if h.cfg.runs(SectionReads) || h.cfg.runs(SectionDurable) {
		h.progress("making the ECDSA P-256 PKI and starting the accounts service")
		if m, err = newMaterial(pki.ECDSAP256); err != nil {
			return err
		}
		if shared, err = openLedger(ctx, filepath.Join(h.cfg.Dir, "accounts.db"), ledger.WithCommitObserver(h.commits.observer(commitsLedger))); err != nil {
			return err
		}
		defer func() { err = errors.Join(err, shared.close()) }()
		if accounts, err = labelled(serverReal, func() (*running, error) {
			return startAccounts(ctx, m, h.cfg.Dir, h.cfg.AccountsPolicy, h.logger, false, shared,
				service.WithAuditOptions(auditlog.WithCommitObserver(h.commits.observer(commitsAccountsAudit))))
		}); err != nil {
			return err
		}
		defer func() { err = errors.Join(err, accounts.stop()) }()
		if f, err = h.fixtures(ctx, m, accounts.addr); err != nil {
			return err
		}
		defer f.close()
	}
	steps := []struct {
		section string
		run     func() error
	}{
		{SectionReads, func() error { return h.reads(ctx, m, f, accounts, shared) }},
		{SectionHandshakes, func() error { return h.handshakes(ctx) }},
		{SectionAuthz, h.authz},
		{SectionDurable, func() error { return h.durable(ctx, m, f, accounts.addr) }},
		{SectionFlood, func() error { return h.flood(ctx) }},
		{SectionTracing, func() error { return h.tracingCost(ctx) }},
	}
	for _, step := range steps {
		if !h.cfg.runs(step.section) {
			continue
		}
		if err := step.run(); err != nil {
			return err
		}
	}
	return nil
}

// fixtures is the state the loads need: accounts opened and funded by a teller.
type fixtures struct {
	aliceAccounts []string // owned by alice, funded
	bobAccount    string
	conns         [][]*grpc.ClientConn
}

func (f *fixtures) close() {
	for _, c := range f.conns {
		closeAll(c)
	}
}

// fixtureAccounts is how many accounts alice gets: transfers spread over them.
const fixtureAccounts = 16

func (h *harness) fixtures(ctx context.Context, m *material, addr string) (*fixtures, error) {
	f := &fixtures{}
	teller, err := m.client(tellerID)
	if err != nil {
		return nil, err
	}
	conns, err := dial(m, teller, addr, accountsID, 1)
	if err != nil {
		return nil, err
	}
	f.conns = append(f.conns, conns)
	c := accountsv1.NewAccountsServiceClient(conns[0])
	open := func(owner string, fund int64) (string, error) {
		resp, err := c.OpenAccount(ctx, &accountsv1.OpenAccountRequest{Owner: owner, Currency: "EUR", DisplayName: "bench"})
		if err != nil {
			return "", fmt.Errorf("open an account for %s: %w", owner, err)
		}
		id := resp.GetAccount().GetId()
		if fund > 0 {
			_, err = c.Deposit(ctx, &accountsv1.DepositRequest{
				AccountId: id, Amount: &typev1.Money{CurrencyCode: "EUR", MinorUnits: fund}, IdempotencyKey: "fund-" + id,
			})
			if err != nil {
				return "", fmt.Errorf("fund account %s: %w", id, err)
			}
		}
		return id, nil
	}
	for range fixtureAccounts {
		id, err := open(aliceID, 1e11) // the ledger's default largest deposit: 1,000,000,000.00 EUR
		if err != nil {
			return nil, err
		}
		f.aliceAccounts = append(f.aliceAccounts, id)
	}
	if f.bobAccount, err = open(bobID, 0); err != nil {
		return nil, err
	}
	return f, nil
}

// The servers of the reads section.
const (
	// serverBare is grpc-go with the bank's credentials answering from memory.
	serverBare = "bare"
	// serverNoChain is the accounts service's handlers over the real ledger, with the
	// real service's credentials and no interceptor chain (startHandlers).
	serverNoChain = "no chain"
	// serverReal is the accounts service as deployed, tracing configured without an
	// exporter endpoint (the default).
	serverReal = "real"
	// serverExporting is serverReal exporting every call's span.
	serverExporting = "exporting"
)

// readServers are the servers of the reads section, in the order of the report.
var readServers = []string{serverBare, serverNoChain, serverReal, serverExporting}

// reads measures WhoAmI and GetAccount on the bare server, the service's handlers without
// the chain, the real service, and the real service exporting its traces, in alternating
// rounds. The last three serve the same ledger.
func (h *harness) reads(ctx context.Context, m *material, f *fixtures, accounts *running, shared *sharedLedger) (err error) {
	alice, err := m.client(aliceID)
	if err != nil {
		return err
	}
	realConns, err := dial(m, alice, accounts.addr, accountsID, h.cfg.Conns)
	if err != nil {
		return err
	}
	f.conns = append(f.conns, realConns)
	// The bare server answers with what the real one answered, so both send the same bytes.
	who, err := identityv1.NewIdentityServiceClient(realConns[0]).WhoAmI(ctx, &identityv1.WhoAmIRequest{})
	if err != nil {
		return fmt.Errorf("WhoAmI on the accounts service: %w", err)
	}
	acct, err := accountsv1.NewAccountsServiceClient(realConns[0]).GetAccount(ctx, &accountsv1.GetAccountRequest{Id: f.aliceAccounts[0]})
	if err != nil {
		return fmt.Errorf("GetAccount on the accounts service: %w", err)
	}
	bareLeaf, err := m.server(accountsID)
	if err != nil {
		return err
	}
	bareSrc, err := m.source(bareLeaf)
	if err != nil {
		return err
	}
	bare, err := labelled(serverBare, func() (*running, error) { return startBare(bareSrc, who, acct) })
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, bare.stop()) }()

	policy, err := authz.LoadPolicy(h.cfg.AccountsPolicy)
	if err != nil {
		return err
	}
	aliceIdentity, err := identity.FromCertificate(alice.Cert, trustDomain)
	if err != nil {
		return err
	}
	noChain, err := labelled(serverNoChain, func() (*running, error) {
		return startHandlers(accounts.src, shared.Ledger, policy, aliceIdentity)
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, noChain.stop()) }()

	sink, err := tracesink.Start(tracesink.WithMaxSpans(0)) // count, keep nothing
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, sink.Stop()) }()
	exportDir := filepath.Join(h.cfg.Dir, "reads-exporting")
	if err := os.MkdirAll(exportDir, 0o700); err != nil {
		return err
	}
	h.progress("starting the accounts service exporting its traces, over the same ledger")
	exporting, err := labelled(serverExporting, func() (*running, error) {
		return startAccounts(ctx, m, exportDir, h.cfg.AccountsPolicy, h.logger, false, shared,
			service.WithTracing(tracing.Config{Endpoint: sink.Endpoint()}))
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, exporting.stop()) }()

	conns := map[string][]*grpc.ClientConn{serverReal: realConns}
	for _, srv := range []struct {
		name string
		r    *running
	}{{serverBare, bare}, {serverNoChain, noChain}, {serverExporting, exporting}} {
		c, err := dial(m, alice, srv.r.addr, accountsID, h.cfg.Conns)
		if err != nil {
			return err
		}
		defer closeAll(c)
		conns[srv.name] = c
	}

	rpcs := []struct {
		name string
		call func(conns []*grpc.ClientConn) callFunc
	}{
		{"WhoAmI", func(conns []*grpc.ClientConn) callFunc {
			return func(ctx context.Context, w, _ int) error {
				_, err := identityv1.NewIdentityServiceClient(conns[w%len(conns)]).WhoAmI(ctx, &identityv1.WhoAmIRequest{})
				return err
			}
		}},
		{"GetAccount", func(conns []*grpc.ClientConn) callFunc {
			return func(ctx context.Context, w, _ int) error {
				_, err := accountsv1.NewAccountsServiceClient(conns[w%len(conns)]).GetAccount(ctx,
					&accountsv1.GetAccountRequest{Id: f.aliceAccounts[w%len(f.aliceAccounts)]})
				return err
			}
		}},
	}
	for _, rpc := range rpcs {
		set := &ReadSet{RPC: rpc.name, Servers: readServers}
		h.res.Reads = append(h.res.Reads, set)
		loads := make([]loadFunc, len(readServers))
		for i, name := range readServers {
			call := rpc.call(conns[name])
			loads[i] = func(ctx context.Context, d time.Duration) (sample, error) {
				return runLoad(ctx, h.cfg.Concurrency, d, call)
			}
		}
		if set.Rounds, err = h.lineup(ctx, rpc.name, readServers, loads); err != nil {
			return fmt.Errorf("%s: %w", rpc.name, err)
		}
	}
	return nil
}

// loadFunc runs one target's load for d.
type loadFunc func(ctx context.Context, d time.Duration) (sample, error)

// lineup warms every target up, then runs cfg.Rounds rounds in which each target runs
// once for cfg.Duration, the order rotated every round and reversed every other one, so
// that a drift of the machine's load favours none. It returns the samples per target,
// per round.
func (h *harness) lineup(ctx context.Context, name string, names []string, loads []loadFunc) ([][]sample, error) {
	if h.cfg.Warmup > 0 {
		for i, load := range loads {
			if _, err := load(ctx, h.cfg.Warmup); err != nil {
				return nil, fmt.Errorf("%s warm-up: %w", names[i], err)
			}
		}
	}
	n := len(loads)
	rounds := make([][]sample, n)
	for r := range h.cfg.Rounds {
		for k := range n {
			i := (r + k) % n
			if r%2 == 1 {
				i = (r + n - k) % n
			}
			s, err := loads[i](ctx, h.cfg.Duration)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", names[i], err)
			}
			rounds[i] = append(rounds[i], s)
		}
		var line strings.Builder
		for i := range n {
			fmt.Fprintf(&line, ", %s %.0f/s %.0fµs", names[i], rounds[i][r].rate(), float64(rounds[i][r].cpuPerCall())/float64(time.Microsecond))
		}
		h.progress("%-10s round %d/%d%s%s", name, r+1, h.cfg.Rounds, line.String(), failures(lastRound(rounds)...))
	}
	return rounds, nil
}

// lastRound returns the last sample of each target.
func lastRound(rounds [][]sample) []sample {
	out := make([]sample, 0, len(rounds))
	for _, rs := range rounds {
		out = append(out, rs[len(rs)-1])
	}
	return out
}

// alternate warms both targets up, then runs cfg.Rounds rounds of base and subject,
// swapping their order every round so that a drift of the machine's load favours neither.
func (h *harness) alternate(ctx context.Context, cmp *Comparison, d time.Duration, base, subject func(context.Context, time.Duration) (sample, error)) error {
	if h.cfg.Warmup > 0 {
		if _, err := base(ctx, h.cfg.Warmup); err != nil {
			return fmt.Errorf("%s warm-up: %w", cmp.Base, err)
		}
		if _, err := subject(ctx, h.cfg.Warmup); err != nil {
			return fmt.Errorf("%s warm-up: %w", cmp.Subject, err)
		}
	}
	for r := range h.cfg.Rounds {
		var b, s sample
		var err error
		runBase := func() error { b, err = base(ctx, d); return wrap(cmp.Base, err) }
		runSubject := func() error { s, err = subject(ctx, d); return wrap(cmp.Subject, err) }
		first, second := runBase, runSubject
		if r%2 == 1 {
			first, second = runSubject, runBase
		}
		if err := first(); err != nil {
			return err
		}
		if err := second(); err != nil {
			return err
		}
		cmp.BaseRounds = append(cmp.BaseRounds, b)
		cmp.SubjectRounds = append(cmp.SubjectRounds, s)
		h.progress("%-22s round %d/%d: %s %.0f/s, %s %.0f/s, ratio %.3f%s",
			cmp.Name, r+1, h.cfg.Rounds, cmp.Base, b.rate(), cmp.Subject, s.rate(), s.rate()/b.rate(), failures(b, s))
	}
	return nil
}

// failures says how many calls of the samples failed, with the first failure.
func failures(samples ...sample) string {
	m := merge(samples)
	if m.errors == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d failed calls, first: %v)", m.errors, m.example)
}

func wrap(what string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// handshakes compares raw crypto/tls with tlsconfig.ServerConfig per key type.
func (h *harness) handshakes(ctx context.Context) error {
	ours := func(m *material, leaf *pki.Leaf) (*tls.Config, error) {
		src, err := m.source(leaf)
		if err != nil {
			return nil, err
		}
		return tlsconfig.ServerConfig(src), nil
	}
	for _, kt := range handshakeKeyTypes {
		h.progress("making the %s PKI", kt)
		m, err := newMaterial(kt)
		if err != nil {
			return err
		}
		p, err := newHandshakePair(m, ours)
		if err != nil {
			return err
		}
		cmp := &Comparison{Name: "handshake " + string(kt), Base: "raw", Subject: "ours", KeyType: kt}
		h.res.Handshakes = append(h.res.Handshakes, cmp)
		n := h.cfg.HandshakeConcurrency
		err = h.alternate(ctx, cmp, h.cfg.HandshakeDuration,
			func(ctx context.Context, d time.Duration) (sample, error) {
				return runHandshakes(ctx, p.raw, p.client, n, d)
			},
			func(ctx context.Context, d time.Duration) (sample, error) {
				return runHandshakes(ctx, p.ours, p.client, n, d)
			})
		if err != nil {
			return fmt.Errorf("%s: %w", cmp.Name, err)
		}
	}
	return nil
}

// durable measures transfers on the accounts service and payments through the pair,
// alternating rounds of the two.
func (h *harness) durable(ctx context.Context, m *material, f *fixtures, accountsAddr string) error {
	h.progress("starting the payments service")
	paymentsSrv, err := startPayments(ctx, m, h.cfg.Dir, h.cfg.PaymentsPolicy, accountsAddr, h.logger, h.commits)
	if err != nil {
		return err
	}
	defer paymentsSrv.stop()

	// Transfers are what the payments service calls: as payments, on behalf of alice.
	paymentsLeaf, err := m.client(paymentsID)
	if err != nil {
		return err
	}
	toAccounts, err := dial(m, paymentsLeaf, accountsAddr, accountsID, h.cfg.Conns)
	if err != nil {
		return err
	}
	defer closeAll(toAccounts)
	alice, err := m.client(aliceID)
	if err != nil {
		return err
	}
	toPayments, err := dial(m, alice, paymentsSrv.addr, paymentsID, h.cfg.Conns)
	if err != nil {
		return err
	}
	defer closeAll(toPayments)

	// Idempotency keys unique to this run (whatever the database held) and to each call,
	// warm-up and rounds included.
	run := time.Now().UnixNano()
	var seq atomic.Int64
	transfer := func(ctx context.Context, w, i int) error {
		ctx = metadata.AppendToOutgoingContext(ctx, authz.OnBehalfOfKey, aliceID)
		n := len(f.aliceAccounts)
		resp, err := accountsv1.NewAccountsServiceClient(toAccounts[w%len(toAccounts)]).Transfer(ctx, &accountsv1.TransferRequest{
			FromAccountId:  f.aliceAccounts[w%n],
			ToAccountId:    f.aliceAccounts[(w+1+i%(n-1))%n], // any of alice's accounts but the source
			Amount:         &typev1.Money{CurrencyCode: "EUR", MinorUnits: 1},
			IdempotencyKey: fmt.Sprintf("bench-%d-%d", run, seq.Add(1)),
		})
		if err == nil && resp.GetReplayed() {
			err = errors.New("transfer replayed: idempotency keys collided")
		}
		return err
	}
	pay := func(ctx context.Context, w, i int) error {
		resp, err := paymentsv1.NewPaymentsServiceClient(toPayments[w%len(toPayments)]).CreatePayment(ctx, &paymentsv1.CreatePaymentRequest{
			FromAccountId:  f.aliceAccounts[w%len(f.aliceAccounts)],
			ToAccountId:    f.bobAccount,
			Amount:         &typev1.Money{CurrencyCode: "EUR", MinorUnits: 1},
			IdempotencyKey: fmt.Sprintf("bench-%d-%d", run, seq.Add(1)),
		})
		if err == nil && resp.GetPayment().GetStatus() != paymentsv1.PaymentStatus_PAYMENT_STATUS_COMPLETED {
			err = fmt.Errorf("payment %s is %s", resp.GetPayment().GetId(), resp.GetPayment().GetStatus())
		}
		return err
	}
	cmp := &Comparison{Name: "durable writes", Base: "transfers", Subject: "payments"}
	err = h.alternate(ctx, cmp, h.cfg.Duration, h.probedLoad("transfers", transfer), h.probedLoad("payments", pay))
	if err != nil {
		return err
	}
	h.res.Durable = cmp
	return nil
}

// fsyncProbeDuration is how long the disk is probed before each durable load.
const fsyncProbeDuration = 500 * time.Millisecond

// probedLoad is a durable load of fn that first probes the disk's fsync latency in the
// run's directory (probeFsync) and keeps the probe with the load's sample.
func (h *harness) probedLoad(what string, fn callFunc) func(context.Context, time.Duration) (sample, error) {
	return func(ctx context.Context, d time.Duration) (sample, error) {
		disk, err := probeFsync(ctx, h.cfg.Dir, fsyncProbeDuration)
		if err != nil {
			return sample{}, err
		}
		h.progress("disk before %s: %d fsyncs of %d KiB in %s, p50 %s, p99 %s",
			what, disk.calls, fsyncProbeWrite>>10, fsyncProbeDuration, us(disk.quantile(0.5)), us(disk.quantile(0.99)))
		before := h.commits.snapshot()
		s, err := runLoad(ctx, h.cfg.Concurrency, d, fn)
		s.disk = &disk
		s.commits = h.commits.since(before)
		return s, err
	}
}

// describeMachine says what the numbers were measured on.
func describeMachine() Machine {
	return Machine{
		CPUs:       runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		CPUModel:   cpuModel(),
		GoVersion:  runtime.Version(),
		OS:         runtime.GOOS + "/" + runtime.GOARCH,
		LoadStart:  loadAverage(),
	}
}
