package payments_test

// The ninth fresh attacker's tests of Finish without read-back (commit 6cf4db6)
// through the Service's recovery: two payments processes on one SQLite file recover
// at once, and a replica that finishes a payment between the transfer's answer and
// the recording of the outcome.

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	typev1 "mtlsbank/gen/bank/type/v1"
	"mtlsbank/internal/authz"
	"mtlsbank/internal/identity"
	"mtlsbank/internal/payments"
	"mtlsbank/internal/payments/sqlitestore"
)

// a9Accounts answers Transfer like the ledger: once per key, the same answer again
// for the same key; keys of amounts divisible by 5 are refused.
type a9Accounts struct {
	accountsv1.AccountsServiceClient
	mu    sync.Mutex
	calls map[string]int
}

func (a *a9Accounts) Transfer(ctx context.Context, in *accountsv1.TransferRequest, _ ...grpc.CallOption) (*accountsv1.TransferResponse, error) {
	a.mu.Lock()
	a.calls[in.GetIdempotencyKey()]++
	replayed := a.calls[in.GetIdempotencyKey()] > 1
	a.mu.Unlock()
	if in.GetAmount().GetMinorUnits()%5 == 0 {
		return nil, status.Error(codes.FailedPrecondition, "insufficient funds")
	}
	return &accountsv1.TransferResponse{Transaction: &accountsv1.Transaction{Id: "txn_" + in.GetIdempotencyKey()}, Replayed: replayed}, nil
}

func a9Store(tb testing.TB, path string) *sqlitestore.Store {
	tb.Helper()
	s, err := sqlitestore.Open(context.Background(), path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func a9Pending(i int) payments.Payment {
	id := fmt.Sprintf("pay_a9rec%021d", i)
	return payments.Payment{
		ID: id, CreatedBy: "spiffe://bank.local/user/u", IdempotencyKey: fmt.Sprintf("k%d", i), Fingerprint: "fp",
		FromAccountID: "acc_a", ToAccountID: "acc_b", Currency: "EUR", MinorUnits: int64(i + 1),
		TransferKey: "tk_" + id,
	}
}

// TestAttack9RecoveryTwoProcesses: two services on one file recover the same 60
// PENDING payments at once (one with a lease that expired); each transfer is called
// once, every payment ends as the ledger answered, with no lease, and a replica that
// records another outcome between the answer and the recording wins (first outcome)
// without the service overwriting or mis-answering.
func TestAttack9RecoveryTwoProcesses(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "p.db")
	st1, st2, st3 := a9Store(t, path), a9Store(t, path), a9Store(t, path)
	orders := payments.NewOrders(st3, nil)
	const n = 60
	for i := range n {
		lease := payments.Lease{}
		if i == 7 {
			lease = payments.Lease{Owner: "dead-process", Duration: time.Nanosecond} // expired at once
		}
		if _, _, err := orders.Create(ctx, a9Pending(i), payments.CreateOptions{Lease: lease}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Millisecond)
	acc := &a9Accounts{calls: map[string]int{}}
	// The third process finishes payment 11 between service 1's transfer answer and
	// its recording: a FAILED outcome the ledger did not give.
	var interfered sync.Once
	hook := func(p payments.Payment) {
		if p.ID != a9Pending(11).ID {
			return
		}
		interfered.Do(func() {
			if _, err := orders.Fail(ctx, p, "PERMISSION_DENIED", "other replica"); err != nil {
				t.Errorf("interfering fail: %v", err)
			}
		})
	}
	s1 := payments.NewService(st1, acc, payments.WithHooks(payments.Hooks{AfterTransfer: hook}))
	s2 := payments.NewService(st2, acc, payments.WithHooks(payments.Hooks{AfterTransfer: hook}))
	var wg sync.WaitGroup
	var f1, f2 int
	var e1, e2 error
	wg.Add(2)
	go func() { defer wg.Done(); f1, e1 = s1.Recover(ctx) }()
	go func() { defer wg.Done(); f2, e2 = s2.Recover(ctx) }()
	wg.Wait()
	if e1 != nil || e2 != nil {
		t.Fatalf("recover: %v, %v", e1, e2)
	}
	if f1+f2 != n {
		t.Errorf("finished %d + %d, want %d in all", f1, f2, n)
	}
	for i := range n {
		want := a9Pending(i)
		p, err := orders.Get(ctx, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		if c := acc.calls[want.TransferKey]; c != 1 {
			t.Errorf("%s: transfer called %d times, want 1", want.ID, c)
		}
		if p.LeaseOwner != "" || !p.LeaseUntil.IsZero() {
			t.Errorf("%s: lease %q until %v left on a finished payment", p.ID, p.LeaseOwner, p.LeaseUntil)
		}
		switch {
		case i == 11:
			if p.Status != payments.StatusFailed || p.FailureReason != "other replica" {
				t.Errorf("%s: %s %q, want the other replica's first outcome", p.ID, p.Status, p.FailureReason)
			}
		case want.MinorUnits%5 == 0:
			if p.Status != payments.StatusFailed || p.FailureCode != "FAILED_PRECONDITION" {
				t.Errorf("%s: %s %s", p.ID, p.Status, p.FailureCode)
			}
		default:
			if p.Status != payments.StatusCompleted || p.TransactionID != "txn_"+want.TransferKey {
				t.Errorf("%s: %s %s", p.ID, p.Status, p.TransactionID)
			}
		}
		if p.Seq == 0 || p.CreateTime.IsZero() || p.UpdateTime.Before(p.CreateTime) {
			t.Errorf("%s: seq %d create %v update %v", p.ID, p.Seq, p.CreateTime, p.UpdateTime)
		}
	}
}

// TestAttack9CreatePaymentAnswers: CreatePayment on two services (replicas) on one
// file, each key sent twice at once (once to each replica): every COMPLETED answer
// is the payment GetPayment returns, and every FAILED answer carries it in its
// details.
func TestAttack9CreatePaymentAnswers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	st1, st2 := a9Store(t, path), a9Store(t, path)
	acc := &a9Accounts{calls: map[string]int{}}
	svcs := []*payments.Service{payments.NewService(st1, acc), payments.NewService(st2, acc)}
	user := spiffeid.RequireFromString("spiffe://bank.local/user/alice")
	ctx := authz.NewContext(context.Background(), authz.Decision{Allowed: true, Identity: identity.Identity{ID: user}})
	type answer struct {
		resp *paymentsv1.CreatePaymentResponse
		err  error
	}
	const n = 30
	answers := make([][2]answer, n)
	var wg sync.WaitGroup
	for i := range n {
		for r := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := svcs[r].CreatePayment(ctx, &paymentsv1.CreatePaymentRequest{
					FromAccountId: "acc_from", ToAccountId: "acc_to",
					Amount:         &typev1.Money{CurrencyCode: "EUR", MinorUnits: int64(i + 1)},
					IdempotencyKey: fmt.Sprintf("key-%d", i), Memo: "m",
				})
				answers[i][r] = answer{resp, err}
			}()
		}
	}
	wg.Wait()
	stored := func(id string) *paymentsv1.Payment {
		got, err := svcs[0].GetPayment(ctx, &paymentsv1.GetPaymentRequest{Id: id})
		if err != nil {
			t.Fatalf("get %s: %v", id, err)
		}
		return got.GetPayment()
	}
	for i, pair := range answers {
		ids := map[string]bool{}
		for r, a := range pair {
			var p *paymentsv1.Payment
			if a.err == nil {
				p = a.resp.GetPayment()
			} else {
				for _, d := range status.Convert(a.err).Details() {
					if pp, ok := d.(*paymentsv1.Payment); ok {
						p = pp
					}
				}
			}
			if p == nil {
				t.Errorf("key %d replica %d: no payment in %v", i, r, a.err)
				continue
			}
			ids[p.GetId()] = true
			s := stored(p.GetId())
			if p.GetStatus() != paymentsv1.PaymentStatus_PAYMENT_STATUS_PENDING && !proto.Equal(p, s) {
				t.Errorf("key %d replica %d: answered\n  %v\nstored\n  %v", i, r, p, s)
			}
		}
		if len(ids) != 1 {
			t.Errorf("key %d: answers name %d payments", i, len(ids))
		}
	}
}
