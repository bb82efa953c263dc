package sqlitestore

// Attacks on the SQLite store's write transaction (writeset): panics in Update,
// savepoints that become SQL SAVEPOINTs when a listing flushes the writes early,
// failures at the commit after an early flush, and bulk inserts around 64/128 rows.

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"mtlsbank/internal/ledger"
	"mtlsbank/internal/ledger/ledgertest"
)

const idSys = "acc_00000000000000000000000003"

func sysAccount() ledger.Account {
	return ledger.Account{ID: idSys, Currency: "EUR", DisplayName: "external EUR", System: true, CreatedAt: t0}
}

// move is a transaction of amt from debit to credit with the balances after.
func move(id string, first int64, debit, credit ledger.AccountID, amt, debitAfter, creditAfter int64) ledger.Transaction {
	tid := ledger.TransactionID(id)
	return ledger.Transaction{ID: tid, Kind: ledger.KindTransfer, Amount: amt, Currency: "EUR", CreatedAt: t0,
		Principal: "spiffe://bank.local/service/payments",
		Entries: []ledger.Entry{
			{Sequence: first, TransactionID: tid, AccountID: debit, Amount: -amt, Currency: "EUR", BalanceAfter: debitAfter, CreatedAt: t0},
			{Sequence: first + 1, TransactionID: tid, AccountID: credit, Amount: amt, Currency: "EUR", BalanceAfter: creditAfter, CreatedAt: t0},
		}}
}

func mustPanic(t *testing.T, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	f()
}

// writerIdle checks the writer connection is not left inside a transaction: a new
// Update begins, writes and commits.
func writerIdle(t *testing.T, s *Store) {
	t.Helper()
	if n := s.w.Stats().InUse; n != 0 {
		t.Errorf("%d writer connections still in use", n)
	}
	// A connection left in a transaction would refuse BEGIN.
	if err := s.Update(context.Background(), func(tx ledger.Tx) error { return nil }); err != nil {
		t.Fatalf("an Update after the panic: %v", err)
	}
}

// TestAttack6UpdatePanics: fn panics at the top level, inside a savepoint whose writes
// were sent early (a listing made them SQL), and while nested two deep: the writer
// connection must come back out of the transaction, nothing of the panicked Update may
// be committed, and the next Update must work and allocate from the old counter.
func TestAttack6UpdatePanics(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "ledger.db"))
	if err := s.Update(ctx, func(tx ledger.Tx) error {
		if err := tx.CreateAccount(ctx, sysAccount()); err != nil {
			return err
		}
		return tx.CreateAccount(ctx, account(idA))
	}); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(tx ledger.Tx){
		"top level": func(tx ledger.Tx) {
			_ = tx.CreateAccount(ctx, account(idB))
			_ = tx.SetBalance(ctx, idA, 50)
			panic("boom")
		},
		"after an early flush in a savepoint": func(tx ledger.Tx) {
			_ = tx.Savepoint(ctx, func(tx ledger.Tx) error {
				_ = tx.CreateAccount(ctx, account(idB))
				first, _ := tx.AllocateSequences(ctx, 2)
				_ = tx.SetBalance(ctx, idSys, -9)
				_ = tx.SetBalance(ctx, idA, 9)
				_ = tx.CreateTransaction(ctx, move("txn_panic1", first, idSys, idA, 9, -9, 9))
				if _, err := tx.Accounts(ctx, ledger.AccountQuery{Limit: 10}); err != nil {
					t.Errorf("listing: %v", err)
				}
				panic("boom")
			})
		},
		"nested, after flushes at both levels": func(tx ledger.Tx) {
			_ = tx.Savepoint(ctx, func(tx ledger.Tx) error {
				_ = tx.SetBalance(ctx, idA, 1)
				_, _ = tx.EntriesAfter(ctx, 0, 5)
				return tx.Savepoint(ctx, func(tx ledger.Tx) error {
					_ = tx.CreateAccount(ctx, account(idB))
					_, _ = tx.TransactionsAfter(ctx, 0, 5)
					_ = tx.SetBalance(ctx, idB, 3)
					panic("boom")
				})
			})
		},
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			mustPanic(t, func() {
				_ = s.Update(ctx, func(tx ledger.Tx) error { f(tx); return nil })
			})
			writerIdle(t, s)
			snap := ledgertest.CheckInvariants(t, s)
			if _, ok := snap.Accounts[idB]; ok {
				t.Error("the panicked Update's account was committed")
			}
			if a := snap.Accounts[idA]; a.Balance != 0 {
				t.Errorf("the panicked Update's balance was committed: %d", a.Balance)
			}
			if len(snap.Entries) != 0 {
				t.Errorf("the panicked Update's entries were committed: %+v", snap.Entries)
			}
			var first int64
			err := s.Update(ctx, func(tx ledger.Tx) error {
				var err error
				if first, err = tx.AllocateSequences(ctx, 2); err != nil {
					return err
				}
				return errRefused // roll back: the counter stays at 0
			})
			if !errors.Is(err, errRefused) || first != 1 {
				t.Errorf("allocation after the panic: %d, %v (want 1)", first, err)
			}
		})
	}
}

var errRefused = errors.New("refused")

// TestAttack6SavepointsAroundListings nests savepoints, kept and rolled back, some whose
// writes a listing sent early (SQL SAVEPOINT), some not; reads inside must see exactly
// the writes that stand, and the commit must hold exactly those, with sequences
// handed out again after a rollback and no gap.
func TestAttack6SavepointsAroundListings(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "ledger.db"))
	const idC = "acc_00000000000000000000000004"
	key := func(k string) ledger.IdempotencyRecord {
		return ledger.IdempotencyRecord{Principal: "spiffe://bank.local/teller/tina", Key: k, Fingerprint: []byte{1}, CreatedAt: t0}
	}
	check := func(cond bool, format string, args ...any) {
		t.Helper()
		if !cond {
			t.Errorf(format, args...)
		}
	}
	balances := func(tx ledger.Tx) map[ledger.AccountID]int64 {
		t.Helper()
		out := map[ledger.AccountID]int64{}
		for _, sys := range []bool{false, true} {
			as, err := tx.Accounts(ctx, ledger.AccountQuery{Limit: 100, System: sys})
			if err != nil {
				t.Fatalf("listing: %v", err)
			}
			for _, a := range as {
				out[a.ID] = a.Balance
			}
		}
		return out
	}
	entries := func(tx ledger.Tx) int {
		t.Helper()
		es, err := tx.EntriesAfter(ctx, 0, 100)
		if err != nil {
			t.Fatalf("entries: %v", err)
		}
		for i, e := range es {
			check(e.Sequence == int64(i+1), "entry %d has sequence %d", i+1, e.Sequence)
		}
		return len(es)
	}
	err := s.Update(ctx, func(tx ledger.Tx) error {
		for _, a := range []ledger.Account{sysAccount(), account(idA), account(idB)} {
			if err := tx.CreateAccount(ctx, a); err != nil {
				return err
			}
		}
		err := tx.Savepoint(ctx, func(tx ledger.Tx) error { // SP1: kept
			first, _ := tx.AllocateSequences(ctx, 2)
			check(first == 1, "first allocation %d", first)
			_ = tx.SetBalance(ctx, idSys, -10)
			_ = tx.SetBalance(ctx, idA, 10)
			if err := tx.CreateTransaction(ctx, move("txn_1", first, idSys, idA, 10, -10, 10)); err != nil {
				return err
			}
			err := tx.Savepoint(ctx, func(tx ledger.Tx) error { // SP2: rolled back after a flush
				b := balances(tx)
				check(b[idA] == 10 && b[idB] == 0 && b[idSys] == -10, "listing in SP2: %v", b)
				f2, _ := tx.AllocateSequences(ctx, 2)
				check(f2 == 3, "allocation in SP2 %d", f2)
				_ = tx.SetBalance(ctx, idSys, -15)
				_ = tx.SetBalance(ctx, idB, 5)
				if err := tx.CreateTransaction(ctx, move("txn_2", f2, idSys, idB, 5, -15, 5)); err != nil {
					return err
				}
				r := key("K1")
				r.TransactionID = "txn_2"
				if err := tx.CreateIdempotency(ctx, r); err != nil {
					return err
				}
				if err := tx.Savepoint(ctx, func(tx ledger.Tx) error { // SP3: kept, flushes SP2's writes
					check(entries(tx) == 4, "entries in SP3")
					return tx.SetBalance(ctx, idB, 5)
				}); err != nil {
					return err
				}
				check(entries(tx) == 4, "entries in SP2 after SP3")
				return errRefused
			})
			if !errors.Is(err, errRefused) {
				return fmt.Errorf("SP2: %w", err)
			}
			check(entries(tx) == 2, "entries after SP2 rolled back")
			b := balances(tx)
			check(b[idB] == 0 && b[idSys] == -10, "balances after SP2 rolled back: %v", b)
			if a, _, _ := tx.Account(ctx, idB); a.Balance != 0 {
				t.Errorf("Account(B) after SP2 rolled back: %d", a.Balance)
			}
			if _, found, _ := tx.Transaction(ctx, "txn_2"); found {
				t.Error("txn_2 of the rolled-back SP2 is still found")
			}
			if _, found, _ := tx.Idempotency(ctx, "spiffe://bank.local/teller/tina", "K1"); found {
				t.Error("K1 of the rolled-back SP2 is still found")
			}
			f3, _ := tx.AllocateSequences(ctx, 2)
			check(f3 == 3, "allocation after SP2 rolled back %d", f3)
			_ = tx.SetBalance(ctx, idA, 6)
			_ = tx.SetBalance(ctx, idB, 4)
			if err := tx.CreateTransaction(ctx, move("txn_3", f3, idA, idB, 4, 6, 4)); err != nil {
				return err
			}
			r := key("K1")
			r.TransactionID = "txn_3"
			return tx.CreateIdempotency(ctx, r)
		})
		if err != nil {
			return fmt.Errorf("SP1: %w", err)
		}
		// SP4: rolled back after a listing sent its new account.
		err = tx.Savepoint(ctx, func(tx ledger.Tx) error {
			if err := tx.CreateAccount(ctx, account(idC)); err != nil {
				return err
			}
			_ = tx.SetBalance(ctx, idA, 0)
			b := balances(tx)
			check(b[idA] == 0, "listing in SP4: %v", b)
			if _, ok := b[idC]; !ok {
				t.Error("listing in SP4 misses C")
			}
			return errRefused
		})
		check(errors.Is(err, errRefused), "SP4: %v", err)
		// SP5: rolled back in memory only.
		err = tx.Savepoint(ctx, func(tx ledger.Tx) error {
			_ = tx.SetBalance(ctx, idA, 1000)
			_, _ = tx.AllocateSequences(ctx, 7)
			return errRefused
		})
		check(errors.Is(err, errRefused), "SP5: %v", err)
		if _, found, _ := tx.Account(ctx, idC); found {
			t.Error("C of the rolled-back SP4 is still found")
		}
		b := balances(tx)
		_, hasC := b[idC]
		check(b[idA] == 6 && b[idB] == 4 && b[idSys] == -10 && !hasC, "listing at the end: %v", b)
		if a, _, _ := tx.Account(ctx, idA); a.Balance != 6 {
			t.Errorf("Account(A) at the end: %d", a.Balance)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	snap := ledgertest.CheckInvariants(t, s)
	if len(snap.Entries) != 4 || snap.Accounts[idA].Balance != 6 || snap.Accounts[idB].Balance != 4 || snap.Accounts[idSys].Balance != -10 {
		t.Errorf("committed: %d entries, accounts %+v", len(snap.Entries), snap.Accounts)
	}
	if _, ok := snap.Accounts[idC]; ok {
		t.Error("C of the rolled-back SP4 was committed")
	}
	err = s.View(ctx, func(tx ledger.ReadTx) error {
		r, found, err := tx.Idempotency(ctx, "spiffe://bank.local/teller/tina", "K1")
		if err != nil || !found || r.TransactionID != "txn_3" {
			t.Errorf("K1 = %+v, %v, %v; want txn_3", r, found, err)
		}
		if _, found, _ := tx.Transaction(ctx, "txn_2"); found {
			t.Error("txn_2 committed")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var first int64
	if err := s.Update(ctx, func(tx ledger.Tx) error {
		var err error
		first, err = tx.AllocateSequences(ctx, 1)
		return err
	}); err != nil || first != 5 {
		t.Errorf("the next allocation: %d, %v; want 5", first, err)
	}
}

// TestAttack6ErrorAtCommitAfterEarlyFlush: writes sent early by a listing, then a row
// the database refuses at the commit: nothing of the transaction may stay (the early
// rows included), the counter must not move, and the writer must go on.
func TestAttack6ErrorAtCommitAfterEarlyFlush(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "ledger.db"))
	if _, err := s.w.ExecContext(ctx, `CREATE TRIGGER poison BEFORE INSERT ON entries WHEN NEW.amount IN (13, -13)
		BEGIN SELECT RAISE(ABORT, 'poisoned entry'); END`); err != nil {
		t.Fatal(err)
	}
	err := s.Update(ctx, func(tx ledger.Tx) error {
		for _, a := range []ledger.Account{sysAccount(), account(idA), account(idB)} {
			if err := tx.CreateAccount(ctx, a); err != nil {
				return err
			}
		}
		first, _ := tx.AllocateSequences(ctx, 2)
		_ = tx.SetBalance(ctx, idSys, -20)
		_ = tx.SetBalance(ctx, idA, 20)
		if err := tx.CreateTransaction(ctx, move("txn_a", first, idSys, idA, 20, -20, 20)); err != nil {
			return err
		}
		if _, err := tx.EntriesAfter(ctx, 0, 10); err != nil { // sends the writes so far
			return err
		}
		f2, _ := tx.AllocateSequences(ctx, 2)
		_ = tx.SetBalance(ctx, idA, 7)
		_ = tx.SetBalance(ctx, idB, 13)
		return tx.CreateTransaction(ctx, move("txn_b", f2, idA, idB, 13, 7, 13))
	})
	if err == nil {
		t.Fatal("the poisoned Update committed")
	}
	t.Logf("Update: %v", err)
	writerIdle(t, s)
	snap := ledgertest.CheckInvariants(t, s)
	if len(snap.Accounts) != 0 || len(snap.Entries) != 0 {
		t.Errorf("a failed Update left %d accounts, %d entries", len(snap.Accounts), len(snap.Entries))
	}
	var counter int64
	if err := s.r.QueryRowContext(ctx, `SELECT last_sequence FROM entry_sequence`).Scan(&counter); err != nil || counter != 0 {
		t.Errorf("counter %d, %v; want 0", counter, err)
	}
}

// TestAttack6BulkSizes writes n transactions (2n entries) and n idempotency records,
// half transactions and half refusals, in one Update for n around the bulk chunk
// sizes, reads every one back and checks the invariants.
func TestAttack6BulkSizes(t *testing.T) {
	ctx := context.Background()
	for _, n := range []int{1, 2, 31, 32, 33, 63, 64, 65, 96, 127, 128, 129, 191, 192, 255, 256, 257, 300} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			s := open(t, filepath.Join(t.TempDir(), "ledger.db"))
			var txns []ledger.Transaction
			err := s.Update(ctx, func(tx ledger.Tx) error {
				for _, a := range []ledger.Account{sysAccount(), account(idA)} {
					if err := tx.CreateAccount(ctx, a); err != nil {
						return err
					}
				}
				for i := range n {
					err := tx.Savepoint(ctx, func(tx ledger.Tx) error {
						first, err := tx.AllocateSequences(ctx, 2)
						if err != nil {
							return err
						}
						bal := int64(i + 1)
						tr := move(fmt.Sprintf("txn_%04d", i), first, idSys, idA, 1, -bal, bal)
						if err := tx.SetBalance(ctx, idSys, -bal); err != nil {
							return err
						}
						if err := tx.SetBalance(ctx, idA, bal); err != nil {
							return err
						}
						if err := tx.CreateTransaction(ctx, tr); err != nil {
							return err
						}
						txns = append(txns, tr)
						r := ledger.IdempotencyRecord{Principal: "p", Key: fmt.Sprintf("k%d", i), Fingerprint: []byte{byte(i)},
							TransactionID: tr.ID, CreatedAt: t0}
						return tx.CreateIdempotency(ctx, r)
					})
					if err != nil {
						return err
					}
					err = tx.CreateIdempotency(ctx, ledger.IdempotencyRecord{Principal: "p", Key: fmt.Sprintf("r%d", i),
						Fingerprint: []byte{2}, RefusalCode: "insufficient_funds", RefusalField: "f", RefusalDetail: fmt.Sprint(i), CreatedAt: t0})
					if err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			snap := ledgertest.CheckInvariants(t, s)
			if len(snap.Entries) != 2*n || snap.Accounts[idA].Balance != int64(n) {
				t.Fatalf("%d entries, balance %d; want %d, %d", len(snap.Entries), snap.Accounts[idA].Balance, 2*n, n)
			}
			err = s.View(ctx, func(tx ledger.ReadTx) error {
				for i, want := range txns {
					got, found, err := tx.Transaction(ctx, want.ID)
					if err != nil || !found || got.Entries[0].Sequence != want.Entries[0].Sequence || len(got.Entries) != 2 ||
						got.Entries[1].BalanceAfter != want.Entries[1].BalanceAfter {
						t.Errorf("transaction %d: %+v, %v, %v", i, got, found, err)
					}
					r, found, err := tx.Idempotency(ctx, "p", fmt.Sprintf("k%d", i))
					if err != nil || !found || r.TransactionID != want.ID || r.Fingerprint[0] != byte(i) {
						t.Errorf("record k%d: %+v, %v, %v", i, r, found, err)
					}
					r, found, err = tx.Idempotency(ctx, "p", fmt.Sprintf("r%d", i))
					if err != nil || !found || r.RefusalDetail != fmt.Sprint(i) || r.TransactionID != "" {
						t.Errorf("refusal r%d: %+v, %v, %v", i, r, found, err)
					}
				}
				ts, err := tx.TransactionsAfter(ctx, 0, n+5)
				if err != nil || len(ts) != n {
					t.Errorf("TransactionsAfter: %d, %v", len(ts), err)
				}
				for i, kt := range ts {
					if kt.ID != txns[i].ID || kt.IdempotencyKey != fmt.Sprintf("k%d", i) {
						t.Errorf("listed %d: %s %q", i, kt.ID, kt.IdempotencyKey)
						break
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestAttack6BrokenSavepointIgnored: an early flush inside a savepoint fails (a row the
// database refuses); the caller ignores the savepoint's error and returns nil. The
// Update must still fail and write nothing: a broken transaction never commits.
func TestAttack6BrokenSavepointIgnored(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "ledger.db"))
	if _, err := s.w.ExecContext(ctx, `CREATE TRIGGER poison BEFORE INSERT ON entries WHEN NEW.amount IN (13, -13)
		BEGIN SELECT RAISE(ABORT, 'poisoned entry'); END`); err != nil {
		t.Fatal(err)
	}
	var spErr, readErr error
	err := s.Update(ctx, func(tx ledger.Tx) error {
		for _, a := range []ledger.Account{sysAccount(), account(idA)} {
			if err := tx.CreateAccount(ctx, a); err != nil {
				return err
			}
		}
		spErr = tx.Savepoint(ctx, func(tx ledger.Tx) error {
			first, _ := tx.AllocateSequences(ctx, 2)
			_ = tx.SetBalance(ctx, idSys, -13)
			_ = tx.SetBalance(ctx, idA, 13)
			_ = tx.CreateTransaction(ctx, move("txn_p", first, idSys, idA, 13, -13, 13))
			_, err := tx.Accounts(ctx, ledger.AccountQuery{Limit: 5}) // the flush fails
			return err
		})
		_, _, readErr = tx.Account(ctx, idA)
		return nil // ignores it
	})
	if spErr == nil || readErr == nil {
		t.Errorf("savepoint %v, later read %v: want both to fail", spErr, readErr)
	}
	if err == nil {
		t.Fatal("an Update whose transaction broke committed")
	}
	writerIdle(t, s)
	if snap := ledgertest.CheckInvariants(t, s); len(snap.Accounts) != 0 {
		t.Errorf("a broken Update left %d accounts", len(snap.Accounts))
	}
}
