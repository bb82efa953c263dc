package sqlitestore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"mtlsbank/internal/ledger"
	"mtlsbank/internal/ledger/writeset"
)

// TestBulkWrites: a batch's transactions, entries and idempotency records go to SQLite
// in bulk inserts of 1 to 64 rows, n rows as the sum of n's binary digits. Every row of
// batches around each size limit is written once and reads back as it was given; the
// two balances every move set hold the last one; the counter holds the last sequence.
func TestBulkWrites(t *testing.T) {
	ctx := context.Background()
	const principal = "spiffe://bank.local/service/payments"
	for _, n := range []int{1, 2, 3, 63, 64, 65, 127, 128, 129, 200} {
		t.Run(fmt.Sprintf("%d moves", n), func(t *testing.T) {
			s := open(t, filepath.Join(t.TempDir(), "ledger.db"))
			id := func(k int) ledger.TransactionID { return ledger.TransactionID(fmt.Sprintf("txn_%026d", k)) }
			key := func(k int) string { return fmt.Sprintf("key-%d", k) }
			err := s.Update(ctx, func(tx ledger.Tx) error {
				for _, id := range []string{idA, idB} {
					if err := tx.CreateAccount(ctx, account(id)); err != nil {
						return err
					}
				}
				return tx.SetBalance(ctx, idA, 1000)
			})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Update(ctx, func(tx ledger.Tx) error {
				for k := range n {
					first, err := tx.AllocateSequences(ctx, 2)
					if err != nil {
						return err
					}
					tr := ledger.Transaction{ID: id(k), Kind: ledger.KindTransfer, Amount: 1, Currency: "EUR",
						Reference: fmt.Sprintf("ref %d", k), Principal: principal, CreatedAt: t0,
						Entries: []ledger.Entry{
							{Sequence: first, TransactionID: id(k), AccountID: idA, Amount: -1, Currency: "EUR", BalanceAfter: int64(999 - k), CreatedAt: t0},
							{Sequence: first + 1, TransactionID: id(k), AccountID: idB, Amount: 1, Currency: "EUR", BalanceAfter: int64(k + 1), CreatedAt: t0},
						}}
					for _, e := range tr.Entries {
						if err := tx.SetBalance(ctx, e.AccountID, e.BalanceAfter); err != nil {
							return err
						}
					}
					if err := tx.CreateTransaction(ctx, tr); err != nil {
						return err
					}
					rec := ledger.IdempotencyRecord{Principal: principal, Key: key(k), Fingerprint: []byte{byte(k)}, CreatedAt: t0}
					if k%5 == 4 {
						rec.RefusalCode, rec.RefusalField, rec.RefusalDetail = "insufficient_funds", "from_account_id", "detail"
					} else {
						rec.TransactionID = id(k)
					}
					if err := tx.CreateIdempotency(ctx, rec); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatalf("Update of %d moves: %v", n, err)
			}
			err = s.View(ctx, func(tx ledger.ReadTx) error {
				for k := range n {
					tr, found, err := tx.Transaction(ctx, id(k))
					if err != nil || !found {
						return fmt.Errorf("transaction %d: found %v, %v", k, found, err)
					}
					if tr.Reference != fmt.Sprintf("ref %d", k) || len(tr.Entries) != 2 ||
						tr.Entries[0].Sequence != int64(2*k+1) || tr.Entries[1].BalanceAfter != int64(k+1) {
						return fmt.Errorf("transaction %d reads back as %+v", k, tr)
					}
					rec, found, err := tx.Idempotency(ctx, principal, key(k))
					if err != nil || !found {
						return fmt.Errorf("idempotency record %d: found %v, %v", k, found, err)
					}
					if refused := k%5 == 4; refused != (rec.RefusalCode != "") || !refused && rec.TransactionID != id(k) ||
						len(rec.Fingerprint) != 1 || rec.Fingerprint[0] != byte(k) {
						return fmt.Errorf("idempotency record %d reads back as %+v", k, rec)
					}
				}
				entries, err := tx.EntriesAfter(ctx, 0, 1000)
				if err != nil {
					return err
				}
				if len(entries) != 2*n {
					return fmt.Errorf("%d entries, want %d", len(entries), 2*n)
				}
				for i, e := range entries {
					if e.Sequence != int64(i+1) {
						return fmt.Errorf("entry %d has sequence %d", i, e.Sequence)
					}
				}
				for id, want := range map[ledger.AccountID]int64{idA: int64(1000 - n), idB: int64(n)} {
					a, _, err := tx.Account(ctx, id)
					if err != nil {
						return err
					}
					if a.Balance != want {
						return fmt.Errorf("account %s holds %d, want %d", id, a.Balance, want)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			var last int64
			if err := s.w.QueryRowContext(ctx, `SELECT last_sequence FROM entry_sequence WHERE id = 1`).Scan(&last); err != nil {
				t.Fatal(err)
			}
			if last != int64(2*n) {
				t.Errorf("counter row = %d, want %d", last, 2*n)
			}
		})
	}
}

// TestConflictAtSend: a row the transaction did not read, which its writes meet when
// they are sent at the commit (none of the ledger's writes can: it reads every key
// first, under SQLite's write lock; a row written by hand can), fails the commit with
// ledger.ErrConflict, for the ledger to run the batch again, and nothing of the
// transaction is written.
func TestConflictAtSend(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "ledger.db"))
	const principal = "spiffe://bank.local/service/payments"
	if _, err := s.w.ExecContext(ctx, `INSERT INTO idempotency (principal, idem_key, fingerprint, transaction_id,
		refusal_code, refusal_field, refusal_detail, created_at) VALUES (?, 'k', x'00', NULL, 'insufficient_funds', '', '', 0)`, principal); err != nil {
		t.Fatal(err)
	}
	err := s.Update(ctx, func(tx ledger.Tx) error {
		if err := tx.CreateAccount(ctx, account(idA)); err != nil {
			return err
		}
		return tx.CreateIdempotency(ctx, ledger.IdempotencyRecord{Principal: principal, Key: "k", Fingerprint: []byte{1},
			RefusalCode: "insufficient_funds", CreatedAt: t0})
	})
	if !errors.Is(err, ledger.ErrConflict) || !errors.Is(err, ledger.ErrDuplicateKey) {
		t.Fatalf("Update = %v, want ErrConflict and ErrDuplicateKey", err)
	}
	err = s.View(ctx, func(tx ledger.ReadTx) error {
		if _, found, err := tx.Account(ctx, idA); err != nil || found {
			return fmt.Errorf("account of the failed transaction: found %v, %v", found, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestReadMany: the records and accounts a batch reads first come back in a few sized
// statements, each key answered in its place, found or not, and only the accounts that
// exist, for counts around the statements' sizes.
func TestReadMany(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "ledger.db"))
	const principal, other = "spiffe://bank.local/service/payments", "spiffe://bank.local/customer/alice"
	accountID := func(k int) ledger.AccountID { return ledger.AccountID(fmt.Sprintf("acc_%026d", k)) }
	// Every third key of principal is recorded, none of other's: a key is its principal's.
	err := s.Update(ctx, func(tx ledger.Tx) error {
		for k := range 200 {
			if k%3 == 0 {
				if err := tx.CreateIdempotency(ctx, ledger.IdempotencyRecord{Principal: principal, Key: fmt.Sprintf("key-%d", k),
					Fingerprint: []byte{byte(k)}, RefusalCode: "insufficient_funds", CreatedAt: t0}); err != nil {
					return err
				}
			}
			if k%2 == 0 {
				if err := tx.CreateAccount(ctx, account(string(accountID(k)))); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2, 3, 64, 65, 130} {
		t.Run(fmt.Sprintf("%d of each", n), func(t *testing.T) {
			var keys []writeset.Key
			var ids []ledger.AccountID
			for k := range n {
				p := principal
				if k%7 == 6 {
					p = other
				}
				keys = append(keys, writeset.Key{Principal: p, Key: fmt.Sprintf("key-%d", k)})
				ids = append(ids, accountID(k))
			}
			tx, err := s.w.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback() }()
			b := &backend{txn: txn{tx: tx, stmts: &s.ws, cache: new(stmtCache)}, sized: &s.sized}
			recs, accounts, err := b.ReadMany(ctx, keys, ids, []string{"EUR", "USD"})
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != n {
				t.Fatalf("%d records for %d keys", len(recs), n)
			}
			for k, r := range recs {
				want := k%3 == 0 && keys[k].Principal == principal
				if r.Found != want {
					t.Errorf("key %v: found %v, want %v", keys[k], r.Found, want)
				}
				if want && (r.Rec.Principal != principal || r.Rec.Key != keys[k].Key || r.Rec.Fingerprint[0] != byte(k)) {
					t.Errorf("key %v: read %+v", keys[k], r.Rec)
				}
			}
			got := map[ledger.AccountID]bool{}
			for _, a := range accounts {
				got[a.ID] = true
			}
			for k := range n {
				if got[accountID(k)] != (k%2 == 0) {
					t.Errorf("account %d: read %v, want %v", k, got[accountID(k)], k%2 == 0)
				}
			}
			if len(accounts) != (n+1)/2 {
				t.Errorf("%d accounts read, want %d (no system account exists)", len(accounts), (n+1)/2)
			}
		})
	}
}
