package ledgertest

import (
	"context"
	"errors"
	"sync"
	"testing"

	"mtlsbank/internal/ledger"
	"mtlsbank/internal/money"
)

func (su suite) testIdempotentReplay(t *testing.T) {
	l, s := su.newLedger(t)
	ctx := context.Background()
	a := MustOpen(t, l, alice, "EUR")
	b := MustOpen(t, l, bob, "EUR")

	dep := ledger.DepositRequest{AccountID: string(a.ID), Amount: eur(5000), IdempotencyKey: "dep-1", Reference: "cash", Principal: teller}
	first, err := l.Deposit(ctx, dep)
	if err != nil {
		t.Fatalf("Deposit: %v", err)
	}
	again, err := l.Deposit(ctx, dep)
	if err != nil {
		t.Fatalf("repeated Deposit: %v", err)
	}
	if !equalTransactions(first, again) {
		t.Errorf("repeated Deposit = %+v, want the original %+v", again, first)
	}
	if bal := BalanceOf(t, l, a.ID); bal != 5000 {
		t.Errorf("balance after a repeated deposit = %d, want 5000", bal)
	}

	tr := ledger.TransferRequest{FromAccountID: string(a.ID), ToAccountID: string(b.ID), Amount: eur(1000), IdempotencyKey: "pay-1", Principal: payments, OnBehalfOf: alice}
	t1, err := l.Transfer(ctx, tr)
	if err != nil {
		t.Fatalf("Transfer: %v", err)
	}
	// A later transaction does not change what the key returns, including
	// the balances recorded in its entries.
	MustDeposit(t, l, a, 7)
	t2, err := l.Transfer(ctx, tr)
	if err != nil || !equalTransactions(t1, t2) {
		t.Errorf("repeated Transfer = %+v, %v; want the original %+v", t2, err, t1)
	}
	if bal := BalanceOf(t, l, b.ID); bal != 1000 {
		t.Errorf("bob balance = %d, want 1000", bal)
	}

	wd := ledger.WithdrawRequest{AccountID: string(a.ID), Amount: eur(1), IdempotencyKey: "wd-1", Principal: teller}
	w1, err := l.Withdraw(ctx, wd)
	if err != nil {
		t.Fatalf("Withdraw: %v", err)
	}
	w2, err := l.Withdraw(ctx, wd)
	if err != nil || !equalTransactions(w1, w2) {
		t.Errorf("repeated Withdraw = %+v, %v; want %+v", w2, err, w1)
	}
	// 1 deposit + 1 transfer + 1 funding deposit + 1 withdrawal.
	if snap := CheckInvariants(t, s); len(snap.Entries) != 8 {
		t.Errorf("%d entries, want 8: a replay wrote entries", len(snap.Entries))
	}
}

func (su suite) testIdempotencyMismatch(t *testing.T) {
	l, s := su.newLedger(t)
	ctx := context.Background()
	a := MustOpen(t, l, alice, "EUR")
	b := MustOpen(t, l, bob, "EUR")
	dep := ledger.DepositRequest{AccountID: string(a.ID), Amount: eur(5000), IdempotencyKey: "k", Reference: "cash", Principal: teller}
	if _, err := l.Deposit(ctx, dep); err != nil {
		t.Fatalf("Deposit: %v", err)
	}

	tests := []struct {
		name string
		do   func() error
	}{
		{name: "other amount", do: func() error {
			r := dep
			r.Amount = eur(5001)
			_, err := l.Deposit(ctx, r)
			return err
		}},
		{name: "other currency", do: func() error {
			r := dep
			r.Amount = money.Amount{Currency: "USD", Minor: 5000}
			_, err := l.Deposit(ctx, r)
			return err
		}},
		{name: "other account", do: func() error {
			r := dep
			r.AccountID = string(b.ID)
			_, err := l.Deposit(ctx, r)
			return err
		}},
		{name: "other reference", do: func() error {
			r := dep
			r.Reference = "cheque"
			_, err := l.Deposit(ctx, r)
			return err
		}},
		{name: "other end user", do: func() error {
			r := dep
			r.OnBehalfOf = alice
			_, err := l.Deposit(ctx, r)
			return err
		}},
		{name: "other operation", do: func() error {
			_, err := l.Withdraw(ctx, ledger.WithdrawRequest{AccountID: dep.AccountID, Amount: dep.Amount,
				IdempotencyKey: dep.IdempotencyKey, Reference: dep.Reference, Principal: dep.Principal})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := TakeSnapshot(t, s)
			WantError(t, tt.do(), ledger.ErrIdempotencyMismatch, "idempotency_key")
			if after := TakeSnapshot(t, s); len(after.Entries) != len(before.Entries) || BalanceOf(t, l, a.ID) != 5000 || BalanceOf(t, l, b.ID) != 0 {
				t.Errorf("refused request changed the ledger")
			}
		})
	}
}

// testRefusalStaysRefused checks that a refusal that depends on the state
// is recorded: the key keeps refusing after the state changed.
func (su suite) testRefusalStaysRefused(t *testing.T) {
	l, s := su.newLedger(t)
	ctx := context.Background()
	a := MustOpen(t, l, alice, "EUR")
	b := MustOpen(t, l, bob, "EUR")
	MustDeposit(t, l, a, 100)

	wd := ledger.WithdrawRequest{AccountID: string(a.ID), Amount: eur(500), IdempotencyKey: "wd", Principal: teller}
	_, err := l.Withdraw(ctx, wd)
	WantError(t, err, ledger.ErrInsufficientFunds, "account_id")
	tr := ledger.TransferRequest{FromAccountID: string(a.ID), ToAccountID: string(b.ID), Amount: eur(500), IdempotencyKey: "tr", Principal: payments}
	_, err = l.Transfer(ctx, tr)
	WantError(t, err, ledger.ErrInsufficientFunds, "from_account_id")

	MustDeposit(t, l, a, 10000) // now there is enough

	_, err = l.Withdraw(ctx, wd)
	WantError(t, err, ledger.ErrInsufficientFunds, "account_id")
	_, err = l.Transfer(ctx, tr)
	WantError(t, err, ledger.ErrInsufficientFunds, "from_account_id")
	if bal := BalanceOf(t, l, a.ID); bal != 10100 {
		t.Errorf("balance = %d, want 10100: a replayed refusal moved money", bal)
	}
	// The same request under a new key succeeds.
	wd.IdempotencyKey = "wd-2"
	if _, err := l.Withdraw(ctx, wd); err != nil {
		t.Errorf("Withdraw under a new key: %v", err)
	}
	// A recorded refusal still detects a different request under its key.
	tr.Amount = eur(1)
	_, err = l.Transfer(ctx, tr)
	WantError(t, err, ledger.ErrIdempotencyMismatch, "idempotency_key")
	CheckInvariants(t, s)
}

// testValidationIsNotRecorded checks that malformed input does not burn the
// key: the corrected request succeeds under it.
func (su suite) testValidationIsNotRecorded(t *testing.T) {
	l, _ := su.newLedger(t)
	ctx := context.Background()
	a := MustOpen(t, l, alice, "EUR")
	bad := []ledger.DepositRequest{
		{AccountID: string(a.ID), Amount: eur(0), IdempotencyKey: "k", Principal: teller},
		{AccountID: string(a.ID), Amount: money.Amount{Currency: "XYZ", Minor: 5}, IdempotencyKey: "k", Principal: teller},
		{AccountID: "acc_bad", Amount: eur(5), IdempotencyKey: "k", Principal: teller},
		{AccountID: string(a.ID), Amount: eur(5), IdempotencyKey: "k", Principal: teller, Reference: "\x07"},
	}
	for _, r := range bad {
		if _, err := l.Deposit(ctx, r); !errors.Is(err, ledger.ErrInvalidArgument) {
			t.Fatalf("Deposit(%+v) = %v, want ErrInvalidArgument", r, err)
		}
	}
	if _, err := l.Deposit(ctx, ledger.DepositRequest{AccountID: string(a.ID), Amount: eur(5), IdempotencyKey: "k", Principal: teller}); err != nil {
		t.Errorf("corrected Deposit under the same key: %v", err)
	}
}

// testIdempotencyScope checks that keys are per caller: two callers using
// the same key neither collide nor see each other's outcome.
func (su suite) testIdempotencyScope(t *testing.T) {
	l, _ := su.newLedger(t)
	ctx := context.Background()
	a := MustOpen(t, l, alice, "EUR")
	t1, err := l.Deposit(ctx, ledger.DepositRequest{AccountID: string(a.ID), Amount: eur(100), IdempotencyKey: "same", Principal: teller})
	if err != nil {
		t.Fatal(err)
	}
	otherTeller := "spiffe://bank.local/teller/tom"
	t2, err := l.Deposit(ctx, ledger.DepositRequest{AccountID: string(a.ID), Amount: eur(200), IdempotencyKey: "same", Principal: otherTeller})
	if err != nil {
		t.Fatalf("same key from another caller: %v", err)
	}
	if t1.ID == t2.ID || t2.Principal != otherTeller {
		t.Errorf("second caller got %+v, want its own transaction", t2)
	}
	if bal := BalanceOf(t, l, a.ID); bal != 300 {
		t.Errorf("balance = %d, want 300", bal)
	}
}

// testConcurrentDuplicates sends the same request under the same key from
// many goroutines at once: one effect, and every caller gets it.
func (su suite) testConcurrentDuplicates(t *testing.T) {
	l, s := su.newLedger(t)
	ctx := context.Background()
	a := MustOpen(t, l, alice, "EUR")
	b := MustOpen(t, l, bob, "EUR")
	MustDeposit(t, l, a, 1000)

	const n = 32
	var wg sync.WaitGroup
	ids := make([]ledger.TransactionID, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			tr, err := l.Transfer(ctx, ledger.TransferRequest{FromAccountID: string(a.ID), ToAccountID: string(b.ID),
				Amount: eur(600), IdempotencyKey: "dup", Principal: payments})
			ids[i], errs[i] = tr.ID, err
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("caller %d got transaction %s, caller 0 got %s", i, ids[i], ids[0])
		}
	}
	if got := BalanceOf(t, l, b.ID); got != 600 {
		t.Errorf("balance = %d, want 600 (one effect)", got)
	}
	if snap := CheckInvariants(t, s); len(snap.Entries) != 4 {
		t.Errorf("%d entries, want 4", len(snap.Entries))
	}
}
