package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"mtlsbank/internal/ledger"
)

// replicas starts one ledger on each of n stores that share a database, as n
// replicas of the accounts service would run.
func (su suite) replicas(tb testing.TB, n int, opts ...ledger.Option) ([]*ledger.Ledger, []ledger.Store) {
	tb.Helper()
	stores := su.stores.Replicas(tb, n)
	if len(stores) != n {
		tb.Fatalf("Replicas(%d) returned %d stores", n, len(stores))
	}
	ls := make([]*ledger.Ledger, n)
	for i, s := range stores {
		ls[i] = StartLedger(tb, s, opts...)
	}
	return ls, stores
}

// testReplicas runs two ledgers, each with its own committer and connections,
// on one database and has them move money between the same accounts at once,
// each request sent to a random replica, and a share of them sent again under
// the same key to the other replica (a client retrying through the load
// balancer). Afterwards: money is conserved, every balance is the sum of its
// entries, sequences are 1..N without gaps, every acknowledged transfer is
// there exactly once and every retry returned the first outcome, and a Watch
// on either replica reads the same entries in sequence order.
//
// Correctness here comes from the database alone: the ledgers share no
// memory. A store that relied on its own process's single writer would lose
// updates (two replicas reading one balance) or hand out one sequence twice.
func (su suite) testReplicas(t *testing.T) {
	const (
		replicas = 2
		accounts = 6
		workers  = 8
		ops      = 60
	)
	ls, stores := su.replicas(t, replicas)
	ctx := context.Background()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)

	accts := make([]ledger.Account, accounts)
	for i := range accts {
		accts[i] = MustOpen(t, ls[i%replicas], alice, "EUR")
		MustDeposit(t, ls[(i+1)%replicas], accts[i], 10000)
	}

	type sent struct {
		key   string
		from  ledger.AccountID
		to    ledger.AccountID
		minor int64
		id    ledger.TransactionID
		err   error
	}
	results := make([][]sent, workers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			<-start
			for i := range ops {
				from, to := rng.IntN(accounts), rng.IntN(accounts-1)
				if to >= from {
					to++
				}
				req := ledger.TransferRequest{
					FromAccountID: string(accts[from].ID), ToAccountID: string(accts[to].ID),
					Amount: eur(1 + rng.Int64N(3000)), IdempotencyKey: fmt.Sprintf("w%d-%d", w, i),
					Principal: payments, OnBehalfOf: alice,
				}
				r := rng.IntN(replicas)
				tr, err := transferRetrying(ctx, ls[r], req)
				s := sent{key: req.IdempotencyKey, from: accts[from].ID, to: accts[to].ID, minor: req.Amount.Minor, id: tr.ID, err: err}
				results[w] = append(results[w], s)
				if rng.IntN(3) == 0 {
					// The retry through the other replica must return the same outcome.
					again, err2 := transferRetrying(ctx, ls[(r+1)%replicas], req)
					switch {
					case err == nil && (err2 != nil || again.ID != tr.ID || !again.Replayed):
						t.Errorf("%s: first %s, retry on the other replica %s (replayed %v), %v", req.IdempotencyKey, tr.ID, again.ID, again.Replayed, err2)
					case err != nil && (err2 == nil || err2.Error() != err.Error()):
						t.Errorf("%s: first refused with %v, retry on the other replica %v", req.IdempotencyKey, err, err2)
					}
				}
			}
		})
	}
	close(start)
	wg.Wait()

	snap := CheckInvariants(t, stores[0])
	byID := map[ledger.TransactionID][]ledger.Entry{}
	for _, e := range snap.Entries {
		byID[e.TransactionID] = append(byID[e.TransactionID], e)
	}
	var ok, refused int
	for _, rs := range results {
		for _, s := range rs {
			if s.err != nil {
				if !errors.Is(s.err, ledger.ErrInsufficientFunds) {
					t.Errorf("%s: %v, want success or insufficient funds", s.key, s.err)
				}
				refused++
				continue
			}
			ok++
			es := byID[s.id]
			if len(es) != 2 || es[0].AccountID != s.from || es[1].AccountID != s.to || es[1].Amount != s.minor {
				t.Errorf("%s: transaction %s has entries %+v, want %d from %s to %s", s.key, s.id, es, s.minor, s.from, s.to)
			}
			delete(byID, s.id)
		}
	}
	// What is left are the deposits: nothing committed that no caller was told of.
	if len(byID) != accounts {
		t.Errorf("%d transactions besides the acknowledged transfers, want the %d deposits", len(byID), accounts)
	}
	var total int64
	for _, a := range snap.Accounts {
		if !a.System {
			total += a.Balance
		}
	}
	if total != accounts*10000 {
		t.Errorf("customers hold %d, want %d: money was created or destroyed", total, accounts*10000)
	}
	if ok == 0 {
		t.Error("no transfer succeeded")
	}
	t.Logf("%d transfers, %d refused for want of funds, %d entries", ok, refused, len(snap.Entries))

	// A Watch on each replica reads what both wrote, in order.
	for i, l := range ls {
		wctx, cancel := context.WithCancel(ctx)
		c := startWatch(t, wctx, l, 0)
		got := c.waitFor(t, len(snap.Entries))
		cancel()
		for k := range snap.Entries {
			if got[k] != snap.Entries[k] {
				t.Fatalf("replica %d's Watch: entry %d is %+v, want %+v", i, k, got[k], snap.Entries[k])
			}
		}
	}
}

// transferRetrying sends a transfer, again while the ledger says a request
// with the same key is in flight (ErrConcurrentRequest asks for that).
func transferRetrying(ctx context.Context, l *ledger.Ledger, req ledger.TransferRequest) (ledger.Transaction, error) {
	for {
		tr, err := l.Transfer(ctx, req)
		if !errors.Is(err, ledger.ErrConcurrentRequest) {
			return tr, err
		}
	}
}

// testReplicasSupplyCap races deposits through two replicas against a small
// supply cap. The cap check reads the system account inside the deposit's
// transaction; if two replicas could both read the same headroom, customers
// would end up holding more than the cap. Exactly cap/amount deposits succeed.
func (su suite) testReplicasSupplyCap(t *testing.T) {
	const (
		replicas = 2
		deposits = 60
		amount   = 100 // 1.00 EUR
	)
	ls, stores := su.replicas(t, replicas,
		ledger.WithMaxAmount(limits(t, ledger.DefaultMaxAmounts(), "EUR:10.00")),
		ledger.WithMaxSupply(limits(t, ledger.DefaultMaxSupplies(), "EUR:25.00")))
	ctx := context.Background()
	a := MustOpen(t, ls[0], alice, "EUR")
	var wg sync.WaitGroup
	errs := make([]error, deposits)
	start := make(chan struct{})
	for i := range deposits {
		wg.Go(func() {
			<-start
			_, errs[i] = ls[i%replicas].Deposit(ctx, ledger.DepositRequest{AccountID: string(a.ID), Amount: eur(amount),
				IdempotencyKey: fmt.Sprintf("d%d", i), Principal: teller})
		})
	}
	close(start)
	wg.Wait()
	var ok int
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ledger.ErrSupplyLimit):
			t.Errorf("deposit %d: %v, want success or ErrSupplyLimit", i, err)
		}
	}
	if ok != 25 {
		t.Errorf("%d deposits of 1.00 succeeded under a cap of 25.00, want 25", ok)
	}
	CheckInvariants(t, stores[1])
	checkSupply(t, stores[1], "EUR", 2500)
}

// testReplicasWatch watches on one replica while another writes: the watcher
// must get every entry, in sequence order, exactly once, although its own
// ledger committed nothing and so never woke its watchers itself. The store's
// CommitFeed is what tells it; a store without one serves one process only.
func (su suite) testReplicasWatch(t *testing.T) {
	ls, stores := su.replicas(t, 2)
	if _, ok := stores[1].(ledger.CommitFeed); !ok {
		t.Skip("the store has no CommitFeed: one process per database")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := MustOpen(t, ls[0], alice, "EUR")
	b := MustOpen(t, ls[0], bob, "EUR")
	c := startWatch(t, ctx, ls[1], 0)
	for round := range 3 {
		writeSome(t, ls[0], a, b, fmt.Sprintf("r%d", round), 10)
		want := CheckInvariants(t, stores[0]).Entries
		got := c.waitFor(t, len(want))
		if len(got) != len(want) {
			t.Fatalf("round %d: the watcher got %d entries, want %d", round, len(got), len(want))
		}
		for k := range want {
			if got[k] != want[k] {
				t.Fatalf("round %d: entry %d is %+v, want %+v", round, k, got[k], want[k])
			}
		}
	}
}

// testReplicasRaceOnKeys has the stores of two replicas insert the same
// idempotency keys at once, each with an account of its own in the same
// transaction, without reading the key first (the ledger reads it; this is the
// store's last line of defence). Per key exactly one transaction commits; every
// other fails with ErrDuplicateKey (at the insert, or at the commit of a store
// that defers its writes) and leaves nothing behind.
func (su suite) testReplicasRaceOnKeys(t *testing.T) {
	const (
		keys    = 8
		writers = 4 // per store
	)
	stores := su.stores.Replicas(t, 2)
	ctx := context.Background()
	type attempt struct {
		account ledger.AccountID
		err     error
	}
	results := make([][]attempt, keys)
	for k := range results {
		results[k] = make([]attempt, 2*writers)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range 2 * writers {
		wg.Go(func() {
			<-start
			for k := range keys {
				id := ledger.AccountID(fmt.Sprintf("acc_%026d", 1+k*2*writers+w))
				err := stores[w%2].Update(ctx, func(tx ledger.Tx) error {
					a := account(string(id))
					if err := tx.CreateAccount(ctx, a); err != nil {
						return err
					}
					return tx.CreateIdempotency(ctx, ledger.IdempotencyRecord{Principal: "p", Key: fmt.Sprintf("k%d", k),
						Fingerprint: []byte{byte(w)}, RefusalCode: "insufficient_funds", CreatedAt: t0})
				})
				results[k][w] = attempt{account: id, err: err}
			}
		})
	}
	close(start)
	wg.Wait()
	have := TakeSnapshot(t, stores[0]).Accounts
	for k, rs := range results {
		won := 0
		for w, r := range rs {
			switch {
			case r.err == nil:
				won++
				if _, ok := have[r.account]; !ok {
					t.Errorf("key %d: writer %d committed but its account is missing", k, w)
				}
			case errors.Is(r.err, ledger.ErrDuplicateKey):
				if _, ok := have[r.account]; ok {
					t.Errorf("key %d: writer %d failed (%v) but its account exists", k, w, r.err)
				}
			default:
				t.Errorf("key %d: writer %d: %v, want success or ErrDuplicateKey", k, w, r.err)
			}
		}
		if won != 1 {
			t.Errorf("key %d: %d writers committed, want 1", k, won)
		}
	}
}
