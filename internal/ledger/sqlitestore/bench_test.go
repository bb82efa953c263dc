package sqlitestore

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"mtlsbank/internal/ledger"
)

// BenchmarkMove measures the store's share of a transfer as the ledger's
// committer runs it (ledger.runMove): batches of 50 moves in one transaction,
// each reading its idempotency key and, in a savepoint, the two accounts,
// allocating two sequences, setting two balances and inserting the transaction,
// its entries and its key. One op is one move; a batch's commit (an fsync) is
// shared by its 50.
func BenchmarkMove(b *testing.B) {
	ctx := context.Background()
	s := open(b, filepath.Join(b.TempDir(), "ledger.db"))
	const accounts, batch = 16, 50
	ids := make([]ledger.AccountID, accounts)
	err := s.Update(ctx, func(tx ledger.Tx) error {
		for i := range ids {
			a := account(fmt.Sprintf("acc_%026d", i+1))
			a.Balance = 1 << 40
			ids[i] = a.ID
			if err := tx.CreateAccount(ctx, a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	move := func(tx ledger.Tx, k int) error {
		principal, key := "spiffe://bank.local/service/payments", fmt.Sprintf("k%d", k)
		if _, found, err := tx.Idempotency(ctx, principal, key); err != nil || found {
			return fmt.Errorf("idempotency %s: found %v, %v", key, found, err)
		}
		return tx.Savepoint(ctx, func(tx ledger.Tx) error {
			from, _, err := tx.Account(ctx, ids[k%accounts])
			if err != nil {
				return err
			}
			to, _, err := tx.Account(ctx, ids[(k+1)%accounts])
			if err != nil {
				return err
			}
			first, err := tx.AllocateSequences(ctx, 2)
			if err != nil {
				return err
			}
			tid := ledger.TransactionID(fmt.Sprintf("txn_%026d", k))
			tr := ledger.Transaction{ID: tid, Kind: ledger.KindTransfer, Amount: 1, Currency: "EUR", CreatedAt: t0, Principal: principal,
				Entries: []ledger.Entry{
					{Sequence: first, TransactionID: tid, AccountID: from.ID, Amount: -1, Currency: "EUR", BalanceAfter: from.Balance - 1, CreatedAt: t0},
					{Sequence: first + 1, TransactionID: tid, AccountID: to.ID, Amount: 1, Currency: "EUR", BalanceAfter: to.Balance + 1, CreatedAt: t0},
				}}
			for _, e := range tr.Entries {
				if err := tx.SetBalance(ctx, e.AccountID, e.BalanceAfter); err != nil {
					return err
				}
			}
			if err := tx.CreateTransaction(ctx, tr); err != nil {
				return err
			}
			return tx.CreateIdempotency(ctx, ledger.IdempotencyRecord{Principal: principal, Key: key,
				Fingerprint: []byte{1}, TransactionID: tid, CreatedAt: t0})
		})
	}
	b.ReportAllocs()
	k := 0
	for n := b.N; n > 0; n -= batch {
		err := s.Update(ctx, func(tx ledger.Tx) error {
			for range min(n, batch) {
				k++
				if err := move(tx, k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
