package writeset_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"mtlsbank/internal/ledger"
	"mtlsbank/internal/ledger/writeset"
)

// recorder is a Backend that holds accounts and records what it is sent. The stores'
// own tests (ledgertest's conformance suite on SQLite and PostgreSQL) show what the
// writes do in a database; this shows what a Tx hands over, and when.
type recorder struct {
	accounts map[ledger.AccountID]ledger.Account
	sent     [][]writeset.Step
	failRead error
}

func (r *recorder) Account(_ context.Context, id ledger.AccountID) (ledger.Account, bool, error) {
	if r.failRead != nil {
		return ledger.Account{}, false, r.failRead
	}
	a, ok := r.accounts[id]
	return a, ok, nil
}
func (r *recorder) SystemAccount(context.Context, string) (ledger.Account, bool, error) {
	return ledger.Account{}, false, nil
}
func (r *recorder) Accounts(context.Context, ledger.AccountQuery) ([]ledger.Account, error) {
	return nil, nil
}
func (r *recorder) Transaction(context.Context, ledger.TransactionID) (ledger.Transaction, bool, error) {
	return ledger.Transaction{}, false, nil
}
func (r *recorder) EntriesAfter(context.Context, int64, int) ([]ledger.Entry, error) { return nil, nil }
func (r *recorder) TransactionsAfter(context.Context, int64, int) ([]ledger.KeyedTransaction, error) {
	return nil, nil
}
func (r *recorder) Idempotency(context.Context, string, string) (ledger.IdempotencyRecord, bool, error) {
	return ledger.IdempotencyRecord{}, false, nil
}
func (r *recorder) Send(_ context.Context, steps []writeset.Step) error {
	r.sent = append(r.sent, steps)
	return nil
}

const (
	idA = ledger.AccountID("acc_a")
	idB = ledger.AccountID("acc_b")
)

func newTx() (*writeset.Tx, *recorder) {
	r := &recorder{accounts: map[ledger.AccountID]ledger.Account{idA: {ID: idA}, idB: {ID: idB}}}
	return writeset.New(r, 10), r
}

// kinds describes steps as "writes balances=..." / "savepoint sp1" for comparison.
func kinds(steps []writeset.Step) []string {
	var out []string
	for _, s := range steps {
		switch s.Kind {
		case writeset.StepWrites:
			out = append(out, fmt.Sprintf("writes balances=%v txns=%d records=%d", s.Group.Balances, len(s.Group.Transactions), len(s.Group.Records)))
		case writeset.StepSavepoint:
			out = append(out, "savepoint "+s.Name)
		case writeset.StepRelease:
			out = append(out, "release "+s.Name)
		case writeset.StepRollback:
			out = append(out, "rollback "+s.Name)
		}
	}
	return out
}

func TestTx(t *testing.T) {
	ctx := context.Background()
	refused := errors.New("refused")
	setBoth := func(tx ledger.Tx, a, b int64) error {
		if err := tx.SetBalance(ctx, idA, a); err != nil {
			return err
		}
		return tx.SetBalance(ctx, idB, b)
	}
	tests := []struct {
		name string
		run  func(t *testing.T, tx *writeset.Tx) error
		// sent are the steps sent before the commit, pending those Pending hands over.
		sent    [][]string
		pending []string
	}{{
		name: "each account's last balance once, in the order first set",
		run: func(t *testing.T, tx *writeset.Tx) error {
			for i := range int64(5) {
				if err := setBoth(tx, 100-i, 200+i); err != nil {
					return err
				}
			}
			return tx.SetBalance(ctx, idA, 1)
		},
		pending: []string{"writes balances=[{acc_a 1} {acc_b 204}] txns=0 records=0"},
	}, {
		name: "a rolled-back savepoint sends nothing and undoes its changes in memory",
		run: func(t *testing.T, tx *writeset.Tx) error {
			if err := setBoth(tx, 5, 6); err != nil {
				return err
			}
			err := tx.Savepoint(ctx, func(tx ledger.Tx) error {
				if err := setBoth(tx, 7, 8); err != nil {
					return err
				}
				if _, err := tx.AllocateSequences(ctx, 3); err != nil {
					return err
				}
				return refused
			})
			if !errors.Is(err, refused) {
				t.Errorf("Savepoint = %v, want the function's error", err)
			}
			if a, _, _ := tx.Account(ctx, idA); a.Balance != 5 {
				t.Errorf("balance after the rollback = %d, want 5", a.Balance)
			}
			if first, _ := tx.AllocateSequences(ctx, 1); first != 11 {
				t.Errorf("sequence after the rollback = %d, want 11", first)
			}
			return nil
		},
		pending: []string{"writes balances=[{acc_a 5} {acc_b 6}] txns=0 records=0"},
	}, {
		name: "a listing sends the writes, each open savepoint's SAVEPOINT before its first",
		run: func(t *testing.T, tx *writeset.Tx) error {
			if err := tx.SetBalance(ctx, idA, 1); err != nil {
				return err
			}
			return tx.Savepoint(ctx, func(tx ledger.Tx) error {
				if err := tx.SetBalance(ctx, idA, 2); err != nil {
					return err
				}
				err := tx.Savepoint(ctx, func(tx ledger.Tx) error {
					if err := tx.SetBalance(ctx, idB, 3); err != nil {
						return err
					}
					if _, err := tx.Accounts(ctx, ledger.AccountQuery{Limit: 1}); err != nil {
						return err
					}
					return refused
				})
				if !errors.Is(err, refused) {
					t.Errorf("nested Savepoint = %v, want the function's error", err)
				}
				return tx.SetBalance(ctx, idB, 4)
			})
		},
		sent: [][]string{
			{"writes balances=[{acc_a 1}] txns=0 records=0", "savepoint sp1", "writes balances=[{acc_a 2}] txns=0 records=0",
				"savepoint sp2", "writes balances=[{acc_b 3}] txns=0 records=0"},
			{"rollback sp2"},
		},
		pending: []string{"writes balances=[{acc_b 4}] txns=0 records=0", "release sp1"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tx, r := newTx()
			if err := tt.run(t, tx); err != nil {
				t.Fatal(err)
			}
			var sent [][]string
			for _, steps := range r.sent {
				sent = append(sent, kinds(steps))
			}
			if !reflect.DeepEqual(sent, tt.sent) {
				t.Errorf("sent before the commit:\n%q\nwant\n%q", sent, tt.sent)
			}
			if got := kinds(tx.Pending()); !reflect.DeepEqual(got, tt.pending) {
				t.Errorf("Pending:\n%q\nwant\n%q", got, tt.pending)
			}
			if got := tx.Pending(); len(got) != 0 {
				t.Errorf("a second Pending = %q, want nothing: the first marked them sent", kinds(got))
			}
		})
	}
}

// TestBroken: a failed read breaks the transaction. Everything after fails with it, a
// savepoint around it returns it rather than its function's own refusal (which the
// ledger would record), and Err tells the store not to commit.
func TestBroken(t *testing.T) {
	ctx := context.Background()
	tx, r := newTx()
	broken := errors.New("disk on fire")
	r.failRead = broken
	err := tx.Savepoint(ctx, func(tx ledger.Tx) error {
		_, _, _ = tx.Account(ctx, idA)
		return errors.New("insufficient funds")
	})
	if !errors.Is(err, broken) {
		t.Errorf("Savepoint = %v, want the read's failure", err)
	}
	r.failRead = nil
	if err := tx.SetBalance(ctx, idA, 1); !errors.Is(err, broken) {
		t.Errorf("SetBalance after the failure = %v, want it", err)
	}
	if _, err := tx.AllocateSequences(ctx, 1); !errors.Is(err, broken) {
		t.Errorf("AllocateSequences after the failure = %v, want it", err)
	}
	if !errors.Is(tx.Err(), broken) {
		t.Errorf("Err = %v, want the read's failure", tx.Err())
	}
}
