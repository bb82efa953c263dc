package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"mtlsbank/client/bankctl/cli"
	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	"mtlsbank/internal/pgtest"
)

// EnvChaosDuration sets how long TestChaos loads the bank (a Go duration;
// default 20s, which make test runs; make chaos runs longer). The faults scale
// with it: each service loses a replica once per 10 s of load, at least twice.
const EnvChaosDuration = "BANK_CHAOS_DURATION"

// Chaos settings.
const (
	chaosClients  = 50
	chaosFunding  = 1_000_00 // per account
	chaosAccounts = 3        // per customer
	// chaosAccountsTimeout is payments' --accounts-timeout: a payment leased by a
	// killed payments replica is recovered by the other one after twice this.
	chaosAccountsTimeout = 2 * time.Second
)

// TestChaos is the fault test of the PostgreSQL deployment, with real processes
// and a real database: two accounts and two payments replicas on one PostgreSQL
// cluster of the test's own (payments reaching both accounts replicas), as their
// runtime roles after each --migrate step. 50 clients make payments through the
// payments replicas (customers from their own accounts, the teller from any; the
// accounts service's Transfer is the payments service's alone) and teller
// deposits and withdrawals on the accounts replicas for the load duration, each
// retrying its request under the same idempotency key until it
// gets an answer, while replicas of both services are killed with SIGKILL and
// restarted, several times each, and the PostgreSQL server itself is killed with
// SIGKILL once and restarted. A watcher per accounts replica follows WatchLedger
// throughout, reconnecting to its replica after each restart.
//
// Afterwards: no payment is left PENDING (recovery finishes a killed replica's
// payments once their lease, twice --accounts-timeout, expires); every request
// has its one outcome (each payment exactly once under its creator and key, each
// completed payment and each acknowledged deposit or withdrawal exactly one
// ledger transaction under its key, refused ones none); every balance is its
// funding plus what the acknowledged requests moved (so money is conserved) and no customer balance was ever negative; both watchers
// saw the same gap-free sequence, the whole ledger; and bankctl reconcile exits 0.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the service binaries and a PostgreSQL cluster")
	}
	load := 20 * time.Second
	if v := os.Getenv(EnvChaosDuration); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 5*time.Second {
			t.Fatalf("%s=%q: want a duration of at least 5s", EnvChaosDuration, v)
		}
		load = d
	}
	c := pgtest.NewCluster(t)
	bin := buildBinaries(t)
	bank := newChaosBank(t, c, bin)

	// The customers' accounts, funded by the teller.
	teller := accountsv1.NewAccountsServiceClient(bank.tb.dial(t, "teller", bank.accounts[0].addr, accountsID))
	owned := map[string][]string{}
	var all []string
	for _, owner := range []string{aliceID, bobID} {
		for range chaosAccounts {
			id := openFunded(t, teller, owner, chaosFunding)
			owned[owner] = append(owned[owner], id)
			all = append(all, id)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watchers := make([]*ledgerWatcher, len(bank.accounts))
	var watching sync.WaitGroup
	for i, r := range bank.accounts {
		watchers[i] = &ledgerWatcher{client: accountsv1.NewAccountsServiceClient(bank.tb.dial(t, "auditor", r.addr, accountsID))}
		watching.Go(func() { watchers[i].run(ctx) })
	}

	// The clients, until the load ends and every fault is done.
	load0 := time.Now()
	var stop sync.WaitGroup
	stopping := make(chan struct{})
	results := make([][]*chaosOp, chaosClients)
	payAddrs := bank.addrs(bank.payments)
	payers := map[string]paymentsv1.PaymentsServiceClient{}
	for _, name := range []string{"alice", "bob", "teller"} {
		payers[name] = paymentsv1.NewPaymentsServiceClient(bank.tb.dial(t, name, payAddrs, paymentsID))
	}
	tellerAccounts := accountsv1.NewAccountsServiceClient(bank.tb.dial(t, "teller", bank.addrs(bank.accounts), accountsID))
	for w := range chaosClients {
		rng := rand.New(rand.NewPCG(uint64(w), uint64(load0.UnixNano())))
		stop.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stopping:
					return
				default:
				}
				op := newChaosOp(rng, w, i, owned, all)
				op.do(payers, tellerAccounts, stopping)
				results[w] = append(results[w], op)
			}
		})
	}

	faults := bank.runFaults(t, c, load)
	if left := load - time.Since(load0); left > 0 {
		<-time.After(left) // the rest of the load phase, without faults
	}
	close(stopping)
	stop.Wait()
	loadTime := time.Since(load0)
	pendingAtEnd := 0
	if ps, err := allPayments(context.Background(), payers["teller"]); err == nil {
		for _, p := range ps {
			if p.GetStatus() == paymentsv1.PaymentStatus_PAYMENT_STATUS_PENDING {
				pendingAtEnd++
			}
		}
	}

	// Requests still without an answer (their attempts ran into the end of the
	// load) are retried until answered, now that everything runs.
	var ops []*chaosOp
	unanswered := 0
	for _, rs := range results {
		for _, op := range rs {
			if !op.answered {
				unanswered++
				op.do(payers, tellerAccounts, nil)
			}
			if op.err != nil {
				t.Errorf("%s: %v", op, op.err)
			}
			ops = append(ops, op)
		}
	}
	if t.Failed() {
		return
	}

	// Nothing PENDING once recovery has run: the payments a killed replica held
	// are taken over when its lease (2 x --accounts-timeout) expires.
	tellerPay := payers["teller"]
	payments := settledPayments(t, context.Background(), tellerPay)
	txns := allTransactions(t, accountsv1.NewAccountsServiceClient(bank.tb.dial(t, "auditor", bank.accounts[1].addr, accountsID)))
	checkChaosOutcome(t, ops, payments, txns, all, teller)

	// Every watcher saw the whole ledger, in the same gap-free order.
	var last int64
	for _, tx := range txns {
		for _, e := range tx.GetEntries() {
			last = max(last, e.GetSequence())
		}
	}
	eventually(t, "every watcher reached the last entry", func() error {
		for i, w := range watchers {
			if got := w.last(); got != last {
				return fmt.Errorf("watcher of accounts replica %d at sequence %d, the ledger at %d", i, got, last)
			}
		}
		return nil
	})
	cancel()
	watching.Wait()
	checkWatchers(t, watchers, all)

	auditorCert, auditorKey := bank.tb.pki.WriteLeaf(t, "auditor", bank.tb.clients["auditor"])
	var out bytes.Buffer
	if code := cli.Run(context.Background(), []string{"--cert", auditorCert, "--key", auditorKey, "--ca", bank.tb.caPath,
		"--server-name", "localhost", "--accounts-addr", bank.accounts[0].addr, "--payments-addr", bank.payments[1].addr,
		"reconcile", "--settle", "0"}, &out, &out, nil); code != cli.ExitOK {
		t.Errorf("bankctl reconcile: exit %d\n%s", code, out.String())
	}
	var paid, byTeller, refused, retries, pending int
	for _, op := range ops {
		retries += op.retries
		if op.pending {
			pending++
		}
		switch {
		case op.refused:
			refused++
		case op.kind == opPayment:
			paid++
		default:
			byTeller++
		}
	}
	t.Logf("%s of load by %d clients: %d payments and %d deposits and withdrawals answered OK, %d refused (insufficient funds), %d attempts retried (no outcome: a replica or the database down), %d answered only after the load, %d payments answered \"pending, retry\" at least once and %d PENDING when it ended (all finished); faults (SIGKILL, restart): %s; %d ledger entries watched by each replica's watcher",
		loadTime.Round(time.Second), chaosClients, paid, byTeller, refused, retries, unanswered, pending, pendingAtEnd, strings.Join(faults, ", "), last)
}

// chaosReplica is one service process that the test kills and restarts.
type chaosReplica struct {
	name, bin, addr string
	args, env       []string
	proc            *process
	health          string // the identity the health check dials as
	serverID        string
}

func (r *chaosReplica) start(t *testing.T, tb *testbed) {
	t.Helper()
	r.proc = start(t, r.name, r.bin, r.args, r.env...)
	waitServing(t, r.proc, tb.dial(t, r.health, r.addr, r.serverID))
}

// chaosBank is the deployment under test.
type chaosBank struct {
	tb                 *testbed
	accounts, payments []*chaosReplica
}

// newChaosBank provisions a database and an owner and a runtime role per service
// on c, runs each migration step as the owner, and starts two replicas of each
// service as the runtime roles, passwords from c's password file.
func newChaosBank(t *testing.T, c *pgtest.Cluster, bin binaries) *chaosBank {
	t.Helper()
	b := &chaosBank{tb: newTestbed(t)}
	b.tb.clients["auditor"] = b.tb.pki.Client(t, auditorID)
	passfile := "PGPASSFILE=" + c.PassFile()
	dbs := map[string]string{}
	for _, svc := range []struct{ name, bin string }{{"accounts", bin.accounts}, {"payments", bin.payments}} {
		owner, runtime := c.NewRole(t), c.NewRole(t)
		db := c.Provision(t, owner, runtime)
		m := start(t, svc.name+" --migrate", svc.bin, []string{"--migrate", "--db", withoutPassfile(t, owner.URL(db)),
			"--db-runtime-role", runtime.Name}, passfile)
		m.wait(t)
		if m.err != nil {
			t.Fatalf("%s --migrate: %v\n%s", svc.name, m.err, m.out.String())
		}
		dbs[svc.name] = withoutPassfile(t, runtime.URL(db))
	}
	for i := range 2 {
		addr := freeAddr(t)
		b.accounts = append(b.accounts, &chaosReplica{
			name: fmt.Sprintf("accounts-%d", i), bin: bin.accounts, addr: addr, env: []string{passfile},
			args: append(b.tb.accountsArgs(), "--listen", addr, "--db", dbs["accounts"], "--rate-limit", "0",
				"--crl-state", filepath.Join(b.tb.dir, fmt.Sprintf("accounts-%d.crl-state.json", i)),
				"--audit-file", filepath.Join(b.tb.dir, fmt.Sprintf("accounts-%d.audit.jsonl", i))),
			health: "teller", serverID: accountsID,
		})
	}
	for i := range 2 {
		addr := freeAddr(t)
		args := b.tb.paymentsArgs(addr, 200*time.Millisecond)
		for j, a := range args {
			switch a {
			case "--accounts-addr":
				args[j+1] = b.addrs(b.accounts)
			case "--accounts-timeout":
				args[j+1] = chaosAccountsTimeout.String()
			case "--db":
				args[j+1] = dbs["payments"]
			}
		}
		b.payments = append(b.payments, &chaosReplica{
			name: fmt.Sprintf("payments-%d", i), bin: bin.payments, addr: addr, env: []string{passfile},
			args: append(args, "--customer-daily-limit", "EUR:10000000.00,USD:10000000.00",
				"--crl-state", filepath.Join(b.tb.dir, fmt.Sprintf("payments-%d.crl-state.json", i)),
				"--audit-file", filepath.Join(b.tb.dir, fmt.Sprintf("payments-%d.audit.jsonl", i))),
			health: "teller", serverID: paymentsID,
		})
	}
	for _, r := range append(slices.Clone(b.accounts), b.payments...) {
		r.start(t, b.tb)
	}
	return b
}

// addrs is the comma-separated list of the replicas' addresses.
func (b *chaosBank) addrs(rs []*chaosReplica) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.addr)
	}
	return strings.Join(out, ",")
}

// runFaults kills a random replica of each service in turn with SIGKILL and
// restarts it, at least twice per service and once per 10 s of load, and kills
// the PostgreSQL server once, half-way, spread over the load duration. Each
// victim stays down for half the interval; the next fault comes once it serves
// again. It returns what it did.
func (b *chaosBank) runFaults(t *testing.T, c *pgtest.Cluster, load time.Duration) []string {
	t.Helper()
	perService := max(2, int(load/(10*time.Second)))
	steps := 2*perService + 1
	interval := load / time.Duration(steps+1)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	var done []string
	for step := range steps {
		<-time.After(interval / 2) // the timeline of the scenario, not a synchronisation
		if step == steps/2 {
			c.Kill(t)
			<-time.After(interval / 2)
			c.Restart(t)
			done = append(done, "postgres")
			continue
		}
		group := b.accounts
		if step%2 == 1 {
			group = b.payments
		}
		r := group[rng.IntN(len(group))]
		r.proc.kill(t)
		if !r.proc.killedBySIGKILL() {
			t.Fatalf("%s exited before the kill: %v\n%s", r.name, r.proc.err, r.proc.out.String())
		}
		<-time.After(interval / 2)
		r.start(t, b.tb)
		done = append(done, r.name)
	}
	return done
}

// Kinds of chaosOp.
const (
	opPayment = iota
	opDeposit
	opWithdraw
)

// chaosOp is one client request and the answer it finally got.
type chaosOp struct {
	kind     int
	as       string // the payer's client name (payments)
	creator  string // the payer's SPIFFE ID (payments)
	key      string
	from, to string // to only for a payment; from is a deposit's account
	minor    int64

	answered bool
	retries  int    // attempts answered with no outcome (something down)
	refused  bool   // insufficient funds
	pending  bool   // a payment answered "pending, retry" (another replica's lease, accounts down)
	id       string // the payment, or the deposit's or withdrawal's transaction
	err      error  // an answer that should not have come
}

func (op *chaosOp) String() string {
	kind := []string{"payment", "deposit", "withdrawal"}[op.kind]
	if op.kind == opPayment {
		kind += " by " + op.as
	}
	return fmt.Sprintf("%s %s", kind, op.key)
}

// newChaosOp is client w's request i, of 1.00 to 30.00 EUR: from even clients a
// payment (as alice or bob from one of their accounts, or as the teller from
// any, to another account), from odd ones a deposit or a withdrawal by the
// teller.
func newChaosOp(rng *rand.Rand, w, i int, owned map[string][]string, all []string) *chaosOp {
	op := &chaosOp{minor: int64(1_00 + rng.IntN(30_00)), from: all[rng.IntN(len(all))]}
	if w%2 == 1 {
		op.kind = opDeposit + rng.IntN(2)
		op.key = fmt.Sprintf("chaos-%c-%d-%d", "dw"[op.kind-opDeposit], w, i)
		return op
	}
	op.kind, op.key = opPayment, fmt.Sprintf("chaos-p-%d-%d", w, i)
	op.as = []string{"alice", "bob", "teller"}[rng.IntN(3)]
	op.creator = map[string]string{"alice": aliceID, "bob": bobID, "teller": tellerID}[op.as]
	if accs := owned[op.creator]; accs != nil {
		op.from = accs[rng.IntN(len(accs))]
	}
	op.to = op.from
	for op.to == op.from {
		op.to = all[rng.IntN(len(all))]
	}
	return op
}

// send makes one attempt at the request.
func (op *chaosOp) send(ctx context.Context, payers map[string]paymentsv1.PaymentsServiceClient, teller accountsv1.AccountsServiceClient) error {
	switch op.kind {
	case opPayment:
		resp, err := payers[op.as].CreatePayment(ctx, &paymentsv1.CreatePaymentRequest{
			FromAccountId: op.from, ToAccountId: op.to, Amount: eur(op.minor), IdempotencyKey: op.key})
		op.id = resp.GetPayment().GetId()
		if strings.Contains(status.Convert(err).Message(), " is pending") {
			op.pending = true
		}
		return err
	case opDeposit:
		resp, err := teller.Deposit(ctx, &accountsv1.DepositRequest{AccountId: op.from, Amount: eur(op.minor), IdempotencyKey: op.key})
		op.id = resp.GetTransaction().GetId()
		return err
	default:
		resp, err := teller.Withdraw(ctx, &accountsv1.WithdrawRequest{AccountId: op.from, Amount: eur(op.minor), IdempotencyKey: op.key})
		op.id = resp.GetTransaction().GetId()
		return err
	}
}

// do sends the request, again under the same key after every answer that is not
// an outcome (a replica or the database down), until it gets one; with giveUp
// closed first it stops without one (answered stays false), else it gives up
// after waitTimeout.
func (op *chaosOp) do(payers map[string]paymentsv1.PaymentsServiceClient, teller accountsv1.AccountsServiceClient, giveUp <-chan struct{}) {
	deadline := time.Now().Add(waitTimeout)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := op.send(ctx, payers, teller)
		cancel()
		switch status.Code(err) {
		case codes.OK:
			op.answered = true
			return
		case codes.FailedPrecondition:
			op.answered, op.refused = true, true
			if !strings.Contains(status.Convert(err).Message(), "insufficient funds") {
				op.err = fmt.Errorf("refused: %v", err)
			}
			return
		case codes.Unavailable, codes.DeadlineExceeded, codes.Internal, codes.Unknown, codes.Aborted:
			last = err // a replica or the database is down: the same request again
			op.retries++
		default:
			op.answered, op.err = true, fmt.Errorf("unexpected answer: %v", err)
			return
		}
		select {
		case <-giveUp:
			return
		case <-time.After(50 * time.Millisecond): // a pause before the retry, as a client would
		}
	}
	op.answered, op.err = true, fmt.Errorf("no answer within %v: %v", waitTimeout, last)
}

// allTransactions lists the whole ledger, as the auditor.
func allTransactions(tb testing.TB, c accountsv1.AccountsServiceClient) []*accountsv1.Transaction {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var out []*accountsv1.Transaction
	token := ""
	for {
		resp, err := c.ListTransactions(ctx, &accountsv1.ListTransactionsRequest{PageSize: 500, PageToken: token})
		if err != nil {
			tb.Fatalf("ListTransactions: %v", err)
		}
		out = append(out, resp.GetTransactions()...)
		if token = resp.GetNextPageToken(); token == "" {
			return out
		}
	}
}

// checkChaosOutcome checks that every request has exactly its one outcome in
// both services and that the balances are what those outcomes make them.
func checkChaosOutcome(t *testing.T, ops []*chaosOp, payments []*paymentsv1.Payment, txns []*accountsv1.Transaction,
	accounts []string, teller accountsv1.AccountsServiceClient) {
	t.Helper()
	byKey := map[string][]*accountsv1.Transaction{}
	for _, tx := range txns {
		byKey[tx.GetIdempotencyKey()] = append(byKey[tx.GetIdempotencyKey()], tx)
	}
	type creatorKey struct{ creator, key string }
	paid := map[creatorKey][]*paymentsv1.Payment{}
	for _, p := range payments {
		k := creatorKey{p.GetCreatedBy(), p.GetIdempotencyKey()}
		paid[k] = append(paid[k], p)
	}
	want := map[string]int64{}
	for _, id := range accounts {
		want[id] = chaosFunding
	}
	move := func(from, to string, minor int64) {
		want[from] -= minor
		want[to] += minor
	}
	var paymentOps int
	var outside int64 // deposits less withdrawals
	for _, op := range ops {
		if op.kind != opPayment {
			got := byKey[op.key]
			switch {
			case op.refused && len(got) != 0:
				t.Errorf("%s: refused, but the ledger has %d transactions under its key", op, len(got))
			case !op.refused && (len(got) != 1 || got[0].GetId() != op.id):
				t.Errorf("%s: acknowledged as %s, the ledger has %d transactions under its key", op, op.id, len(got))
			case !op.refused && op.kind == opDeposit:
				want[op.from] += op.minor
				outside += op.minor
			case !op.refused:
				want[op.from] -= op.minor
				outside -= op.minor
			}
			continue
		}
		paymentOps++
		got := paid[creatorKey{op.creator, op.key}]
		if len(got) != 1 {
			t.Errorf("%s: %d payments under its key, want 1", op, len(got))
			continue
		}
		p := got[0]
		if op.id != "" && p.GetId() != op.id {
			t.Errorf("%s: acknowledged as %s, recorded as %s", op, op.id, p.GetId())
		}
		txs := byKey["payment:"+p.GetId()]
		switch p.GetStatus() {
		case paymentsv1.PaymentStatus_PAYMENT_STATUS_COMPLETED:
			if len(txs) != 1 || txs[0].GetId() != p.GetTransactionId() {
				t.Errorf("%s: COMPLETED as %s, the ledger has %d transactions under its key", op, p.GetTransactionId(), len(txs))
			}
			move(op.from, op.to, op.minor)
		case paymentsv1.PaymentStatus_PAYMENT_STATUS_FAILED:
			if len(txs) != 0 {
				t.Errorf("%s: FAILED, but the ledger has %d transactions under its key", op, len(txs))
			}
		default:
			t.Errorf("%s: %s", op, p.GetStatus())
		}
	}
	if len(payments) != paymentOps {
		t.Errorf("%d payments recorded, %d requested", len(payments), paymentOps)
	}
	var total, wantTotal int64
	for _, id := range accounts {
		got := balance(t, teller, id)
		if got != want[id] {
			t.Errorf("account %s: balance %d, the acknowledged requests make it %d", id, got, want[id])
		}
		if got < 0 {
			t.Errorf("account %s: negative balance %d", id, got)
		}
		total += got
		wantTotal += chaosFunding
	}
	if wantTotal += outside; total != wantTotal {
		t.Errorf("customers hold %d together, %d was deposited less withdrawn: money not conserved", total, wantTotal)
	}
}

// ledgerWatcher follows WatchLedger on one accounts replica from the start of
// the ledger, reconnecting to it after each restart from the last entry it got.
type ledgerWatcher struct {
	client accountsv1.AccountsServiceClient

	mu      sync.Mutex
	entries []*accountsv1.LedgerEntry
	errs    []error // entries out of sequence
}

func (w *ledgerWatcher) last() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.entries) == 0 {
		return 0
	}
	return w.entries[len(w.entries)-1].GetSequence()
}

func (w *ledgerWatcher) run(ctx context.Context) {
	for ctx.Err() == nil {
		stream, err := w.client.WatchLedger(ctx, &accountsv1.WatchLedgerRequest{AfterSequence: w.last()})
		for err == nil {
			var resp *accountsv1.WatchLedgerResponse
			if resp, err = stream.Recv(); err == nil {
				w.mu.Lock()
				e := resp.GetEntry()
				if want := int64(len(w.entries)) + 1; e.GetSequence() != want {
					w.errs = append(w.errs, fmt.Errorf("entry %d where %d was due", e.GetSequence(), want))
				}
				w.entries = append(w.entries, e)
				w.mu.Unlock()
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond): // the replica is down: try it again
		}
	}
}

// checkWatchers checks that every watcher saw the same entries, in sequence order
// without a gap or a repeat, and never a negative customer balance.
func checkWatchers(t *testing.T, watchers []*ledgerWatcher, accounts []string) {
	t.Helper()
	for i, w := range watchers {
		for _, err := range w.errs {
			t.Errorf("watcher of accounts replica %d: %v", i, err)
		}
		for _, e := range w.entries {
			if slices.Contains(accounts, e.GetAccountId()) && e.GetBalanceAfter().GetMinorUnits() < 0 {
				t.Errorf("watcher of accounts replica %d: entry %d leaves account %s at %d", i, e.GetSequence(), e.GetAccountId(), e.GetBalanceAfter().GetMinorUnits())
			}
		}
	}
	first := watchers[0].entries
	for i, w := range watchers[1:] {
		if len(w.entries) != len(first) {
			t.Errorf("watcher of accounts replica %d saw %d entries, replica 0's %d", i+1, len(w.entries), len(first))
			continue
		}
		for j, e := range w.entries {
			f := first[j]
			if e.GetSequence() != f.GetSequence() || e.GetTransactionId() != f.GetTransactionId() || e.GetAccountId() != f.GetAccountId() ||
				e.GetAmount().GetMinorUnits() != f.GetAmount().GetMinorUnits() || e.GetBalanceAfter().GetMinorUnits() != f.GetBalanceAfter().GetMinorUnits() {
				t.Errorf("entry %d: replica %d's watcher saw %v, replica 0's %v", j+1, i+1, e, f)
				break
			}
		}
	}
	if len(first) == 0 {
		t.Error("the watchers saw no entry")
	}
}
