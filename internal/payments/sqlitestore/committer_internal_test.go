package sqlitestore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"mtlsbank/internal/payments"
)

func testPayment(id, createdBy, key string) payments.Payment {
	o := payments.Order{FromAccountID: "acc_a", ToAccountID: "acc_b", Currency: "EUR", MinorUnits: 100}
	now := time.Unix(0, 1).UTC()
	return payments.Payment{
		ID: id, CreatedBy: createdBy, IdempotencyKey: key, Fingerprint: o.Fingerprint(), Status: payments.StatusPending,
		FromAccountID: o.FromAccountID, ToAccountID: o.ToAccountID, Currency: o.Currency,
		MinorUnits: o.MinorUnits, TransferKey: "payment:" + id, CreateTime: now, UpdateTime: now,
	}
}

// TestCommitBatch hands the committer one batch, so that every write below shares
// a transaction: each must get its own answer, a failing statement must fail only
// its own write, and the batch must see its own earlier writes.
func TestCommitBatch(t *testing.T) {
	const alice = "spiffe://bank.local/customer/alice"
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	zero := testPayment("pay_zero", alice, "zero")
	zero.MinorUnits = 0 // violates CHECK (minor_units > 0)
	insert := func(p payments.Payment) func(payments.Tx) (string, error) {
		return func(tx payments.Tx) (string, error) {
			_, inserted, err := tx.Insert(context.Background(), p)
			if err != nil || !inserted {
				return "", err
			}
			return "inserted " + p.ID, nil
		}
	}
	finish := func(id string, o payments.Outcome) func(payments.Tx) (string, error) {
		return func(tx payments.Tx) (string, error) {
			changed, err := tx.Finish(context.Background(), id, o)
			if err != nil || !changed {
				return fmt.Sprintf("%v ", changed), err
			}
			p, _, err := tx.ByID(context.Background(), id)
			return fmt.Sprintf("%v %s", changed, p.Status), err
		}
	}
	completed := payments.Outcome{Status: payments.StatusCompleted, TransactionID: "txn_1", At: time.Unix(0, 2)}
	failed := payments.Outcome{Status: payments.StatusFailed, FailureCode: "NOT_FOUND", FailureReason: "late", At: time.Unix(0, 3)}
	gone, cancel := context.WithCancel(context.Background())
	defer cancel()
	tests := []struct {
		name string
		ctx  context.Context // cancelled once queued, before the batch runs
		op   func(payments.Tx) (string, error)
		want string // the answer, or "error" (or the error it must wrap)
		err  error
	}{
		{name: "new payment", op: insert(testPayment("pay_a", alice, "a")), want: "inserted pay_a"},
		{name: "statement fails (zero amount)", op: insert(zero), want: "error"},
		{name: "same key in the same batch is found", op: func(tx payments.Tx) (string, error) {
			if _, inserted, err := tx.Insert(context.Background(), testPayment("pay_dup", alice, "a")); err != nil || inserted {
				return "", fmt.Errorf("insert under a used key: inserted %v, %w", inserted, err)
			}
			p, found, err := tx.ByKey(context.Background(), alice, "a")
			return fmt.Sprintf("%v %s", found, p.ID), err
		}, want: "true pay_a"},
		{name: "outcome of an unknown payment", op: finish("pay_nope", completed), want: "false "},
		{name: "duplicate id, other key", op: insert(testPayment("pay_a", alice, "other")), want: "error"},
		{name: "caller gone before the batch ran", ctx: gone, op: insert(testPayment("pay_gone", alice, "gone")), want: "error", err: context.Canceled},
		{name: "panicking request", op: func(payments.Tx) (string, error) { panic("bug") }, want: "error"},
		{name: "complete what the batch recorded", op: finish("pay_a", completed), want: "true COMPLETED"},
		{name: "second outcome keeps the first", op: finish("pay_a", failed), want: "false "},
		{name: "another new payment", op: insert(testPayment("pay_b", alice, "b")), want: "inserted pay_b"},
	}
	// Hold the committer in a request while the batch queues behind it, in order,
	// then let it go: the whole batch runs in the next transaction.
	entered, release := make(chan struct{}), make(chan struct{})
	hold := func(context.Context, *writeTx) (struct{}, error) {
		close(entered)
		<-release
		return struct{}{}, nil
	}
	if err := s.committer.Submit(context.Background(), hold, nil); err != nil {
		t.Fatal(err)
	}
	<-entered
	type answer struct {
		s   string
		err error
	}
	answers := make([]chan answer, len(tests))
	for i, tt := range tests {
		ctx := tt.ctx
		if ctx == nil {
			ctx = context.Background()
		}
		answers[i] = make(chan answer, 1)
		var got string
		req := func(_ context.Context, tx *writeTx) (struct{}, error) {
			var err error
			got, err = tt.op(tx)
			return struct{}{}, err
		}
		if err := s.committer.Submit(ctx, req, func(_ struct{}, err error) { answers[i] <- answer{got, err} }); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	close(release)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := <-answers[i]
			switch {
			case tt.want == "error" && (a.err == nil || tt.err != nil && !errors.Is(a.err, tt.err)):
				t.Fatalf("answer %q, %v; want an error (%v)", a.s, a.err, tt.err)
			case tt.want != "error" && (a.err != nil || a.s != tt.want):
				t.Fatalf("answer %q, %v; want %q", a.s, a.err, tt.want)
			}
		})
	}

	// What the batch committed, and nothing else.
	ps, err := s.List(context.Background(), payments.Query{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.ID+":"+string(p.Status))
	}
	if want := "[pay_a:COMPLETED pay_b:PENDING]"; fmt.Sprint(got) != want {
		t.Fatalf("stored %v, want %s", got, want)
	}
}
