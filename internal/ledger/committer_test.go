package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"mtlsbank/internal/ledger"
)

var errDisk = errors.New("injected disk error")

// faultyStore is the real SQLite store with failures injected: SetBalance
// fails for one account, or a whole transaction fails to commit.
type faultyStore struct {
	ledger.Store
	poison      atomic.Value // ledger.AccountID
	panics      atomic.Bool  // SetBalance on poison panics instead of failing
	failCommits atomic.Bool
	// conflicts is how many of the next commits fail with ledger.ErrConflict, as
	// a store that finds a duplicate key only at the commit fails them.
	conflicts atomic.Int64
	updates   atomic.Int64
}

func (f *faultyStore) Update(ctx context.Context, fn func(ledger.Tx) error) error {
	f.updates.Add(1)
	return f.Store.Update(ctx, func(tx ledger.Tx) error {
		if err := fn(faultyTx{Tx: tx, f: f}); err != nil {
			return err
		}
		if f.failCommits.Load() {
			return errDisk // rolls the transaction back, as a failed COMMIT does
		}
		if f.conflicts.Add(-1) >= 0 {
			return fmt.Errorf("injected: %w", ledger.ErrConflict)
		}
		return nil
	})
}

type faultyTx struct {
	ledger.Tx
	f *faultyStore
}

func (t faultyTx) SetBalance(ctx context.Context, id ledger.AccountID, balance int64) error {
	if p, _ := t.f.poison.Load().(ledger.AccountID); p != "" && p == id {
		if t.f.panics.Load() {
			panic("injected bug")
		}
		return errDisk
	}
	return t.Tx.SetBalance(ctx, id, balance)
}

func (t faultyTx) Savepoint(ctx context.Context, fn func(ledger.Tx) error) error {
	return t.Tx.Savepoint(ctx, func(inner ledger.Tx) error { return fn(faultyTx{Tx: inner, f: t.f}) })
}

// TestFailureInOneRequest checks that a storage failure in one request of a
// batch fails only that request: the others commit, and the failure is not
// recorded under the key, so a retry after the fault succeeds.
func TestFailureInOneRequest(t *testing.T) {
	sqlite := openStore(t, t.TempDir()+"/ledger.db")
	f := &faultyStore{Store: sqlite}
	l := startLedger(t, f)
	ctx := context.Background()
	good := []ledger.Account{mustOpen(t, l, alice, "EUR"), mustOpen(t, l, bob, "EUR")}
	poison := mustOpen(t, l, alice, "EUR")
	f.poison.Store(poison.ID)

	const n = 60
	var wg sync.WaitGroup
	errs := make([]error, n)
	deposit := func(i int) error {
		target := good[i%2]
		if i%3 == 0 {
			target = poison
		}
		_, err := l.Deposit(ctx, ledger.DepositRequest{AccountID: string(target.ID), Amount: eur(10),
			IdempotencyKey: fmt.Sprintf("d%d", i), Principal: teller})
		return err
	}
	for i := range n {
		wg.Go(func() { errs[i] = deposit(i) })
	}
	wg.Wait()
	var wantGood int64
	for i, err := range errs {
		switch {
		case i%3 == 0 && !errors.Is(err, errDisk):
			t.Errorf("deposit %d to the failing account: %v, want the storage error", i, err)
		case i%3 == 0 && errors.Is(err, ledger.ErrInvalidArgument):
			t.Errorf("storage error reported as a refusal: %v", err)
		case i%3 != 0 && err != nil:
			t.Errorf("deposit %d to a healthy account: %v", i, err)
		case i%3 != 0:
			wantGood += 10
		}
	}
	if got := balanceOf(t, l, good[0].ID) + balanceOf(t, l, good[1].ID); got != wantGood {
		t.Errorf("healthy accounts hold %d, want %d", got, wantGood)
	}
	if got := balanceOf(t, l, poison.ID); got != 0 {
		t.Errorf("failing account holds %d, want 0", got)
	}
	t.Logf("%d requests in %d transactions", n+3, f.updates.Load())

	f.poison.Store(ledger.AccountID(""))
	for i := 0; i < n; i += 3 {
		if err := deposit(i); err != nil {
			t.Errorf("retry of deposit %d after the fault: %v", i, err)
		}
	}
	if got := balanceOf(t, l, poison.ID); got != 10*n/3 {
		t.Errorf("failing account holds %d after retries, want %d", got, 10*n/3)
	}
	checkInvariants(t, sqlite)
}

// TestCommitFailure checks that a failed commit fails every request of the
// batch and records none of them.
func TestCommitFailure(t *testing.T) {
	sqlite := openStore(t, t.TempDir()+"/ledger.db")
	f := &faultyStore{Store: sqlite}
	l := startLedger(t, f)
	ctx := context.Background()
	a := mustOpen(t, l, alice, "EUR")

	req := ledger.DepositRequest{AccountID: string(a.ID), Amount: eur(10), IdempotencyKey: "k", Principal: teller}
	f.failCommits.Store(true)
	if _, err := l.Deposit(ctx, req); !errors.Is(err, errDisk) {
		t.Fatalf("Deposit with a failing commit: %v, want the storage error", err)
	}
	f.failCommits.Store(false)
	if _, err := l.Deposit(ctx, req); err != nil {
		t.Fatalf("retry after the failed commit: %v", err)
	}
	if got := balanceOf(t, l, a.ID); got != 10 {
		t.Errorf("balance = %d, want 10", got)
	}
	checkInvariants(t, sqlite)
}

// TestPanicInOneRequest checks that a bug that panics inside the committer
// fails that request with an error and leaves the ledger serving.
func TestPanicInOneRequest(t *testing.T) {
	sqlite := openStore(t, t.TempDir()+"/ledger.db")
	f := &faultyStore{Store: sqlite}
	l := startLedger(t, f)
	ctx := context.Background()
	a := mustOpen(t, l, alice, "EUR")
	poison := mustOpen(t, l, bob, "EUR")
	f.panics.Store(true)
	f.poison.Store(poison.ID)

	_, err := l.Deposit(ctx, ledger.DepositRequest{AccountID: string(poison.ID), Amount: eur(1), IdempotencyKey: "p", Principal: teller})
	if err == nil || !strings.Contains(err.Error(), "injected bug") {
		t.Fatalf("Deposit that panics = %v, want an error naming the panic", err)
	}
	mustDeposit(t, l, a, 5)
	if got := balanceOf(t, l, a.ID); got != 5 {
		t.Errorf("balance = %d, want 5", got)
	}
	checkInvariants(t, sqlite)
}

// TestConflictAtCommit checks that a batch whose commit found a row another
// transaction committed first (ErrConflict) runs again in a new transaction,
// so that its requests are decided afresh and none is failed for it; and that
// a batch that keeps conflicting fails at last rather than running forever.
func TestConflictAtCommit(t *testing.T) {
	sqlite := openStore(t, t.TempDir()+"/ledger.db")
	f := &faultyStore{Store: sqlite}
	l := startLedger(t, f)
	ctx := context.Background()
	a := mustOpen(t, l, alice, "EUR")

	f.conflicts.Store(2)
	before := f.updates.Load()
	mustDeposit(t, l, a, 10)
	if got := f.updates.Load() - before; got != 3 {
		t.Errorf("the deposit took %d transactions, want 3 (two conflicts, then the commit)", got)
	}

	f.conflicts.Store(1000)
	_, err := l.Deposit(ctx, ledger.DepositRequest{AccountID: string(a.ID), Amount: eur(5), IdempotencyKey: "again", Principal: teller})
	if !errors.Is(err, ledger.ErrConflict) {
		t.Errorf("Deposit whose commits always conflict = %v, want ErrConflict", err)
	}
	f.conflicts.Store(0)
	if got := balanceOf(t, l, a.ID); got != 10 {
		t.Errorf("balance = %d, want 10", got)
	}
	checkInvariants(t, sqlite)
}
