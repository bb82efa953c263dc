package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	typev1 "mtlsbank/gen/bank/type/v1"
	"mtlsbank/internal/auditlog"
	"mtlsbank/internal/authz"
	"mtlsbank/internal/migrate"
	"mtlsbank/internal/pgcluster"
	"mtlsbank/internal/pki"
)

// PostgresConfig is one run of the PostgreSQL durable-write benchmark (RunPostgres).
type PostgresConfig struct {
	// Rounds of every deployment, alternating (default 3); Duration of one load
	// (default 4s); Warmup before the first round of each (default 1s);
	// Concurrency callers (default 50).
	Rounds      int
	Duration    time.Duration
	Warmup      time.Duration
	Concurrency int
	// Dir holds the binaries, SQLite databases and TLS files (the cluster has its own) (default: a new
	// temporary directory, removed afterwards).
	Dir string
	// Progress receives a line per step (default: nowhere).
	Progress io.Writer
	// Profile, if not empty, is a directory: after the rounds, one more
	// transfer load per deployment runs under perf record, and the recordings
	// and their reports (CPU by process, by function in the accounts service
	// and in PostgreSQL) are written there (profileTransfers). It needs perf.
	Profile string
}

// DefaultPostgresConfig is the configuration of `make bench`: about two minutes.
func DefaultPostgresConfig() PostgresConfig {
	return PostgresConfig{Rounds: 3, Duration: 4 * time.Second, Warmup: time.Second, Concurrency: 50}
}

// payingCustomers is how many customers make the payments: each order takes its
// customer's rolling-limit lock, so one customer's orders are decided one at a
// time (on PostgreSQL, across replicas); a bank has many customers.
const payingCustomers = 16

// Deployment is one way of running the two services, measured.
type Deployment struct {
	// Name: "sqlite" (one accounts and one payments process on SQLite files),
	// "postgres x1" or "postgres x2" (that many replicas of each on PostgreSQL).
	Name      string
	Transfers []PGSample
	Payments  []PGSample
}

// PGSample is one round of one load on one deployment, with the CPU time each
// party used.
type PGSample struct {
	Calls, Errors int
	Elapsed       time.Duration
	// Services is the CPU of the deployment's service processes, Database that
	// of the PostgreSQL cluster (0 for SQLite, whose work is in Services), Client
	// that of this process (the load generator).
	Services, Database, Client time.Duration
}

// Rate is calls per second.
func (s PGSample) Rate() float64 { return float64(s.Calls) / s.Elapsed.Seconds() }

// CPUPerCall is the CPU of every party per call.
func (s PGSample) CPUPerCall() (services, database, client time.Duration) {
	if s.Calls == 0 {
		return 0, 0, 0
	}
	n := time.Duration(s.Calls)
	return s.Services / n, s.Database / n, s.Client / n
}

// PostgresReport is what RunPostgres measured.
type PostgresReport struct {
	Config      PostgresConfig
	Deployments []*Deployment
	// Settings are the cluster's durability settings as the server reports them.
	Settings string
	Machine  Machine
}

// RunPostgres measures durable transfers (accounts' Transfer, as payments on
// alice's behalf) and payments (CreatePayment through payments and accounts, 16
// customers) per second on three deployments of the real binaries, in
// alternating rounds: SQLite (the embedded default), PostgreSQL with one replica
// of each service and with two, on a private cluster with fsync, full_page_writes
// and synchronous_commit on, each service as its runtime role after its
// --migrate step. It needs the PostgreSQL server binaries (pgcluster) and the Go
// toolchain (it builds services/accounts and services/payments). Run it from the
// repository root.
func RunPostgres(ctx context.Context, cfg PostgresConfig) (rep *PostgresReport, err error) {
	if cfg.Rounds < 1 || cfg.Duration <= 0 || cfg.Concurrency < 1 || cfg.Warmup < 0 {
		return nil, fmt.Errorf("rounds %d, duration %s, concurrency %d, warmup %s: want rounds, duration and concurrency > 0",
			cfg.Rounds, cfg.Duration, cfg.Concurrency, cfg.Warmup)
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if cfg.Dir == "" {
		dir, err := os.MkdirTemp("", "mtlsbank-benchpg-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		cfg.Dir = dir
	}
	progress := func(format string, args ...any) { fmt.Fprintf(cfg.Progress, "benchpg: "+format+"\n", args...) }
	rep = &PostgresReport{Config: cfg, Machine: describeMachine()}

	if _, err := pgcluster.FindBinDir(); err != nil {
		return nil, err
	}
	progress("building services/accounts and services/payments")
	bin := filepath.Join(cfg.Dir, "bin")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin+"/", "./services/accounts", "./services/payments").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %w: %s", err, out)
	}
	progress("starting a durable PostgreSQL cluster")
	// A directory of its own, which the server's user can reach (Dir may not be).
	cluster, err := pgcluster.Start(ctx, pgcluster.Config{Durable: true, WatchPID: os.Getpid()})
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, cluster.Stop()) }()
	if rep.Settings, err = durabilitySettings(ctx, cluster); err != nil {
		return nil, err
	}
	m, err := newMaterial(pki.ECDSAP256)
	if err != nil {
		return nil, err
	}
	b := &benchBank{cfg: cfg, m: m, bin: bin, cluster: cluster, passfile: filepath.Join(cfg.Dir, "pgpass")}
	defer func() { err = errors.Join(err, b.stop()) }()
	deployments := []struct {
		name     string
		replicas int // 0: SQLite
	}{{"sqlite", 0}, {"postgres x1", 1}, {"postgres x2", 2}}
	var loads []*benchDeployment
	for _, d := range deployments {
		progress("starting %s", d.name)
		bd, err := b.deploy(ctx, d.name, d.replicas)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.name, err)
		}
		loads = append(loads, bd)
		rep.Deployments = append(rep.Deployments, bd.Deployment)
	}
	for _, bd := range loads {
		if cfg.Warmup > 0 {
			for _, load := range []func(context.Context, time.Duration) (PGSample, error){bd.transfers, bd.payments} {
				if _, err := load(ctx, cfg.Warmup); err != nil {
					return nil, fmt.Errorf("%s warm-up: %w", bd.Name, err)
				}
			}
		}
	}
	for r := range cfg.Rounds {
		// Rotate the order every round, so that a drift of the machine's load
		// favours no deployment.
		order := slices.Clone(loads)
		for range r % len(order) {
			order = append(order[1:], order[0])
		}
		for _, bd := range order {
			t, err := bd.transfers(ctx, cfg.Duration)
			if err != nil {
				return nil, fmt.Errorf("%s transfers: %w", bd.Name, err)
			}
			p, err := bd.payments(ctx, cfg.Duration)
			if err != nil {
				return nil, fmt.Errorf("%s payments: %w", bd.Name, err)
			}
			bd.Transfers, bd.Payments = append(bd.Transfers, t), append(bd.Payments, p)
			progress("round %d/%d %-12s transfers %.0f/s, payments %.0f/s%s", r+1, cfg.Rounds, bd.Name, t.Rate(), p.Rate(), pgFailures(t, p))
		}
	}
	rep.Machine.LoadEnd = loadAverage()
	if cfg.Profile != "" {
		if err := profileTransfers(ctx, cfg, loads, progress); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

func pgFailures(samples ...PGSample) string {
	n := 0
	for _, s := range samples {
		n += s.Errors
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d failed calls)", n)
}

// durabilitySettings reads what makes a commit durable, from the server itself.
func durabilitySettings(ctx context.Context, c *pgcluster.Cluster) (string, error) {
	conn, err := pgx.Connect(ctx, c.AdminURL("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var out []string
	for _, name := range []string{"fsync", "synchronous_commit", "full_page_writes", "wal_sync_method"} {
		var v string
		if err := conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
			return "", err
		}
		out = append(out, name+"="+v)
	}
	return strings.Join(out, " "), nil
}

// benchBank starts service processes and their databases.
type benchBank struct {
	cfg      PostgresConfig
	m        *material
	bin      string
	cluster  *pgcluster.Cluster
	passfile string
	roles    []string // lines of passfile
	procs    []*exec.Cmd
	conns    []*grpc.ClientConn
}

// benchDeployment is a deployment with its loads.
type benchDeployment struct {
	*Deployment
	transfers, payments func(context.Context, time.Duration) (PGSample, error)
}

func (b *benchBank) stop() error {
	for _, cc := range b.conns {
		cc.Close()
	}
	var errs []error
	for _, p := range b.procs {
		_ = p.Process.Signal(os.Interrupt)
		if err := p.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.Path, err))
		}
	}
	return errors.Join(errs...)
}

// role creates a login role with a random password in the password file.
func (b *benchBank) role(ctx context.Context) (string, error) {
	name, password := "bench_"+pgcluster.RandomHex(6), pgcluster.RandomHex(16)
	if err := b.cluster.Exec(ctx, "postgres", "CREATE ROLE "+pgx.Identifier{name}.Sanitize()+" LOGIN PASSWORD '"+password+"'"); err != nil {
		return "", err
	}
	b.roles = append(b.roles, strings.Join([]string{pgcluster.Host, strconv.Itoa(b.cluster.Port), "*", name, password}, ":"))
	return name, pki.WriteFileAtomic(b.passfile, []byte(strings.Join(b.roles, "\n")+"\n"), 0o600)
}

// database provisions a database for service (an owner and a runtime role), runs
// the service's migration step as the owner and returns the runtime role's URL.
func (b *benchBank) database(ctx context.Context, service, db string) (string, error) {
	owner, err := b.role(ctx)
	if err != nil {
		return "", err
	}
	runtime, err := b.role(ctx)
	if err != nil {
		return "", err
	}
	for _, st := range migrate.ProvisionSQL(db, owner, runtime) {
		if err := b.cluster.Exec(ctx, "postgres", st); err != nil {
			return "", fmt.Errorf("%s: %w", st, err)
		}
	}
	cmd := exec.CommandContext(ctx, filepath.Join(b.bin, service), "--migrate", "--db", b.cluster.URL(db, owner), "--db-runtime-role", runtime)
	cmd.Env = append(os.Environ(), "PGPASSFILE="+b.passfile)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s --migrate: %w: %s", service, err, out)
	}
	return b.cluster.URL(db, runtime), nil
}

// start runs a service binary with args until stop, its output in a log file of
// the run's directory, and waits until it serves.
func (b *benchBank) start(ctx context.Context, name, service string, args []string) (addr string, pid int, err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", 0, err
	}
	addr = l.Addr().String()
	l.Close()
	leaf, err := b.m.server(map[string]string{"accounts": accountsID, "payments": paymentsID}[service])
	if err != nil {
		return "", 0, err
	}
	dir := filepath.Join(b.cfg.Dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", 0, err
	}
	files, err := b.m.writeFiles(dir, service, leaf)
	if err != nil {
		return "", 0, err
	}
	auditKey := filepath.Join(dir, service+"-audit.key")
	if err := auditlog.WriteKeyPair(auditKey, filepath.Join(dir, service+"-audit.pub")); err != nil {
		return "", 0, err
	}
	log, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		return "", 0, err
	}
	defer log.Close()
	cmd := exec.Command(filepath.Join(b.bin, service), append([]string{"--listen", addr, "--metrics-listen", "127.0.0.1:0",
		"--cert", files.Cert, "--key", files.Key, "--ca", files.CA, "--crl", files.CRL, "--intermediates", "",
		"--crl-state", filepath.Join(dir, "crl-state.json"), "--rate-limit", "0",
		"--audit-key", auditKey, "--audit-file", filepath.Join(dir, "audit.jsonl")}, args...)...)
	cmd.Env = append(withoutBankVars(os.Environ()), "PGPASSFILE="+b.passfile)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return "", 0, err
	}
	b.procs = append(b.procs, cmd)
	teller, err := b.m.client(tellerID)
	if err != nil {
		return "", 0, err
	}
	conns, err := b.dial(teller, addr, map[string]string{"accounts": accountsID, "payments": paymentsID}[service], 1)
	if err != nil {
		return "", 0, err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := healthpb.NewHealthClient(conns[0]).Check(cctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return addr, cmd.Process.Pid, nil
		}
		if time.Now().After(deadline) {
			logText, _ := os.ReadFile(log.Name())
			return "", 0, fmt.Errorf("%s not serving within a minute (%v): %s", name, err, logText)
		}
		select {
		case <-ctx.Done():
			return "", 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// withoutBankVars drops the BANK_* variables of the caller's environment, so that
// only the flags configure the services.
func withoutBankVars(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, "BANK_") })
}

func (b *benchBank) dial(leaf *pki.Leaf, addr, serverID string, n int) ([]*grpc.ClientConn, error) {
	conns, err := dial(b.m, leaf, addr, serverID, n)
	b.conns = append(b.conns, conns...)
	return conns, err
}

// deploy starts a deployment: replicas of each service on PostgreSQL, or with 0
// one of each on SQLite files; funds the accounts its loads use.
func (b *benchBank) deploy(ctx context.Context, name string, replicas int) (*benchDeployment, error) {
	slug := strings.ReplaceAll(name, " ", "")
	accountsDB, paymentsDB := func(int) string { return filepath.Join(b.cfg.Dir, slug, "accounts.db") }, func(int) string { return filepath.Join(b.cfg.Dir, slug, "payments.db") }
	n := max(replicas, 1)
	if replicas > 0 {
		a, err := b.database(ctx, "accounts", slug+"_accounts")
		if err != nil {
			return nil, err
		}
		p, err := b.database(ctx, "payments", slug+"_payments")
		if err != nil {
			return nil, err
		}
		accountsDB, paymentsDB = func(int) string { return a }, func(int) string { return p }
	}
	var accountsAddrs, paymentsAddrs []string
	var pids []int
	for i := range n {
		addr, pid, err := b.start(ctx, fmt.Sprintf("%s-accounts-%d", slug, i), "accounts", []string{"--db", accountsDB(i)})
		if err != nil {
			return nil, err
		}
		accountsAddrs, pids = append(accountsAddrs, addr), append(pids, pid)
	}
	for i := range n {
		addr, pid, err := b.start(ctx, fmt.Sprintf("%s-payments-%d", slug, i), "payments", []string{"--db", paymentsDB(i),
			"--accounts-addr", strings.Join(accountsAddrs, ","), "--accounts-server-name", "localhost",
			"--customer-daily-limit", "EUR:1000000000.00,USD:1000000000.00"})
		if err != nil {
			return nil, err
		}
		paymentsAddrs, pids = append(paymentsAddrs, addr), append(pids, pid)
	}

	// Accounts: alice's 16 (transfers among them) and each paying customer's one,
	// funded by the teller; bob's receives the payments.
	teller, err := b.m.client(tellerID)
	if err != nil {
		return nil, err
	}
	tc, err := b.dial(teller, accountsAddrs[0], accountsID, 1)
	if err != nil {
		return nil, err
	}
	tellerAccounts := accountsv1.NewAccountsServiceClient(tc[0])
	open := func(owner string, fund int64) (string, error) {
		resp, err := tellerAccounts.OpenAccount(ctx, &accountsv1.OpenAccountRequest{Owner: owner, Currency: "EUR"})
		if err != nil {
			return "", fmt.Errorf("open an account for %s: %w", owner, err)
		}
		id := resp.GetAccount().GetId()
		if fund > 0 {
			if _, err := tellerAccounts.Deposit(ctx, &accountsv1.DepositRequest{AccountId: id,
				Amount: &typev1.Money{CurrencyCode: "EUR", MinorUnits: fund}, IdempotencyKey: "fund-" + id}); err != nil {
				return "", fmt.Errorf("fund %s: %w", id, err)
			}
		}
		return id, nil
	}
	var aliceAccounts, customerAccounts []string
	for range fixtureAccounts {
		id, err := open(aliceID, 1e11)
		if err != nil {
			return nil, err
		}
		aliceAccounts = append(aliceAccounts, id)
	}
	customers := make([]string, payingCustomers)
	for i := range customers {
		customers[i] = fmt.Sprintf("spiffe://bank.local/customer/bench-%02d", i)
		id, err := open(customers[i], 1e11)
		if err != nil {
			return nil, err
		}
		customerAccounts = append(customerAccounts, id)
	}
	bobAccount, err := open(bobID, 0)
	if err != nil {
		return nil, err
	}

	// Clients: the payments service's identity on every accounts replica, each
	// customer on every payments replica; worker w uses connection w mod n.
	paymentsLeaf, err := b.m.client(paymentsID)
	if err != nil {
		return nil, err
	}
	var toAccounts []*grpc.ClientConn
	for _, addr := range accountsAddrs {
		conns, err := b.dial(paymentsLeaf, addr, accountsID, 4/n)
		if err != nil {
			return nil, err
		}
		toAccounts = append(toAccounts, conns...)
	}
	toPayments := make([][]*grpc.ClientConn, payingCustomers) // per customer, one per replica
	for i, c := range customers {
		leaf, err := b.m.client(c)
		if err != nil {
			return nil, err
		}
		for _, addr := range paymentsAddrs {
			conns, err := b.dial(leaf, addr, paymentsID, 1)
			if err != nil {
				return nil, err
			}
			toPayments[i] = append(toPayments[i], conns...)
		}
	}

	run := time.Now().UnixNano()
	var seq atomic.Int64
	transfer := func(ctx context.Context, w, i int) error {
		ctx = metadata.AppendToOutgoingContext(ctx, authz.OnBehalfOfKey, aliceID)
		k := len(aliceAccounts)
		resp, err := accountsv1.NewAccountsServiceClient(toAccounts[w%len(toAccounts)]).Transfer(ctx, &accountsv1.TransferRequest{
			FromAccountId:  aliceAccounts[w%k],
			ToAccountId:    aliceAccounts[(w+1+i%(k-1))%k],
			Amount:         &typev1.Money{CurrencyCode: "EUR", MinorUnits: 1},
			IdempotencyKey: fmt.Sprintf("bench-%d-%d", run, seq.Add(1)),
		})
		if err == nil && resp.GetReplayed() {
			err = errors.New("transfer replayed: idempotency keys collided")
		}
		return err
	}
	pay := func(ctx context.Context, w, i int) error {
		c := w % payingCustomers
		conns := toPayments[c]
		resp, err := paymentsv1.NewPaymentsServiceClient(conns[(w/payingCustomers+i)%len(conns)]).CreatePayment(ctx, &paymentsv1.CreatePaymentRequest{
			FromAccountId:  customerAccounts[c],
			ToAccountId:    bobAccount,
			Amount:         &typev1.Money{CurrencyCode: "EUR", MinorUnits: 1},
			IdempotencyKey: fmt.Sprintf("bench-%d-%d", run, seq.Add(1)),
		})
		if err == nil && resp.GetPayment().GetStatus() != paymentsv1.PaymentStatus_PAYMENT_STATUS_COMPLETED {
			err = fmt.Errorf("payment %s is %s", resp.GetPayment().GetId(), resp.GetPayment().GetStatus())
		}
		return err
	}
	measure := func(fn callFunc) func(context.Context, time.Duration) (PGSample, error) {
		return func(ctx context.Context, d time.Duration) (PGSample, error) {
			svc0, db0 := processesCPU(pids), b.databaseCPU(replicas)
			s, err := runLoad(ctx, b.cfg.Concurrency, d, fn)
			return PGSample{Calls: s.calls, Errors: s.errors, Elapsed: s.elapsed, Client: s.cpu,
				Services: processesCPU(pids) - svc0, Database: b.databaseCPU(replicas) - db0}, err
		}
	}
	return &benchDeployment{Deployment: &Deployment{Name: name}, transfers: measure(transfer), payments: measure(pay)}, nil
}

// processesCPU is the CPU the processes have used.
func processesCPU(pids []int) time.Duration {
	var t time.Duration
	for _, pid := range pids {
		t += pgcluster.ProcessCPU(pid)
	}
	return t
}

// databaseCPU is the cluster's CPU for a PostgreSQL deployment, 0 for SQLite.
func (b *benchBank) databaseCPU(replicas int) time.Duration {
	if replicas == 0 {
		return 0
	}
	t, _ := b.cluster.CPU()
	return t
}

// medianRate is the median of the rounds' rates.
func medianRate(samples []PGSample) float64 {
	rates := make([]float64, 0, len(samples))
	for _, s := range samples {
		rates = append(rates, s.Rate())
	}
	slices.Sort(rates)
	if len(rates) == 0 {
		return 0
	}
	return rates[len(rates)/2]
}

// pooled adds the rounds up.
func pooled(samples []PGSample) PGSample {
	var out PGSample
	for _, s := range samples {
		out.Calls += s.Calls
		out.Errors += s.Errors
		out.Elapsed += s.Elapsed
		out.Services += s.Services
		out.Database += s.Database
		out.Client += s.Client
	}
	return out
}

// PGTargetRatio is the goal of issue 12: durable transfers on PostgreSQL at
// least half of SQLite's single process on the same machine.
const PGTargetRatio = 0.5

// Write prints the report: one table, then a target line per PostgreSQL
// deployment (`target pg_transfers_ratio_xN <ratio> >= 0.5 PASS|MISS`).
func (r *PostgresReport) Write(w io.Writer) {
	fmt.Fprintf(w, "\n## Durable writes: SQLite and PostgreSQL (%d rounds of %s, %d callers; %s)\n\n",
		r.Config.Rounds, r.Config.Duration, r.Config.Concurrency, r.Settings)
	fmt.Fprintf(w, "machine: %d CPUs (%s), load average %s at the start, %s at the end\n\n",
		r.Machine.CPUs, r.Machine.CPUModel, r.Machine.LoadStart, r.Machine.LoadEnd)
	fmt.Fprintln(w, "| deployment | transfers/s | ratio | CPU/transfer (services + database + client) | payments/s | ratio | CPU/payment (services + database + client) |")
	fmt.Fprintln(w, "|---|---:|---:|---|---:|---:|---|")
	var base *Deployment
	for _, d := range r.Deployments {
		if d.Name == "sqlite" {
			base = d
		}
	}
	cpu := func(s PGSample) string {
		sv, db, cl := pooled([]PGSample{s}).CPUPerCall()
		return fmt.Sprintf("%d µs (%d + %d + %d)", (sv + db + cl).Microseconds(), sv.Microseconds(), db.Microseconds(), cl.Microseconds())
	}
	ratio := func(d *Deployment, samples func(*Deployment) []PGSample) float64 {
		if base == nil || medianRate(samples(base)) == 0 {
			return 0
		}
		return medianRate(samples(d)) / medianRate(samples(base))
	}
	transfers := func(d *Deployment) []PGSample { return d.Transfers }
	payments := func(d *Deployment) []PGSample { return d.Payments }
	for _, d := range r.Deployments {
		fmt.Fprintf(w, "| %s | %.0f | %.2f | %s | %.0f | %.2f | %s |\n", d.Name,
			medianRate(d.Transfers), ratio(d, transfers), cpu(pooled(d.Transfers)),
			medianRate(d.Payments), ratio(d, payments), cpu(pooled(d.Payments)))
	}
	fmt.Fprintln(w)
	for _, d := range r.Deployments {
		if d == base {
			continue
		}
		got, verdict := ratio(d, transfers), "PASS"
		if got < PGTargetRatio {
			verdict = "MISS"
		}
		fmt.Fprintf(w, "target pg_transfers_ratio_%s %.2f >= %.2f %s\n", strings.TrimPrefix(d.Name, "postgres "), got, PGTargetRatio, verdict)
	}
}
