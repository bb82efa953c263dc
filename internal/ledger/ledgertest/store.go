package ledgertest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"mtlsbank/internal/ledger"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)

func account(id string) ledger.Account {
	return ledger.Account{ID: ledger.AccountID(id), Owner: "spiffe://bank.local/customer/alice", Currency: "EUR", DisplayName: "a", CreatedAt: t0}
}

const (
	idA = "acc_00000000000000000000000001"
	idB = "acc_00000000000000000000000002"
)

func (su suite) testSavepoint(t *testing.T) {
	s := su.newStore(t)
	ctx := context.Background()
	refused := errors.New("refused")
	err := s.Update(ctx, func(tx ledger.Tx) error {
		if err := tx.CreateAccount(ctx, account(idA)); err != nil {
			return err
		}
		err := tx.Savepoint(ctx, func(tx ledger.Tx) error {
			if err := tx.CreateAccount(ctx, account(idB)); err != nil {
				return err
			}
			if err := tx.SetBalance(ctx, idA, 99); err != nil {
				return err
			}
			// A nested savepoint that succeeds is undone with its parent.
			if err := tx.Savepoint(ctx, func(tx ledger.Tx) error { return tx.SetBalance(ctx, idA, 5) }); err != nil {
				return err
			}
			return refused
		})
		if !errors.Is(err, refused) {
			t.Errorf("Savepoint = %v, want the function's error", err)
		}
		// The transaction carries on after the rolled-back savepoint; a nested
		// savepoint rolled back undoes only its own writes.
		return tx.Savepoint(ctx, func(tx ledger.Tx) error {
			if err := tx.SetBalance(ctx, idA, 7); err != nil {
				return err
			}
			err := tx.Savepoint(ctx, func(tx ledger.Tx) error {
				if err := tx.SetBalance(ctx, idA, 8); err != nil {
					return err
				}
				return refused
			})
			if !errors.Is(err, refused) {
				t.Errorf("nested Savepoint = %v, want the function's error", err)
			}
			if a, _, err := tx.Account(ctx, idA); err != nil || a.Balance != 7 {
				t.Errorf("after a rolled-back nested savepoint: A = %+v, %v; want balance 7", a, err)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.View(ctx, func(tx ledger.ReadTx) error {
		a, found, err := tx.Account(ctx, idA)
		if err != nil || !found || a.Balance != 7 {
			t.Errorf("account A = %+v, %v, %v; want balance 7", a, found, err)
		}
		if _, found, err := tx.Account(ctx, idB); found || err != nil {
			t.Errorf("account B found = %v (%v): the savepoint was not rolled back", found, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testReadsInUpdate: the reads of a write transaction see what it wrote, and
// only what it kept, as a store that answers them from memory must ensure: a
// balance set, a balance refused, an account created, each undone by a
// rolled-back savepoint.
func (su suite) testReadsInUpdate(t *testing.T) {
	s := su.newStore(t)
	ctx := context.Background()
	refused := errors.New("refused")
	system := ledger.Account{ID: "acc_00000000000000000000000009", Currency: "EUR", DisplayName: "external EUR", System: true, CreatedAt: t0}
	if err := s.Update(ctx, func(tx ledger.Tx) error { return tx.CreateAccount(ctx, account(idA)) }); err != nil {
		t.Fatal(err)
	}
	balance := func(tx ledger.ReadTx, want int64, when string) {
		t.Helper()
		if a, found, err := tx.Account(ctx, idA); err != nil || !found || a.Balance != want {
			t.Errorf("%s: A = %+v, %v, %v; want balance %d", when, a, found, err, want)
		}
	}
	err := s.Update(ctx, func(tx ledger.Tx) error {
		balance(tx, 0, "first read")
		if err := tx.SetBalance(ctx, idA, 5); err != nil {
			return err
		}
		balance(tx, 5, "after SetBalance")
		err := tx.Savepoint(ctx, func(tx ledger.Tx) error {
			if err := tx.SetBalance(ctx, idA, 9); err != nil {
				return err
			}
			balance(tx, 9, "inside a savepoint")
			if err := tx.CreateAccount(ctx, system); err != nil {
				return err
			}
			if a, found, err := tx.SystemAccount(ctx, "EUR"); err != nil || !found || a != system {
				t.Errorf("inside a savepoint: system account = %+v, %v, %v; want the one created", a, found, err)
			}
			return refused
		})
		if !errors.Is(err, refused) {
			t.Errorf("Savepoint = %v, want the function's error", err)
		}
		balance(tx, 5, "after a rolled-back savepoint")
		if a, found, err := tx.SystemAccount(ctx, "EUR"); err != nil || found {
			t.Errorf("after a rolled-back savepoint: system account = %+v, %v, %v; want none", a, found, err)
		}
		if _, found, err := tx.Account(ctx, system.ID); err != nil || found {
			t.Errorf("after a rolled-back savepoint: account %s found = %v, %v", system.ID, found, err)
		}
		err = tx.Savepoint(ctx, func(tx ledger.Tx) error { return tx.SetBalance(ctx, idA, -1) })
		if err == nil {
			t.Error("SetBalance of a customer account to -1 succeeded")
		}
		balance(tx, 5, "after a refused SetBalance")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.View(ctx, func(tx ledger.ReadTx) error {
		balance(tx, 5, "committed")
		return nil
	})
}

func (su suite) testUpdateRollsBack(t *testing.T) {
	s := su.newStore(t)
	ctx := context.Background()
	refused := errors.New("refused")
	err := s.Update(ctx, func(tx ledger.Tx) error {
		if err := tx.CreateAccount(ctx, account(idA)); err != nil {
			return err
		}
		return refused
	})
	if !errors.Is(err, refused) {
		t.Fatalf("Update = %v, want the function's error", err)
	}
	_ = s.View(ctx, func(tx ledger.ReadTx) error {
		if _, found, err := tx.Account(ctx, idA); found || err != nil {
			t.Errorf("account found = %v (%v) after a rolled-back Update", found, err)
		}
		return nil
	})
}

func (su suite) testDuplicateKey(t *testing.T) {
	s := su.newStore(t)
	ctx := context.Background()
	rec := ledger.IdempotencyRecord{Principal: "p", Key: "k", Fingerprint: []byte{1}, RefusalCode: "insufficient_funds", CreatedAt: t0}
	err := s.Update(ctx, func(tx ledger.Tx) error {
		if err := tx.CreateIdempotency(ctx, rec); err != nil {
			return err
		}
		err := tx.Savepoint(ctx, func(tx ledger.Tx) error { return tx.CreateIdempotency(ctx, rec) })
		if !errors.Is(err, ledger.ErrDuplicateKey) {
			t.Errorf("second CreateIdempotency = %v, want ErrDuplicateKey", err)
		}
		err = tx.Savepoint(ctx, func(tx ledger.Tx) error { return tx.CreateAccount(ctx, account(idA)) })
		if err != nil {
			return err
		}
		err = tx.Savepoint(ctx, func(tx ledger.Tx) error { return tx.CreateAccount(ctx, account(idA)) })
		if !errors.Is(err, ledger.ErrDuplicateKey) {
			t.Errorf("second CreateAccount = %v, want ErrDuplicateKey", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.View(ctx, func(tx ledger.ReadTx) error {
		got, found, err := tx.Idempotency(ctx, "p", "k")
		if err != nil || !found || got.RefusalCode != rec.RefusalCode || !got.CreatedAt.Equal(t0) {
			t.Errorf("Idempotency = %+v, %v, %v", got, found, err)
		}
		return nil
	})
}

// testDuplicateOfCommitted inserts a key that another transaction committed:
// the store refuses it at the insert or, if it defers writes, at the commit;
// either way Update fails with ErrDuplicateKey and nothing of it is written.
func (su suite) testDuplicateOfCommitted(t *testing.T) {
	s := su.newStore(t)
	ctx := context.Background()
	rec := ledger.IdempotencyRecord{Principal: "p", Key: "k", Fingerprint: []byte{1}, RefusalCode: "insufficient_funds", CreatedAt: t0}
	if err := s.Update(ctx, func(tx ledger.Tx) error { return tx.CreateIdempotency(ctx, rec) }); err != nil {
		t.Fatal(err)
	}
	other := rec
	other.Fingerprint, other.RefusalCode = []byte{2}, "account_not_found"
	err := s.Update(ctx, func(tx ledger.Tx) error {
		if err := tx.CreateAccount(ctx, account(idA)); err != nil {
			return err
		}
		return tx.Savepoint(ctx, func(tx ledger.Tx) error { return tx.CreateIdempotency(ctx, other) })
	})
	if !errors.Is(err, ledger.ErrDuplicateKey) {
		t.Fatalf("Update inserting a committed key = %v, want ErrDuplicateKey", err)
	}
	_ = s.View(ctx, func(tx ledger.ReadTx) error {
		if _, found, err := tx.Account(ctx, idA); found || err != nil {
			t.Errorf("account found = %v (%v): the failed Update was not undone", found, err)
		}
		got, found, err := tx.Idempotency(ctx, "p", "k")
		if err != nil || !found || got.RefusalCode != rec.RefusalCode {
			t.Errorf("Idempotency = %+v, %v, %v; want the first record", got, found, err)
		}
		return nil
	})
}

// testSavepointAroundReads runs savepoints around listings, reads that a store
// deferring its writes must send them before: the savepoint's writes are then
// on the server, and rolling it back must still undo them, and only them.
func (su suite) testSavepointAroundReads(t *testing.T) {
	s := su.newStore(t)
	ctx := context.Background()
	refused := errors.New("refused")
	const idC = "acc_00000000000000000000000003"
	ids := func(tx ledger.ReadTx) []ledger.AccountID {
		t.Helper()
		accts, err := tx.Accounts(ctx, ledger.AccountQuery{Owner: account(idA).Owner, Limit: 10})
		if err != nil {
			t.Fatalf("Accounts: %v", err)
		}
		var out []ledger.AccountID
		for _, a := range accts {
			out = append(out, a.ID)
		}
		return out
	}
	err := s.Update(ctx, func(tx ledger.Tx) error {
		if err := tx.CreateAccount(ctx, account(idA)); err != nil {
			return err
		}
		err := tx.Savepoint(ctx, func(tx ledger.Tx) error {
			if err := tx.CreateAccount(ctx, account(idB)); err != nil {
				return err
			}
			if err := tx.SetBalance(ctx, idA, 5); err != nil {
				return err
			}
			if got := ids(tx); !slices.Equal(got, []ledger.AccountID{idA, idB}) {
				t.Errorf("inside the savepoint: accounts %v, want A and B", got)
			}
			// Written after the read, so after the writes went to the server.
			if err := tx.SetBalance(ctx, idB, 3); err != nil {
				return err
			}
			return refused
		})
		if !errors.Is(err, refused) {
			t.Errorf("Savepoint = %v, want the function's error", err)
		}
		if got := ids(tx); !slices.Equal(got, []ledger.AccountID{idA}) {
			t.Errorf("after the rolled-back savepoint: accounts %v, want A", got)
		}
		if a, _, err := tx.Account(ctx, idA); err != nil || a.Balance != 0 {
			t.Errorf("after the rolled-back savepoint: A = %+v, %v; want balance 0", a, err)
		}
		// A released savepoint whose writes went to the server inside a nested one.
		return tx.Savepoint(ctx, func(tx ledger.Tx) error {
			if err := tx.SetBalance(ctx, idA, 7); err != nil {
				return err
			}
			return tx.Savepoint(ctx, func(tx ledger.Tx) error {
				if err := tx.CreateAccount(ctx, account(idC)); err != nil {
					return err
				}
				if got := ids(tx); !slices.Equal(got, []ledger.AccountID{idA, idC}) {
					t.Errorf("inside the nested savepoint: accounts %v, want A and C", got)
				}
				return tx.SetBalance(ctx, idC, 2)
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.View(ctx, func(tx ledger.ReadTx) error {
		for _, want := range []struct {
			id      ledger.AccountID
			found   bool
			balance int64
		}{{idA, true, 7}, {idB, false, 0}, {idC, true, 2}} {
			a, found, err := tx.Account(ctx, want.id)
			if err != nil || found != want.found || a.Balance != want.balance {
				t.Errorf("account %s = %+v, found %v, %v; want found %v, balance %d", want.id, a, found, err, want.found, want.balance)
			}
		}
		return nil
	})
}

func (su suite) testAllocateSequencesGapFree(t *testing.T) {
	s := su.newStore(t)
	ctx := context.Background()
	allocate := func(n int, commit bool) int64 {
		t.Helper()
		var first int64
		rollback := errors.New("rollback")
		err := s.Update(ctx, func(tx ledger.Tx) error {
			var err error
			if first, err = tx.AllocateSequences(ctx, n); err != nil {
				return err
			}
			if !commit {
				return rollback
			}
			return nil
		})
		if err != nil && !errors.Is(err, rollback) {
			t.Fatal(err)
		}
		return first
	}
	steps := []struct {
		n      int
		commit bool
		want   int64
	}{
		{n: 2, commit: true, want: 1},
		{n: 2, commit: false, want: 3},
		{n: 2, commit: true, want: 3}, // the rolled-back 3 and 4 are handed out again
		{n: 1, commit: true, want: 5},
	}
	for i, st := range steps {
		if got := allocate(st.n, st.commit); got != st.want {
			t.Errorf("step %d: AllocateSequences(%d) = %d, want %d", i, st.n, got, st.want)
		}
	}
	err := s.Update(ctx, func(tx ledger.Tx) error {
		_ = tx.Savepoint(ctx, func(tx ledger.Tx) error {
			_, err := tx.AllocateSequences(ctx, 5)
			if err != nil {
				return err
			}
			return errors.New("refused")
		})
		first, err := tx.AllocateSequences(ctx, 1)
		if err == nil && first != 6 {
			t.Errorf("after a rolled-back savepoint AllocateSequences = %d, want 6", first)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (su suite) testTransactionRoundTrip(t *testing.T) {
	s := su.newStore(t)
	ctx := context.Background()
	tid := ledger.TransactionID("txn_00000000000000000000000001")
	tr := ledger.Transaction{ID: tid, Kind: ledger.KindTransfer, Amount: 5, Currency: "EUR", Reference: "r",
		CreatedAt: t0, Principal: "p", OnBehalfOf: "o",
		Entries: []ledger.Entry{
			{Sequence: 1, TransactionID: tid, AccountID: idA, Amount: -5, Currency: "EUR", BalanceAfter: 0, CreatedAt: t0},
			{Sequence: 2, TransactionID: tid, AccountID: idB, Amount: 5, Currency: "EUR", BalanceAfter: 5, CreatedAt: t0},
		}}
	err := s.Update(ctx, func(tx ledger.Tx) error {
		for _, id := range []string{idA, idB} {
			if err := tx.CreateAccount(ctx, account(id)); err != nil {
				return err
			}
		}
		bad := tr
		bad.ID = "txn_00000000000000000000000002"
		bad.Entries = []ledger.Entry{tr.Entries[0], tr.Entries[0]}
		if err := tx.CreateTransaction(ctx, bad); err == nil {
			t.Error("CreateTransaction accepted entries with repeated sequences")
		}
		return tx.CreateTransaction(ctx, tr)
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.View(ctx, func(tx ledger.ReadTx) error {
		got, found, err := tx.Transaction(ctx, tid)
		if err != nil || !found || got.ID != tr.ID || got.Kind != tr.Kind || !got.CreatedAt.Equal(t0) ||
			len(got.Entries) != 2 || got.Entries[0] != tr.Entries[0] || got.Entries[1] != tr.Entries[1] {
			t.Errorf("Transaction = %+v, %v, %v; want %+v", got, found, err, tr)
		}
		entries, err := tx.EntriesAfter(ctx, 1, 10)
		if err != nil || len(entries) != 1 || entries[0] != tr.Entries[1] {
			t.Errorf("EntriesAfter(1) = %+v, %v", entries, err)
		}
		if _, found, err := tx.Transaction(ctx, "txn_00000000000000000000000009"); found || err != nil {
			t.Errorf("unknown transaction found = %v, %v", found, err)
		}
		// A read transaction cannot write.
		if w, ok := tx.(ledger.Tx); ok {
			if err := w.CreateAccount(ctx, account("acc_00000000000000000000000003")); err == nil {
				t.Error("a read transaction wrote")
			}
		}
		return nil
	})
}
