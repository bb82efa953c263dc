package ledger_test

// Attacks on the ledger's write path (writeset: writes kept in memory until the
// commit, in-memory savepoints, one balance write per account per batch, bulk
// inserts of 1..64 rows on SQLite), driven through the real ledger on real SQLite
// files.

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	"mtlsbank/internal/ledger"
	"mtlsbank/internal/ledger/sqlitestore"
	"mtlsbank/internal/money"
	"mtlsbank/internal/pgtest"
)

// batchGate makes a set of requests run in one batch of the committer: a "plug"
// request blocks in the ledger's clock (called inside the committer's transaction)
// while the others queue behind it; once they are all queued (seen in the goroutine
// stacks, no sleep) the plug is released, and the committer takes them together.
type batchGate struct {
	armed   atomic.Bool
	mu      sync.Mutex
	blocked chan struct{}
	release chan struct{}
}

func (g *batchGate) clock() time.Time {
	if g.armed.CompareAndSwap(true, false) {
		g.mu.Lock()
		blocked, release := g.blocked, g.release
		g.mu.Unlock()
		close(blocked)
		<-release
	}
	return time.Now()
}

// waitersInDo counts goroutines that have queued a request and wait in
// groupcommit's Committer.Do for its answer.
func waitersInDo() int {
	buf := make([]byte, 64<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("groupcommit.(*Committer[...]).Do(")) && !bytes.Contains(g, []byte(").enqueue(")) {
			n++
		}
	}
	return n
}

// inOneBatch runs plug, then every request of reqs once all are queued behind it.
func (g *batchGate) inOneBatch(t *testing.T, plug func(), reqs []func()) {
	t.Helper()
	g.mu.Lock()
	g.blocked, g.release = make(chan struct{}), make(chan struct{})
	blocked, release := g.blocked, g.release
	g.mu.Unlock()
	g.armed.Store(true)
	plugDone := make(chan struct{})
	go func() { defer close(plugDone); plug() }()
	select {
	case <-blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("the plug request never reached the committer")
	}
	var wg sync.WaitGroup
	for _, r := range reqs {
		wg.Go(r)
	}
	deadline := time.Now().Add(20 * time.Second)
	for waitersInDo() < len(reqs)+1 {
		if time.Now().After(deadline) {
			close(release)
			t.Fatalf("only %d of %d requests queued", waitersInDo()-1, len(reqs))
		}
		runtime.Gosched()
	}
	close(release)
	<-plugDone
	wg.Wait()
}

// spec is a money-moving request that can be sent again (a replay).
type spec struct {
	op        string // deposit, withdraw, transfer, void
	from, to  ledger.AccountID
	amount    money.Amount
	key       string
	principal string
}

func (s spec) run(ctx context.Context, l *ledger.Ledger) (ledger.Transaction, error) {
	switch s.op {
	case "deposit":
		return l.Deposit(ctx, ledger.DepositRequest{AccountID: string(s.to), Amount: s.amount, IdempotencyKey: s.key, Principal: s.principal})
	case "withdraw":
		return l.Withdraw(ctx, ledger.WithdrawRequest{AccountID: string(s.from), Amount: s.amount, IdempotencyKey: s.key, Principal: s.principal})
	case "transfer", "void":
		return l.Transfer(ctx, ledger.TransferRequest{FromAccountID: string(s.from), ToAccountID: string(s.to), Amount: s.amount,
			IdempotencyKey: s.key, Principal: s.principal, Void: s.op == "void"})
	}
	panic("unknown op " + s.op)
}

type outcome struct {
	txn ledger.Transaction
	err error
}

// refusal returns the sentinel of a recorded refusal (or mismatch), nil for a success,
// and ok=false for an error that is neither.
func refusalOf(err error) (error, bool) {
	if err == nil {
		return nil, true
	}
	for _, s := range []error{ledger.ErrInsufficientFunds, ledger.ErrAccountNotFound, ledger.ErrCurrencyMismatch,
		ledger.ErrBalanceOverflow, ledger.ErrSupplyLimit, ledger.ErrTransferVoided, ledger.ErrIdempotencyMismatch} {
		if errors.Is(err, s) {
			return s, true
		}
	}
	return nil, false
}

// sameOutcome reports whether a replay answered what the first request got.
func sameOutcome(first, again outcome) string {
	f, _ := refusalOf(first.err)
	a, _ := refusalOf(again.err)
	switch {
	case first.err == nil && again.err == nil:
		if first.txn.ID != again.txn.ID {
			return fmt.Sprintf("transaction %s, then %s", first.txn.ID, again.txn.ID)
		}
		if !again.txn.Replayed {
			return "the replay moved money again (Replayed not set)"
		}
		if len(again.txn.Entries) != len(first.txn.Entries) || !again.txn.CreatedAt.Equal(first.txn.CreatedAt) {
			return fmt.Sprintf("replayed transaction differs: %+v vs %+v", again.txn, first.txn)
		}
		for i := range first.txn.Entries {
			e1, e2 := first.txn.Entries[i], again.txn.Entries[i]
			if !e1.CreatedAt.Equal(e2.CreatedAt) {
				return fmt.Sprintf("replayed entry %d created at %v, first %v", i, e2.CreatedAt, e1.CreatedAt)
			}
			e1.CreatedAt, e2.CreatedAt = time.Time{}, time.Time{}
			if e1 != e2 {
				return fmt.Sprintf("replayed entry %d differs: %+v vs %+v", i, again.txn.Entries[i], first.txn.Entries[i])
			}
		}
		return ""
	case first.err != nil && again.err != nil && f != nil && f == a:
		return ""
	}
	return fmt.Sprintf("first (%v, %v), replay (%v, %v)", first.txn.ID, first.err, again.txn.ID, again.err)
}

func openExclusive(tb testing.TB, path string, opts ...sqlitestore.Option) *sqlitestore.Store {
	tb.Helper()
	s, err := sqlitestore.Open(context.Background(), path, append([]sqlitestore.Option{sqlitestore.WithExclusive()}, opts...)...)
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func systemCurrencies(tb testing.TB, l *ledger.Ledger) map[string]int {
	tb.Helper()
	sys, err := l.SystemAccounts(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]int{}
	for _, a := range sys {
		out[a.Currency]++
	}
	return out
}

// TestAttack6BigMixedBatch runs ~330 requests in ONE batch (more than 64, 128 and 256
// rows per table): a hot account debited and credited by hundreds of moves (its balance
// written once), refusals in the middle (insufficient funds), mixed currencies (a new
// one whose system account the batch creates), deposits in new currencies that create
// the system account and are then refused (no trace may remain), the same key twice
// (one replays the other), the same key with other fields (mismatch), voids racing
// their transfers. Then: invariants, exactly the answered transactions are in the
// ledger, every answer replays, and the account cache equals the store.
func TestAttack6BigMixedBatch(t *testing.T) {
	testBigMixedBatch(t, openExclusive(t, filepath.Join(t.TempDir(), "ledger.db")), ledger.WithAccountCache(1000))
}

// TestAttack6BigMixedBatchPostgres is the same on PostgreSQL, where the write set also
// prefetches for the batch (BatchReader).
func TestAttack6BigMixedBatchPostgres(t *testing.T) {
	testBigMixedBatch(t, openAnyStore(t, pgtest.NewDatabase(t)))
}

func testBigMixedBatch(t *testing.T, s ledger.Store, opts ...ledger.Option) {
	ctx := context.Background()
	g := &batchGate{}
	var maxSeen atomic.Int64
	l := startLedger(t, s, append(opts, ledger.WithClock(g.clock), ledger.WithMaxBatch(512),
		ledger.WithCommitObserver(func(n int, _ time.Duration) {
			for {
				cur := maxSeen.Load()
				if int64(n) <= cur || maxSeen.CompareAndSwap(cur, int64(n)) {
					return
				}
			}
		}))...)
	hot := mustOpen(t, l, alice, "EUR")
	b := mustOpen(t, l, bob, "EUR")
	c := mustOpen(t, l, bob, "EUR")
	jpy := mustOpen(t, l, alice, "JPY") // JPY has no system account yet
	mustDeposit(t, l, hot, 1000)
	for _, a := range []ledger.Account{hot, b, c} { // cache them
		balanceOf(t, l, a.ID)
	}
	before := checkInvariants(t, s)
	missing := ledger.AccountID("acc_00000000000000000000000077")

	var specs []spec
	add := func(sp spec) { specs = append(specs, sp) }
	for i := range 120 {
		add(spec{op: "withdraw", from: hot.ID, amount: eur(10), key: fmt.Sprintf("wd-%d", i), principal: teller})
	}
	for i := range 40 {
		add(spec{op: "deposit", to: hot.ID, amount: eur(3), key: fmt.Sprintf("dep-%d", i), principal: teller})
	}
	for i := range 60 {
		to := b.ID
		if i%2 == 1 {
			to = c.ID
		}
		add(spec{op: "transfer", from: hot.ID, to: to, amount: eur(5), key: fmt.Sprintf("tr-%d", i), principal: payments})
		add(spec{op: "transfer", from: to, to: hot.ID, amount: eur(2), key: fmt.Sprintf("back-%d", i), principal: payments})
	}
	for i := range 10 {
		add(spec{op: "deposit", to: jpy.ID, amount: money.Amount{Currency: "JPY", Minor: 100}, key: fmt.Sprintf("jpy-%d", i), principal: teller})
	}
	for i := range 5 { // creates the GBP system account, then currency_mismatch
		add(spec{op: "deposit", to: b.ID, amount: money.Amount{Currency: "GBP", Minor: 5}, key: fmt.Sprintf("gbp-%d", i), principal: teller})
	}
	for i := range 5 { // creates the CHF system account, then account_not_found
		add(spec{op: "deposit", to: missing, amount: money.Amount{Currency: "CHF", Minor: 5}, key: fmt.Sprintf("chf-%d", i), principal: teller})
	}
	for i := range 10 { // the same request twice
		sp := spec{op: "transfer", from: hot.ID, to: b.ID, amount: eur(1), key: fmt.Sprintf("dup-%d", i), principal: payments}
		add(sp)
		add(sp)
	}
	for i := range 5 { // the same key, other fields
		sp := spec{op: "deposit", to: c.ID, amount: eur(4), key: fmt.Sprintf("mm-%d", i), principal: teller}
		add(sp)
		sp.amount = eur(6)
		add(sp)
	}
	for i := range 5 { // a transfer and its void
		sp := spec{op: "transfer", from: hot.ID, to: c.ID, amount: eur(1), key: fmt.Sprintf("void-%d", i), principal: payments}
		add(sp)
		sp.op = "void"
		add(sp)
	}
	for i := range 5 { // a refusal, then the same refused request again
		sp := spec{op: "withdraw", from: c.ID, amount: eur(1_000_000), key: fmt.Sprintf("big-%d", i), principal: teller}
		add(sp)
		add(sp)
	}

	outs := make([]outcome, len(specs))
	reqs := make([]func(), len(specs))
	for i, sp := range specs {
		reqs[i] = func() { outs[i].txn, outs[i].err = sp.run(ctx, l) }
	}
	plug := func() { mustDeposit(t, l, c, 1) }
	g.inOneBatch(t, plug, reqs)
	if maxSeen.Load() < int64(len(specs)) {
		t.Fatalf("largest batch %d requests, want the %d in one", maxSeen.Load(), len(specs))
	}
	t.Logf("%d requests in one batch", maxSeen.Load())

	for i, o := range outs {
		if _, ok := refusalOf(o.err); !ok {
			t.Errorf("request %d (%+v): not a recorded outcome: %v", i, specs[i], o.err)
		}
	}
	after := checkInvariants(t, s)

	// Exactly the transactions answered (once each) are new in the ledger.
	answered := map[ledger.TransactionID]bool{}
	fresh := 0
	for _, o := range outs {
		if o.err == nil {
			answered[o.txn.ID] = true
			if !o.txn.Replayed {
				fresh++
			}
		}
	}
	inLedger := map[ledger.TransactionID]int{}
	for _, e := range after.Entries[len(before.Entries):] {
		inLedger[e.TransactionID]++
	}
	delete(inLedger, "") // never
	plugTxns := 0
	for id, n := range inLedger {
		if n != 2 {
			t.Errorf("transaction %s has %d entries", id, n)
		}
		if !answered[id] {
			plugTxns++
		}
	}
	if plugTxns != 1 { // the plug's deposit
		t.Errorf("%d transactions in the ledger that no request was answered with (want the plug's 1)", plugTxns)
	}
	for id := range answered {
		if _, ok := inLedger[id]; !ok {
			t.Errorf("answered transaction %s is not in the ledger", id)
		}
	}
	if fresh != len(answered) {
		t.Errorf("%d answers not Replayed for %d distinct transactions", fresh, len(answered))
	}

	// Pairs in one batch: a duplicate replays, a mismatch is refused, a void and its
	// transfer agree.
	for i := 0; i < len(specs); i++ {
		sp := specs[i]
		if i+1 >= len(specs) || specs[i+1].key != sp.key {
			continue
		}
		o1, o2 := outs[i], outs[i+1]
		switch {
		case strings.HasPrefix(sp.key, "dup-"), strings.HasPrefix(sp.key, "big-"), strings.HasPrefix(sp.key, "void-"):
			// The second of the pair (or the first: they queue in any order) replays
			// the other's outcome; a void that came first refuses both.
			if o1.err == nil && o2.err == nil {
				if o1.txn.ID != o2.txn.ID || o1.txn.Replayed == o2.txn.Replayed {
					t.Errorf("%s: duplicates answered %s/%v and %s/%v", sp.key, o1.txn.ID, o1.txn.Replayed, o2.txn.ID, o2.txn.Replayed)
				}
			} else if r1, _ := refusalOf(o1.err); r1 == nil || !errors.Is(o2.err, r1) {
				t.Errorf("%s: duplicates answered %v and %v", sp.key, o1.err, o2.err)
			}
		case strings.HasPrefix(sp.key, "mm-"):
			m1, m2 := errors.Is(o1.err, ledger.ErrIdempotencyMismatch), errors.Is(o2.err, ledger.ErrIdempotencyMismatch)
			if m1 == m2 {
				t.Errorf("%s: same key, other fields: %v and %v (want exactly one mismatch)", sp.key, o1.err, o2.err)
			}
		}
	}
	for i, sp := range specs {
		switch {
		case strings.HasPrefix(sp.key, "gbp-"):
			wantError(t, outs[i].err, ledger.ErrCurrencyMismatch, "")
		case strings.HasPrefix(sp.key, "chf-"):
			wantError(t, outs[i].err, ledger.ErrAccountNotFound, "")
		case strings.HasPrefix(sp.key, "jpy-"):
			if outs[i].err != nil {
				t.Errorf("%s: %v", sp.key, outs[i].err)
			}
		}
	}

	// Refused deposits that created a system account leave none behind.
	sys := systemCurrencies(t, l)
	if sys["GBP"] != 0 || sys["CHF"] != 0 {
		t.Errorf("system accounts after refused deposits: %v (want no GBP, no CHF)", sys)
	}
	if sys["JPY"] != 1 || sys["EUR"] != 1 {
		t.Errorf("system accounts: %v (want one EUR, one JPY)", sys)
	}

	// The cache answers what the store holds.
	for _, a := range []ledger.Account{hot, b, c, jpy} {
		if got, want := balanceOf(t, l, a.ID), after.Accounts[a.ID].Balance; got != want {
			t.Errorf("account %s: GetAccount %d, store %d", a.ID, got, want)
		}
	}

	// Every answer replays, in new batches, and nothing moves again.
	for i, sp := range specs {
		var again outcome
		again.txn, again.err = sp.run(ctx, l)
		if d := sameOutcome(outs[i], again); d != "" {
			t.Errorf("replay of %s (%s): %s", sp.key, sp.op, d)
		}
	}
	if final := checkInvariants(t, s); len(final.Entries) != len(after.Entries) {
		t.Errorf("replays added %d entries", len(final.Entries)-len(after.Entries))
	}
}

// TestAttack6RefusalAfterSystemAccountCreation: a deposit in a currency without a
// system account creates it inside the request's savepoint and is then refused; alone
// in its batch, and followed in the same batch by a good deposit of that currency.
func TestAttack6RefusalAfterSystemAccountCreation(t *testing.T) {
	testRefusalAfterSystemAccountCreation(t, openStore(t, filepath.Join(t.TempDir(), "ledger.db")))
}

func TestAttack6RefusalAfterSystemAccountCreationPostgres(t *testing.T) {
	testRefusalAfterSystemAccountCreation(t, openAnyStore(t, pgtest.NewDatabase(t)))
}

func testRefusalAfterSystemAccountCreation(t *testing.T, s ledger.Store) {
	ctx := context.Background()
	g := &batchGate{}
	l := startLedger(t, s, ledger.WithClock(g.clock))
	eurAcct := mustOpen(t, l, alice, "EUR")
	gbpAcct := mustOpen(t, l, alice, "GBP")
	gbp := func(n int64) money.Amount { return money.Amount{Currency: "GBP", Minor: n} }

	_, err := l.Deposit(ctx, ledger.DepositRequest{AccountID: string(eurAcct.ID), Amount: gbp(5), IdempotencyKey: "alone", Principal: teller})
	wantError(t, err, ledger.ErrCurrencyMismatch, "")
	if sys := systemCurrencies(t, l); sys["GBP"] != 0 {
		t.Fatalf("a refused deposit left a GBP system account: %v", sys)
	}
	_, err = l.Deposit(ctx, ledger.DepositRequest{AccountID: string(eurAcct.ID), Amount: gbp(5), IdempotencyKey: "alone", Principal: teller})
	wantError(t, err, ledger.ErrCurrencyMismatch, "")

	// refused, good, refused, good in one batch: one GBP system account, its balance
	// the two good deposits.
	var errs [4]error
	reqs := []func(){
		func() {
			_, errs[0] = l.Deposit(ctx, ledger.DepositRequest{AccountID: string(eurAcct.ID), Amount: gbp(7), IdempotencyKey: "r1", Principal: teller})
		},
		func() {
			_, errs[1] = l.Deposit(ctx, ledger.DepositRequest{AccountID: string(gbpAcct.ID), Amount: gbp(11), IdempotencyKey: "g1", Principal: teller})
		},
		func() {
			_, errs[2] = l.Deposit(ctx, ledger.DepositRequest{AccountID: string(eurAcct.ID), Amount: gbp(13), IdempotencyKey: "r2", Principal: teller})
		},
		func() {
			_, errs[3] = l.Deposit(ctx, ledger.DepositRequest{AccountID: string(gbpAcct.ID), Amount: gbp(17), IdempotencyKey: "g2", Principal: teller})
		},
	}
	g.inOneBatch(t, func() { mustDeposit(t, l, eurAcct, 1) }, reqs)
	wantError(t, errs[0], ledger.ErrCurrencyMismatch, "")
	wantError(t, errs[2], ledger.ErrCurrencyMismatch, "")
	if errs[1] != nil || errs[3] != nil {
		t.Fatalf("good GBP deposits: %v, %v", errs[1], errs[3])
	}
	snap := checkInvariants(t, s)
	var n int
	for _, a := range snap.Accounts {
		if a.System && a.Currency == "GBP" {
			n++
			if a.Balance != -28 {
				t.Errorf("GBP system account balance %d, want -28", a.Balance)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d GBP system accounts, want 1", n)
	}
	if got := balanceOf(t, l, gbpAcct.ID); got != 28 {
		t.Errorf("GBP account %d, want 28", got)
	}
}

// poisonTrigger makes SQLite refuse the insert of an entry of 13 minor units: a write
// the database refuses for one request only (as any constraint the write transaction
// does not check itself would, or a full disk for one big row).
const poisonTrigger = `CREATE TRIGGER poison BEFORE INSERT ON entries WHEN NEW.amount IN (13, -13)
	BEGIN SELECT RAISE(ABORT, 'poisoned entry'); END`

func poisonedStore(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ledger.db")
	s, err := sqlitestore.Open(context.Background(), path) // the schema
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(poisonTrigger); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAttack6ErrorAtCommitIsolated: one request in a batch of 21 writes a row the
// database refuses. The rows are sent at the commit, where no request can be blamed:
// the store marks the refusal (ledger.ErrNotWritten) and the committer runs the batch
// again in halves (groupcommit.ErrSplit) until the poisoned request fails alone and
// the other 20 commit, as they did when each insert ran in its own request. (Found by
// the fresh attacker of session 7: every request of the batch failed.) The cache must
// stay coherent either way.
func TestAttack6ErrorAtCommitIsolated(t *testing.T) {
	testErrorAtCommitIsolated(t, openExclusive(t, poisonedStore(t)), ledger.WithAccountCache(100))
}

// TestAttack6ErrorAtCommitIsolatedPostgres is the same on PostgreSQL, whose store
// deferred its writes to the commit before SQLite's did: a trigger raises an exception
// (SQLSTATE P0001) for the poisoned entry.
func TestAttack6ErrorAtCommitIsolatedPostgres(t *testing.T) {
	url := pgtest.NewDatabase(t)
	s := openAnyStore(t, url)
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'poisoned entry'; END $$`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(context.Background(), `CREATE TRIGGER poison BEFORE INSERT ON entries FOR EACH ROW WHEN (NEW.amount IN (13, -13))
		EXECUTE FUNCTION poison()`); err != nil {
		t.Fatal(err)
	}
	testErrorAtCommitIsolated(t, s)
}

func testErrorAtCommitIsolated(t *testing.T, s ledger.Store, opts ...ledger.Option) {
	ctx := context.Background()
	g := &batchGate{}
	l := startLedger(t, s, append([]ledger.Option{ledger.WithClock(g.clock)}, opts...)...)
	a := mustOpen(t, l, alice, "EUR")
	mustDeposit(t, l, a, 100)
	if got := balanceOf(t, l, a.ID); got != 100 { // cached
		t.Fatalf("balance %d", got)
	}

	const innocents = 20
	errs := make([]error, innocents+1)
	var reqs []func()
	for i := range innocents {
		reqs = append(reqs, func() {
			_, errs[i] = l.Deposit(ctx, ledger.DepositRequest{AccountID: string(a.ID), Amount: eur(1),
				IdempotencyKey: fmt.Sprintf("innocent-%d", i), Principal: teller})
		})
	}
	reqs = append(reqs, func() {
		_, errs[innocents] = l.Deposit(ctx, ledger.DepositRequest{AccountID: string(a.ID), Amount: eur(13),
			IdempotencyKey: "poison", Principal: teller})
	})
	g.inOneBatch(t, func() { mustDeposit(t, l, a, 2) }, reqs)

	snap := checkInvariants(t, s)
	if got, want := balanceOf(t, l, a.ID), snap.Accounts[a.ID].Balance; got != want {
		t.Errorf("after the failed batch GetAccount says %d, the store %d", got, want)
	}
	if errs[innocents] == nil {
		t.Errorf("the poisoned deposit succeeded")
	}
	failed := 0
	for i := range innocents {
		if errs[i] != nil {
			failed++
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d innocent deposits in the batch failed with the poisoned one's error (%v); want 0: "+
			"only the request whose write failed may fail", failed, innocents, errs[0])
	}
	// Retries with the same keys move money once.
	for i := range innocents {
		if _, err := l.Deposit(ctx, ledger.DepositRequest{AccountID: string(a.ID), Amount: eur(1),
			IdempotencyKey: fmt.Sprintf("innocent-%d", i), Principal: teller}); err != nil {
			t.Errorf("retry %d: %v", i, err)
		}
	}
	if got := balanceOf(t, l, a.ID); got != 100+2+innocents {
		t.Errorf("balance %d after retries, want %d", got, 100+2+innocents)
	}
	checkInvariants(t, s)
}

// TestAttack6CacheAfterFailedCommit: with the account cache, a batch whose commit fails
// (a poisoned row) must not leave the balances it computed in the cache; the next
// batch on the same accounts computes from the committed ones.
func TestAttack6CacheAfterFailedCommit(t *testing.T) {
	ctx := context.Background()
	s := openExclusive(t, poisonedStore(t))
	l := startLedger(t, s, ledger.WithAccountCache(100), ledger.WithMaxBatch(1))
	a := mustOpen(t, l, alice, "EUR")
	b := mustOpen(t, l, bob, "EUR")
	mustDeposit(t, l, a, 100)
	balanceOf(t, l, a.ID)
	balanceOf(t, l, b.ID)
	_, err := l.Transfer(ctx, ledger.TransferRequest{FromAccountID: string(a.ID), ToAccountID: string(b.ID), Amount: eur(13),
		IdempotencyKey: "poison", Principal: payments})
	if err == nil {
		t.Fatal("poisoned transfer succeeded")
	}
	if ga, gb := balanceOf(t, l, a.ID), balanceOf(t, l, b.ID); ga != 100 || gb != 0 {
		t.Errorf("after a failed commit: a=%d b=%d, want 100 and 0", ga, gb)
	}
	tr, err := l.Transfer(ctx, ledger.TransferRequest{FromAccountID: string(a.ID), ToAccountID: string(b.ID), Amount: eur(40),
		IdempotencyKey: "good", Principal: payments})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Entries[0].BalanceAfter != 60 || tr.Entries[1].BalanceAfter != 40 {
		t.Errorf("entries computed from uncommitted balances: %+v", tr.Entries)
	}
	// The failed key was never recorded: it can run now that nothing poisons it.
	checkInvariants(t, s)
}

// --- durability of outcomes, refusals included, across SIGKILL ---

const attack6ChildEnv = "ATTACK6_DURABILITY_CHILD_DB"

// attack6Spec is the request a durability worker w sends at step i on accts (sorted by
// id, as ListAccounts returns them): the parent rebuilds it from the key alone.
func attack6Spec(accts []ledger.Account, w, i int) spec {
	from, to := accts[(w+i)%len(accts)], accts[(w+i+1)%len(accts)]
	key := fmt.Sprintf("a6-%d-%d", w, i)
	switch i % 4 {
	case 0:
		return spec{op: "deposit", to: to.ID, amount: eur(7), key: key, principal: teller}
	case 1:
		return spec{op: "withdraw", from: from.ID, amount: eur(450), key: key, principal: teller} // often refused
	case 2:
		return spec{op: "transfer", from: from.ID, to: to.ID, amount: eur(300), key: key, principal: payments}
	default:
		return spec{op: "deposit", to: ledger.AccountID("acc_00000000000000000000000077"), amount: money.Amount{Currency: "CHF", Minor: 1},
			key: key, principal: teller} // refused after creating the CHF system account
	}
}

// TestAttack6DurabilityOfOutcomes kills a process writing through the ledger (SIGKILL)
// and checks, on the reopened file, that every answered outcome (successes and
// refusals) replays as answered, moves nothing again, and the ledger is consistent.
func TestAttack6DurabilityOfOutcomes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a subprocess")
	}
	path := filepath.Join(t.TempDir(), "ledger.db")
	func() {
		s, err := sqlitestore.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		l, err := ledger.New(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, owner := range []string{alice, alice, bob, bob} {
			mustDeposit(t, l, mustOpen(t, l, owner, "EUR"), 1000)
		}
		_ = l.Close()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	cmd, sc := startChild(t, "TestAttack6DurabilityChild", attack6ChildEnv, path, time.Minute)

	type ack struct {
		w, i    int
		outcome string
	}
	const killAfter = 400
	var acks []ack
	for sc.Scan() {
		var a ack
		if n, _ := fmt.Sscanf(sc.Text(), "ack %d %d %s", &a.w, &a.i, &a.outcome); n != 3 {
			continue
		}
		acks = append(acks, a)
		if len(acks) == killAfter {
			_ = cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	_ = cmd.Wait()
	if len(acks) < killAfter {
		t.Fatalf("child answered %d requests, want %d", len(acks), killAfter)
	}

	s := openStore(t, path)
	l := startLedger(t, s)
	before := checkInvariants(t, s)
	page, err := l.ListAccounts(context.Background(), ledger.ListAccountsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	refusals := 0
	for _, a := range acks {
		sp := attack6Spec(page.Accounts, a.w, a.i)
		tr, err := sp.run(context.Background(), l)
		got := "ok:" + string(tr.ID)
		if err != nil {
			r, ok := refusalOf(err)
			if !ok {
				t.Errorf("replay of %s: %v", sp.key, err)
				continue
			}
			got = "refused:" + r.Error()
			refusals++
		} else if !tr.Replayed {
			t.Errorf("replay of answered %s moved money again (%s)", sp.key, tr.ID)
		}
		if strings.ReplaceAll(got, " ", "_") != a.outcome {
			t.Errorf("%s answered %s before the kill, replays %s", sp.key, a.outcome, got)
		}
	}
	t.Logf("%d answers replayed after SIGKILL, %d of them refusals", len(acks), refusals)
	if after := checkInvariants(t, s); len(after.Entries) != len(before.Entries) {
		t.Errorf("replays added %d entries", len(after.Entries)-len(before.Entries))
	}
	if sys := systemCurrencies(t, l); sys["CHF"] != 0 {
		t.Errorf("refused CHF deposits left a system account: %v", sys)
	}
}

// TestAttack6DurabilityChild is the process TestAttack6DurabilityOfOutcomes kills.
func TestAttack6DurabilityChild(t *testing.T) {
	path := os.Getenv(attack6ChildEnv)
	if path == "" {
		t.Skip("run by TestAttack6DurabilityOfOutcomes")
	}
	s := openStore(t, path)
	l := startLedger(t, s)
	ctx := context.Background()
	page, err := l.ListAccounts(ctx, ledger.ListAccountsRequest{})
	if err != nil || len(page.Accounts) < 2 {
		t.Fatalf("ListAccounts = %d, %v", len(page.Accounts), err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 5000 {
				sp := attack6Spec(page.Accounts, w, i)
				tr, err := sp.run(ctx, l)
				out := "ok:" + string(tr.ID)
				if err != nil {
					r, ok := refusalOf(err)
					if !ok {
						t.Errorf("%s: %v", sp.key, err)
						return
					}
					out = "refused:" + r.Error()
				}
				mu.Lock()
				_, err = fmt.Fprintf(os.Stdout, "ack %d %d %s\n", w, i, strings.ReplaceAll(out, " ", "_"))
				mu.Unlock()
				if err != nil {
					os.Exit(3)
				}
			}
		})
	}
	wg.Wait()
}

// TestAttack6CacheNeverShowsUncommitted: readers call GetAccount on a hot account all
// along while batches on it commit and one fails at its commit (a poisoned row): no
// reader may ever see a balance the account never had in a committed state.
func TestAttack6CacheNeverShowsUncommitted(t *testing.T) {
	ctx := context.Background()
	g := &batchGate{}
	s := openExclusive(t, poisonedStore(t))
	l := startLedger(t, s, ledger.WithClock(g.clock), ledger.WithAccountCache(100))
	a := mustOpen(t, l, alice, "EUR")
	b := mustOpen(t, l, bob, "EUR")
	mustDeposit(t, l, a, 100)

	done := make(chan struct{})
	var seenMu sync.Mutex
	seen := map[int64]bool{}
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			local := map[int64]bool{}
			defer func() {
				seenMu.Lock()
				for v := range local {
					seen[v] = true
				}
				seenMu.Unlock()
			}()
			for range 1_000_000 { // bounded; ends with done
				select {
				case <-done:
					return
				default:
				}
				acct, err := l.GetAccount(ctx, string(a.ID))
				if err != nil {
					t.Errorf("GetAccount: %v", err)
					return
				}
				local[acct.Balance] = true
				runtime.Gosched()
			}
		})
	}
	plugs := 0
	batch := func(tag string, poison bool) {
		plugs++
		plugKey := fmt.Sprintf("plug-%d", plugs)
		var reqs []func()
		for i := range 30 {
			reqs = append(reqs, func() {
				key := fmt.Sprintf("%s-%d", tag, i)
				if i%3 == 0 {
					_, _ = l.Transfer(ctx, ledger.TransferRequest{FromAccountID: string(a.ID), ToAccountID: string(b.ID), Amount: eur(4),
						IdempotencyKey: key, Principal: payments})
				} else {
					_, _ = l.Deposit(ctx, ledger.DepositRequest{AccountID: string(a.ID), Amount: eur(1), IdempotencyKey: key, Principal: teller})
				}
			})
		}
		if poison {
			reqs = append(reqs, func() {
				_, _ = l.Deposit(ctx, ledger.DepositRequest{AccountID: string(a.ID), Amount: eur(13), IdempotencyKey: tag + "-poison", Principal: teller})
			})
		}
		g.inOneBatch(t, func() {
			_, _ = l.Deposit(ctx, ledger.DepositRequest{AccountID: string(b.ID), Amount: eur(2), IdempotencyKey: plugKey, Principal: teller})
		}, reqs)
	}
	batch("ok1", false)
	batch("bad", true)
	batch("bad", false) // the same keys again, without the poison: they commit now
	batch("ok2", false)
	close(done)
	readers.Wait()

	snap := checkInvariants(t, s)
	committed := map[int64]bool{0: true}
	for _, e := range snap.Entries {
		if e.AccountID == a.ID {
			committed[e.BalanceAfter] = true
		}
	}
	for v := range seen {
		if !committed[v] {
			t.Errorf("a reader saw balance %d, never committed (committed: %v)", v, committed)
		}
	}
	if got := balanceOf(t, l, a.ID); got != snap.Accounts[a.ID].Balance {
		t.Errorf("GetAccount %d, store %d", got, snap.Accounts[a.ID].Balance)
	}
	t.Logf("%d distinct balances seen by readers", len(seen))
}

// TestAttack6SupplyCapInOneBatch: deposits and withdrawals in one batch around the
// max supply: the batch decides each deposit from the system account's balance as its
// earlier requests left it in memory, so customers never hold more than the cap at any
// point of the entry sequence, and the refused deposits replay refused.
func TestAttack6SupplyCapInOneBatch(t *testing.T) {
	ctx := context.Background()
	g := &batchGate{}
	l, s := newLedger(t, ledger.WithClock(g.clock),
		ledger.WithMaxAmount(limits(t, ledger.DefaultMaxAmounts(), "EUR:10.00")),
		ledger.WithMaxSupply(limits(t, ledger.DefaultMaxSupplies(), "EUR:10.00")))
	accts := []ledger.Account{mustOpen(t, l, alice, "EUR"), mustOpen(t, l, bob, "EUR"), mustOpen(t, l, alice, "EUR")}
	mustDeposit(t, l, accts[0], 500)
	var specs []spec
	for i := range 30 {
		specs = append(specs, spec{op: "deposit", to: accts[i%3].ID, amount: eur(100), key: fmt.Sprintf("cap-d-%d", i), principal: teller})
		if i%3 == 0 {
			specs = append(specs, spec{op: "withdraw", from: accts[(i/3)%3].ID, amount: eur(100), key: fmt.Sprintf("cap-w-%d", i), principal: teller})
		}
	}
	outs := make([]outcome, len(specs))
	reqs := make([]func(), len(specs))
	for i, sp := range specs {
		reqs[i] = func() { outs[i].txn, outs[i].err = sp.run(ctx, l) }
	}
	g.inOneBatch(t, func() { mustDeposit(t, l, accts[1], 1) }, reqs)
	refused := 0
	for i, o := range outs {
		if r, ok := refusalOf(o.err); !ok {
			t.Errorf("%s: %v", specs[i].key, o.err)
		} else if r == ledger.ErrSupplyLimit {
			refused++
		}
	}
	if refused == 0 {
		t.Error("no deposit was refused at the cap")
	}
	snap := checkInvariants(t, s)
	for _, e := range snap.Entries {
		if a := snap.Accounts[e.AccountID]; a.System && e.BalanceAfter < -1000 {
			t.Errorf("entry %d: customers hold %d, more than the cap 1000", e.Sequence, -e.BalanceAfter)
		}
	}
	for i, sp := range specs {
		var again outcome
		again.txn, again.err = sp.run(ctx, l)
		if d := sameOutcome(outs[i], again); d != "" {
			t.Errorf("replay of %s: %s", sp.key, d)
		}
	}
}
