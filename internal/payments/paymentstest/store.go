package paymentstest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"mtlsbank/internal/payments"
)

// The tests of the store's promises through payments.Orders: idempotency per
// creator, the first outcome wins, refusals change nothing, listing, and the
// same under concurrency.

func (su suite) testCreateIsIdempotentPerCreator(t *testing.T) {
	ctx := context.Background()
	s := su.newOrders(t, nil)

	first, created, err := s.Create(ctx, NewPayment("pay_1", alice, "k1"), payments.CreateOptions{})
	if err != nil || !created {
		t.Fatalf("first Create: created=%v err=%v", created, err)
	}
	if first.Status != payments.StatusPending || first.Seq == 0 || first.CreateTime.IsZero() {
		t.Fatalf("first Create stored %+v, want PENDING with seq and time", first)
	}
	again, created, err := s.Create(ctx, NewPayment("pay_2", alice, "k1"), payments.CreateOptions{})
	if err != nil || created {
		t.Fatalf("same key again: created=%v err=%v, want existing", created, err)
	}
	if again.ID != "pay_1" {
		t.Fatalf("same key again returned %s, want pay_1", again.ID)
	}
	other, created, err := s.Create(ctx, NewPayment("pay_3", bob, "k1"), payments.CreateOptions{})
	if err != nil || !created || other.ID != "pay_3" {
		t.Fatalf("same key, other creator: %+v created=%v err=%v, want a new payment", other, created, err)
	}
	if _, err := s.Get(ctx, "pay_2"); !errors.Is(err, payments.ErrNotFound) {
		t.Fatalf("Get(pay_2) = %v, want ErrNotFound (the replay must not insert)", err)
	}
	// Create returns the payment as stored, seq included, also after a refused insert.
	for _, p := range []payments.Payment{first, other, again} {
		if got, err := s.Get(ctx, p.ID); err != nil || !reflect.DeepEqual(got, p) {
			t.Errorf("Get(%s) = %+v, %v; Create returned %+v", p.ID, got, err, p)
		}
	}
	if other.Seq <= first.Seq {
		t.Errorf("seqs %d then %d, want increasing", first.Seq, other.Seq)
	}
}

func (su suite) testFirstOutcomeWins(t *testing.T) {
	ctx := context.Background()
	s := su.newOrders(t, nil)
	tests := []struct {
		name       string
		first      func(p payments.Payment) (payments.Payment, error)
		second     func(p payments.Payment) (payments.Payment, error)
		wantStatus payments.Status
	}{
		{
			name:       "complete then fail",
			first:      func(p payments.Payment) (payments.Payment, error) { return s.Complete(ctx, p, "txn_1") },
			second:     func(p payments.Payment) (payments.Payment, error) { return s.Fail(ctx, p, "FAILED_PRECONDITION", "no") },
			wantStatus: payments.StatusCompleted,
		},
		{
			name: "fail then complete",
			first: func(p payments.Payment) (payments.Payment, error) {
				return s.Fail(ctx, p, "NOT_FOUND", "no such account")
			},
			second:     func(p payments.Payment) (payments.Payment, error) { return s.Complete(ctx, p, "txn_2") },
			wantStatus: payments.StatusFailed,
		},
		{
			name:       "complete twice keeps the first transaction",
			first:      func(p payments.Payment) (payments.Payment, error) { return s.Complete(ctx, p, "txn_3") },
			second:     func(p payments.Payment) (payments.Payment, error) { return s.Complete(ctx, p, "txn_4") },
			wantStatus: payments.StatusCompleted,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("pay_outcome_%d", i)
			pending, _, err := s.Create(ctx, NewPayment(id, alice, id), payments.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want, err := tt.first(pending)
			if err != nil {
				t.Fatalf("first: %v", err)
			}
			if want.Status != tt.wantStatus {
				t.Fatalf("first outcome stored %s, want %s", want.Status, tt.wantStatus)
			}
			// The answer is the payment as stored (the store reads nothing back: Orders
			// makes it from the pending payment and the outcome).
			if stored, err := s.Get(ctx, id); err != nil || !reflect.DeepEqual(stored, want) {
				t.Fatalf("first outcome answered %+v; stored %+v (%v)", want, stored, err)
			}
			// The second driver still holds the payment as it was PENDING.
			got, err := tt.second(pending)
			if err != nil {
				t.Fatalf("second: %v", err)
			}
			if got.Status != want.Status || got.TransactionID != want.TransactionID ||
				got.FailureCode != want.FailureCode || !got.UpdateTime.Equal(want.UpdateTime) {
				t.Fatalf("second outcome changed the payment: %+v, want %+v", got, want)
			}
		})
	}
}

func (su suite) testRefusesBadOutcomes(t *testing.T) {
	ctx := context.Background()
	s := su.newOrders(t, nil)
	pending, _, err := s.Create(ctx, NewPayment("pay_1", alice, "k"), payments.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	unknown := pending
	unknown.ID = "pay_nope"
	notStored := NewPayment("pay_1", alice, "k") // no seq: not as Create returned it
	finished := pending
	finished.Status, finished.TransactionID = payments.StatusCompleted, "txn_0"
	tests := []struct {
		name string
		call func() (payments.Payment, error)
	}{
		{"complete without transaction", func() (payments.Payment, error) { return s.Complete(ctx, pending, "") }},
		{"fail without code", func() (payments.Payment, error) { return s.Fail(ctx, pending, "", "why") }},
		{"complete unknown payment", func() (payments.Payment, error) { return s.Complete(ctx, unknown, "txn") }},
		{"complete a payment not as stored", func() (payments.Payment, error) { return s.Complete(ctx, notStored, "txn") }},
		{"fail a payment given as finished", func() (payments.Payment, error) { return s.Fail(ctx, finished, "NOT_FOUND", "gone") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.call(); err == nil {
				t.Fatal("got no error")
			}
			p, err := s.Get(ctx, "pay_1")
			if err != nil || p.Status != payments.StatusPending {
				t.Fatalf("pay_1 = %+v, %v; want it still PENDING", p, err)
			}
		})
	}
	bad := NewPayment("pay_2", alice, "k2")
	bad.MinorUnits = 0
	if _, _, err := s.Create(ctx, bad, payments.CreateOptions{}); err == nil {
		t.Fatal("Create with a zero amount: no error")
	}
}

func (su suite) testListPagesAndFilters(t *testing.T) {
	ctx := context.Background()
	s := su.newOrders(t, nil)
	var third payments.Payment
	for i := range 7 {
		creator := alice
		if i%2 == 1 {
			creator = bob
		}
		id := fmt.Sprintf("pay_%d", i)
		p, _, err := s.Create(ctx, NewPayment(id, creator, id), payments.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			third = p
		}
	}
	if _, err := s.Complete(ctx, third, "txn_2"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		query payments.Query
		want  []string
	}{
		{"all", payments.Query{Limit: 100}, []string{"pay_0", "pay_1", "pay_2", "pay_3", "pay_4", "pay_5", "pay_6"}},
		{"first page", payments.Query{Limit: 3}, []string{"pay_0", "pay_1", "pay_2"}},
		{"by creator", payments.Query{CreatedBy: alice, Limit: 100}, []string{"pay_0", "pay_2", "pay_4", "pay_6"}},
		{"pending", payments.Query{Status: payments.StatusPending, Limit: 100}, []string{"pay_0", "pay_1", "pay_3", "pay_4", "pay_5", "pay_6"}},
		{"pending of alice", payments.Query{Status: payments.StatusPending, CreatedBy: alice, Limit: 2}, []string{"pay_0", "pay_4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ListIDs(t, s, tt.query)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("List(%+v) = %v, want %v", tt.query, got, tt.want)
			}
		})
	}
	t.Run("after", func(t *testing.T) {
		page, err := s.List(ctx, payments.Query{Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		got := ListIDs(t, s, payments.Query{AfterSeq: page[2].Seq, Limit: 3})
		if fmt.Sprint(got) != "[pay_3 pay_4 pay_5]" {
			t.Fatalf("second page = %v", got)
		}
	})
	if _, err := s.List(ctx, payments.Query{}); err == nil {
		t.Fatal("List without a limit: no error")
	}
}

func (su suite) testCreateAnswersWhatItStored(t *testing.T) {
	ctx := context.Background()
	s := su.newOrders(t, nil)
	p := NewPayment("pay_1", alice, "k")
	p.Memo = "rent"
	p.Status, p.TransactionID = payments.StatusCompleted, "txn_ignored" // Create decides these
	got, created, err := s.Create(ctx, p, payments.CreateOptions{})
	if err != nil || !created {
		t.Fatalf("Create: created=%v err=%v", created, err)
	}
	stored, err := s.Get(ctx, "pay_1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, stored) {
		t.Fatalf("Create answered %+v, but stored %+v", got, stored)
	}
	if stored.Status != payments.StatusPending || stored.TransactionID != "" {
		t.Fatalf("stored %+v, want PENDING without a transaction", stored)
	}
}

// testConcurrentWrites sends many writers at once, so that the committer
// groups them: duplicates of one key must make one payment, and concurrent
// outcomes of one payment must agree on the first. Group commit off must
// behave the same.
func (su suite) testConcurrentWrites(t *testing.T) {
	for _, tt := range su.variants() {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := payments.NewOrders(tt.open(t), nil)
			const n = 50
			type answer struct {
				p       payments.Payment
				created bool
				err     error
			}
			answers := make([]answer, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					p, created, err := s.Create(ctx, NewPayment(fmt.Sprintf("pay_dup_%d", i), alice, "same-key"), payments.CreateOptions{})
					answers[i] = answer{p, created, err}
				})
			}
			wg.Wait()
			var winner string
			for i, a := range answers {
				if a.err != nil {
					t.Fatalf("Create %d: %v", i, a.err)
				}
				if a.created {
					if winner != "" {
						t.Fatalf("two payments for one key: %s and %s", winner, a.p.ID)
					}
					winner = a.p.ID
				}
			}
			for i, a := range answers {
				if a.p.ID != winner {
					t.Fatalf("Create %d answered %s, want the one payment %s", i, a.p.ID, winner)
				}
			}
			if ids := ListIDs(t, s, payments.Query{Limit: 100}); len(ids) != 1 || ids[0] != winner {
				t.Fatalf("stored %v, want only %s", ids, winner)
			}

			outcomes := make([]payments.Payment, n)
			errs := make([]error, n)
			for i := range n {
				wg.Go(func() {
					if i%2 == 0 {
						outcomes[i], errs[i] = s.Complete(ctx, answers[i].p, fmt.Sprintf("txn_%d", i))
					} else {
						outcomes[i], errs[i] = s.Fail(ctx, answers[i].p, "FAILED_PRECONDITION", "insufficient funds")
					}
				})
			}
			wg.Wait()
			stored, err := s.Get(ctx, winner)
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("outcome %d: %v", i, errs[i])
				}
				if !reflect.DeepEqual(outcomes[i], stored) {
					t.Fatalf("outcome %d answered %+v, but stored is %+v", i, outcomes[i], stored)
				}
			}
		})
	}
}

// NewPayment is an order of 1.00 EUR from acc_a to acc_b.
func NewPayment(id, createdBy, key string) payments.Payment {
	return payments.Payment{
		ID:             id,
		CreatedBy:      createdBy,
		IdempotencyKey: key,
		Fingerprint:    payments.Order{FromAccountID: "acc_a", ToAccountID: "acc_b", Currency: "EUR", MinorUnits: 100}.Fingerprint(),
		FromAccountID:  "acc_a",
		ToAccountID:    "acc_b",
		Currency:       "EUR",
		MinorUnits:     100,
		TransferKey:    "payment:" + id,
	}
}

// ListIDs lists the ids of the payments q selects.
func ListIDs(tb testing.TB, s Lister, q payments.Query) []string {
	tb.Helper()
	ps, err := s.List(context.Background(), q)
	if err != nil {
		tb.Fatalf("List: %v", err)
	}
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	return ids
}
