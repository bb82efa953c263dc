package payments

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
)

func testPayment(id, createdBy, key string) Payment {
	o := Order{FromAccountID: "acc_a", ToAccountID: "acc_b", Currency: "EUR", MinorUnits: 100}
	return Payment{
		ID: id, CreatedBy: createdBy, IdempotencyKey: key, Fingerprint: o.Fingerprint(),
		FromAccountID: o.FromAccountID, ToAccountID: o.ToAccountID, Currency: o.Currency,
		MinorUnits: o.MinorUnits, TransferKey: transferKey(id),
	}
}

// TestCommitBatch hands the committer one batch, so that every request below
// shares a transaction: each must get its own answer, a failing statement must
// fail only its own request, and the batch must see its own earlier writes.
func TestCommitBatch(t *testing.T) {
	const alice = "spiffe://bank.local/customer/alice"
	s, err := OpenStore(context.Background(), filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	zero := testPayment("pay_zero", alice, "zero")
	zero.MinorUnits = 0 // violates CHECK (minor_units > 0)
	gone, cancel := context.WithCancel(context.Background())
	defer cancel()
	tests := []struct {
		name string
		ctx  context.Context // cancelled once queued, before the batch runs
		op   writeOp
		// check judges the request's answer.
		check func(writeAnswer) error
	}{
		{"new payment", nil, s.createOp(testPayment("pay_a", alice, "a"), nil), func(a writeAnswer) error {
			if a.err != nil || !a.r.created || a.r.p.ID != "pay_a" || a.r.p.Seq == 0 || a.r.p.Status != StatusPending {
				return errors.New("want pay_a created PENDING with a seq")
			}
			return nil
		}},
		{"statement fails (zero amount)", nil, s.createOp(zero, nil), wantErr(nil)},
		{"same key in the same batch replays", nil, s.createOp(testPayment("pay_dup", alice, "a"), nil), func(a writeAnswer) error {
			if a.err != nil || a.r.created || a.r.p.ID != "pay_a" {
				return errors.New("want pay_a, not created")
			}
			return nil
		}},
		{"outcome of an unknown payment", nil, s.completeOp("pay_nope", "txn_0"), wantErr(ErrNotFound)},
		{"duplicate id, other key", nil, s.createOp(testPayment("pay_a", alice, "other"), nil), wantErr(nil)},
		{"caller gone before the batch ran", gone, s.createOp(testPayment("pay_gone", alice, "gone"), nil), wantErr(context.Canceled)},
		{"panicking request", nil, func(context.Context, *writeTx) (writeResult, error) { panic("bug") }, wantErr(nil)},
		{"complete what the batch recorded", nil, s.completeOp("pay_a", "txn_1"), wantStatus(StatusCompleted, "txn_1")},
		{"second outcome keeps the first", nil, s.failOp("pay_a", "NOT_FOUND", "", "late"), wantStatus(StatusCompleted, "txn_1")},
		{"another new payment", nil, s.createOp(testPayment("pay_b", alice, "b"), nil), func(a writeAnswer) error {
			if a.err != nil || !a.r.created || a.r.p.ID != "pay_b" {
				return errors.New("want pay_b created")
			}
			return nil
		}},
	}
	// Hold the committer in a request while the batch queues behind it, in
	// order, then let it go: the whole batch runs in the next transaction.
	entered, release := make(chan struct{}), make(chan struct{})
	hold := func(context.Context, *writeTx) (writeResult, error) {
		close(entered)
		<-release
		return writeResult{}, nil
	}
	if err := s.committer.Submit(context.Background(), hold, nil); err != nil {
		t.Fatal(err)
	}
	<-entered
	answers := make([]chan writeAnswer, len(tests))
	for i, tt := range tests {
		ctx := tt.ctx
		if ctx == nil {
			ctx = context.Background()
		}
		answers[i] = make(chan writeAnswer, 1)
		if err := s.committer.Submit(ctx, tt.op, func(r writeResult, err error) { answers[i] <- writeAnswer{r, err} }); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	close(release)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := <-answers[i]
			if err := tt.check(a); err != nil {
				t.Fatalf("answer %+v (err %v): %v", a.r, a.err, err)
			}
		})
	}

	// What the batch committed, and nothing else.
	ps, err := s.List(context.Background(), Query{Limit: 100})
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

type writeAnswer struct {
	r   writeResult
	err error
}

// wantErr wants the request to fail, with target if not nil: its statement
// failed (a.err) or its outcome is an error (a.r.err).
func wantErr(target error) func(writeAnswer) error {
	return func(a writeAnswer) error {
		err := errors.Join(a.err, a.r.err)
		switch {
		case err == nil:
			return errors.New("want an error")
		case target != nil && !errors.Is(err, target):
			return errors.New("want " + target.Error())
		}
		return nil
	}
}

func wantStatus(st Status, txn string) func(writeAnswer) error {
	return func(a writeAnswer) error {
		if a.err != nil || a.r.p.Status != st || a.r.p.TransactionID != txn {
			return errors.New("want " + string(st) + " with " + txn)
		}
		return nil
	}
}
