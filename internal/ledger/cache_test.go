package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"mtlsbank/internal/ledger"
	"mtlsbank/internal/ledger/ledgertest"
	"mtlsbank/internal/ledger/sqlitestore"
)

// watchedStore is an exclusive SQLite store that counts its read transactions and can
// be told to fail the next transactions: failCommit reports a commit failed after it was
// made durable (an fsync error: nobody can know), failRollback fails one at its commit
// and rolls it back.
type watchedStore struct {
	*sqlitestore.Store
	views        atomic.Int64
	prefetches   atomic.Int64 // Prefetch calls that reached the store's transactions
	failCommit   atomic.Int64 // commits still to report as failed
	failRollback atomic.Int64 // transactions still to roll back at their commit
}

var (
	errCommitUnknown = errors.New("commit reported failed after it was durable")
	errRolledBack    = errors.New("commit failed, rolled back")
)

func (s *watchedStore) View(ctx context.Context, fn func(ledger.ReadTx) error) error {
	s.views.Add(1)
	return s.Store.View(ctx, fn)
}

func (s *watchedStore) Update(ctx context.Context, fn func(ledger.Tx) error) error {
	err := s.Store.Update(ctx, func(tx ledger.Tx) error {
		if err := fn(countingTx{Tx: tx, prefetches: &s.prefetches}); err != nil {
			return err
		}
		if s.failRollback.Add(-1) >= 0 {
			return errRolledBack
		}
		return nil
	})
	if err == nil && s.failCommit.Add(-1) >= 0 {
		return errCommitUnknown
	}
	return err
}

// countingTx is a store's transaction that counts the Prefetch calls it passes on.
type countingTx struct {
	ledger.Tx
	prefetches *atomic.Int64
}

func (t countingTx) Prefetch(ctx context.Context, reads iter.Seq[ledger.Prefetch]) error {
	t.prefetches.Add(1)
	return t.Tx.(ledger.Prefetcher).Prefetch(ctx, reads)
}

// newCachedLedger returns a ledger with the account cache on a watched exclusive store.
func newCachedLedger(tb testing.TB) (*ledger.Ledger, *watchedStore) {
	tb.Helper()
	s, err := sqlitestore.Open(context.Background(), filepath.Join(tb.TempDir(), "ledger.db"), sqlitestore.WithExclusive())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	ws := &watchedStore{Store: s}
	return startLedger(tb, ws, ledger.WithAccountCache(100)), ws
}

// TestAccountCacheReadYourWrites: writers deposit into and transfer into accounts while
// readers read them; a reader never sees a balance older than a write whose answer was
// returned before its read began, nor one no write made. Refused writes (withdrawals of
// too much, whose savepoint rolls back) run in the same batches. In the end every balance
// read equals the store's, and most reads were answered without a read transaction.
func TestAccountCacheReadYourWrites(t *testing.T) {
	l, store := newCachedLedger(t)
	const accounts, writersPerAccount, writes, readers = 4, 2, 60, 4
	funding := mustOpen(t, l, bob, "EUR")
	mustDeposit(t, l, funding, 1_000_000)
	ids := make([]ledger.AccountID, accounts)
	acked := make([]atomic.Int64, accounts)   // writes answered
	started := make([]atomic.Int64, accounts) // writes begun
	for i := range ids {
		ids[i] = mustOpen(t, l, alice, "EUR").ID
	}
	ctx := context.Background()
	var writersDone sync.WaitGroup
	errs := make(chan error, accounts*writersPerAccount+readers)
	for i := range accounts {
		for w := range writersPerAccount {
			writersDone.Go(func() {
				for n := range writes {
					key := fmt.Sprintf("w%d-%d-%d", i, w, n)
					started[i].Add(1)
					var err error
					switch n % 3 {
					case 0:
						_, err = l.Deposit(ctx, ledger.DepositRequest{AccountID: string(ids[i]), Amount: eur(1), IdempotencyKey: key, Principal: teller})
					case 1:
						_, err = l.Transfer(ctx, ledger.TransferRequest{FromAccountID: string(funding.ID), ToAccountID: string(ids[i]), Amount: eur(1), IdempotencyKey: key, Principal: teller})
					default:
						// Refused (more than the account holds): moves nothing.
						_, err = l.Withdraw(ctx, ledger.WithdrawRequest{AccountID: string(ids[i]), Amount: eur(10_000_000), IdempotencyKey: key, Principal: teller})
						if !errors.Is(err, ledger.ErrInsufficientFunds) {
							errs <- fmt.Errorf("withdrawal of too much: %v", err)
							return
						}
						started[i].Add(-1)
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					acked[i].Add(1)
				}
			})
		}
	}
	stop := make(chan struct{})
	var reads atomic.Int64
	var readersDone sync.WaitGroup
	for r := range readers {
		readersDone.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				i := (r + n) % accounts
				floor := acked[i].Load()
				a, err := l.GetAccount(ctx, string(ids[i]))
				ceiling := started[i].Load()
				if err != nil {
					errs <- err
					return
				}
				reads.Add(1)
				if a.Balance < floor || a.Balance > ceiling {
					errs <- fmt.Errorf("account %d read balance %d, want between %d (writes answered before the read) and %d (writes begun)", i, a.Balance, floor, ceiling)
					return
				}
			}
		})
	}
	writersDone.Wait()
	close(stop)
	readersDone.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	snap := ledgertest.CheckInvariants(t, store)
	for i, id := range ids {
		want := int64(writersPerAccount * (writes - writes/3))
		if got := balanceOf(t, l, id); got != want || snap.Accounts[id].Balance != want {
			t.Errorf("account %d: cached %d, stored %d, want %d", i, got, snap.Accounts[id].Balance, want)
		}
	}
	views := store.views.Load()
	t.Logf("%d reads, %d read transactions", reads.Load(), views)
	if views*2 > reads.Load() {
		t.Errorf("%d reads took %d read transactions: the cache answered too few", reads.Load(), views)
	}
}

// TestAccountCacheFailedCommit: a commit reported failed may or may not be durable, so
// the accounts it wrote are read from the store again: both cases are seen as the store
// has them.
func TestAccountCacheFailedCommit(t *testing.T) {
	l, store := newCachedLedger(t)
	a := mustOpen(t, l, alice, "EUR")
	mustDeposit(t, l, a, 100)
	if got := balanceOf(t, l, a.ID); got != 100 {
		t.Fatalf("balance %d, want 100", got)
	}
	views := store.views.Load()
	if got := balanceOf(t, l, a.ID); got != 100 || store.views.Load() != views {
		t.Fatalf("second read: balance %d, %d read transactions; want 100 from the cache", got, store.views.Load()-views)
	}
	store.failCommit.Store(1)
	_, err := l.Deposit(context.Background(), ledger.DepositRequest{AccountID: string(a.ID), Amount: eur(5), IdempotencyKey: "unknown-outcome", Principal: teller})
	if !errors.Is(err, errCommitUnknown) {
		t.Fatalf("deposit with a failed commit: %v", err)
	}
	if got := balanceOf(t, l, a.ID); got != 105 {
		t.Errorf("after a commit reported failed but durable: balance %d, want 105 (the store's)", got)
	}
	store.failRollback.Store(1)
	_, err = l.Deposit(context.Background(), ledger.DepositRequest{AccountID: string(a.ID), Amount: eur(7), IdempotencyKey: "rolled-back", Principal: teller})
	if !errors.Is(err, errRolledBack) {
		t.Fatalf("deposit with a rolled-back commit: %v", err)
	}
	if got := balanceOf(t, l, a.ID); got != 105 {
		t.Errorf("after a commit that failed and rolled back: balance %d, want 105 (the store's)", got)
	}
}

// TestAccountCacheUpdatedByWrites: a write brings the cached account up to date, so the
// next read needs no read transaction, and sees the write.
func TestAccountCacheUpdatedByWrites(t *testing.T) {
	l, store := newCachedLedger(t)
	a, b := mustOpen(t, l, alice, "EUR"), mustOpen(t, l, bob, "EUR")
	mustDeposit(t, l, a, 100)
	balanceOf(t, l, a.ID)
	balanceOf(t, l, b.ID)
	views := store.views.Load()
	if _, err := l.Transfer(context.Background(), ledger.TransferRequest{FromAccountID: string(a.ID), ToAccountID: string(b.ID), Amount: eur(30), IdempotencyKey: "t1", Principal: alice}); err != nil {
		t.Fatal(err)
	}
	if ga, gb := balanceOf(t, l, a.ID), balanceOf(t, l, b.ID); ga != 70 || gb != 30 {
		t.Errorf("after the transfer: %d and %d, want 70 and 30", ga, gb)
	}
	if n := store.views.Load() - views; n != 0 {
		t.Errorf("reads after the write took %d read transactions, want 0", n)
	}
}

// TestAccountCachePrefetches: behind the account cache, a write batch still reads what its
// requests need together (the store's Prefetcher): the cache's transaction passes the
// call on. Before, it hid it, and every request read its record and accounts alone.
func TestAccountCachePrefetches(t *testing.T) {
	l, store := newCachedLedger(t)
	a, b := mustOpen(t, l, alice, "EUR"), mustOpen(t, l, bob, "EUR")
	mustDeposit(t, l, a, 100)
	before := store.prefetches.Load()
	if _, err := l.Transfer(context.Background(), ledger.TransferRequest{FromAccountID: string(a.ID), ToAccountID: string(b.ID), Amount: eur(30), IdempotencyKey: "t1", Principal: alice}); err != nil {
		t.Fatal(err)
	}
	if n := store.prefetches.Load() - before; n != 1 {
		t.Errorf("a transfer made %d Prefetch calls on the store's transaction, want 1", n)
	}
}

// TestAccountCacheNeedsSoleWriter: the cache is refused on a store others may write.
func TestAccountCacheNeedsSoleWriter(t *testing.T) {
	shared := openStore(t, filepath.Join(t.TempDir(), "ledger.db"))
	if _, err := ledger.New(shared, ledger.WithAccountCache(10)); err == nil {
		t.Error("account cache accepted on a store opened without WithExclusive")
	}
	if _, err := ledger.New(shared, ledger.WithAccountCache(-1)); err == nil {
		t.Error("negative account cache size accepted")
	}
	l, err := ledger.New(shared)
	if err != nil {
		t.Fatalf("no cache on a shared store: %v", err)
	}
	l.Close()
}
