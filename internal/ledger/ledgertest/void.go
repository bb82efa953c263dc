package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"mtlsbank/internal/ledger"
)

// voidOf is req as a void of itself.
func voidOf(req ledger.TransferRequest) ledger.TransferRequest {
	req.Void = true
	return req
}

// testVoidUnknownKey: a void of a key without an outcome records the refusal
// "voided"; the original sent afterwards (the same request, from the same caller on
// behalf of the same user) is refused with it and moves nothing, also after a
// restart on the same file. The key is the caller's: another caller's request with
// the same key is not touched.
func (su suite) testVoidUnknownKey(t *testing.T) {
	ctx := context.Background()
	s := su.newStore(t)
	l := su.startLedger(t, s)
	a := MustOpen(t, l, alice, "EUR")
	b := MustOpen(t, l, bob, "EUR")
	MustDeposit(t, l, a, 100_00)
	req := ledger.TransferRequest{
		FromAccountID: string(a.ID), ToAccountID: string(b.ID), Amount: eur(25_00),
		IdempotencyKey: "payment:pay_1", Reference: "rent", Principal: payments, OnBehalfOf: alice,
	}
	before := CheckInvariants(t, s)

	_, err := l.Transfer(ctx, voidOf(req))
	WantError(t, err, ledger.ErrTransferVoided, "idempotency_key")
	if errors.Is(err, ledger.ErrInvalidArgument) {
		t.Errorf("void refusal %v is an invalid argument; the request was well-formed", err)
	}
	_, err = l.Transfer(ctx, req)
	WantError(t, err, ledger.ErrTransferVoided, "idempotency_key")
	_, err = l.Transfer(ctx, voidOf(req))
	WantError(t, err, ledger.ErrTransferVoided, "idempotency_key")
	// The key holds the voided request's fields: another request under it is a misuse.
	other := req
	other.Amount = eur(1)
	_, err = l.Transfer(ctx, other)
	WantError(t, err, ledger.ErrIdempotencyMismatch, "idempotency_key")
	if after := CheckInvariants(t, s); len(after.Entries) != len(before.Entries) {
		t.Fatalf("a voided key wrote %d entries", len(after.Entries)-len(before.Entries))
	}
	if got := BalanceOf(t, l, a.ID); got != 100_00 {
		t.Fatalf("alice's balance %d after a voided transfer, want 100_00", got)
	}

	// The record is durable: the original arriving after a restart is refused too.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = su.startLedger(t, s)
	_, err = l.Transfer(ctx, req)
	WantError(t, err, ledger.ErrTransferVoided, "idempotency_key")

	// Keys are scoped by caller: the teller's own transfer with the same key runs.
	own := req
	own.Principal, own.OnBehalfOf = teller, ""
	if _, err := l.Transfer(ctx, own); err != nil {
		t.Fatalf("another caller's transfer under the same key: %v", err)
	}
	if got := BalanceOf(t, l, b.ID); got != 25_00 {
		t.Fatalf("bob's balance %d, want 25_00 from the teller's transfer only", got)
	}
	CheckInvariants(t, s)
}

// testVoidReplaysOutcome: a void of a key that already has an outcome returns that
// outcome exactly as a retry would, and changes nothing.
func (su suite) testVoidReplaysOutcome(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// first is sent before the void; it runs against a (100_00) and b (0).
		first func(req ledger.TransferRequest) ledger.TransferRequest
		// wantErr is the refusal of first and of the void; nil for a transfer.
		wantErr error
		// void is the void sent; nil: voidOf(first).
		void func(req ledger.TransferRequest) ledger.TransferRequest
	}{
		{
			name:  "completed transfer",
			first: func(req ledger.TransferRequest) ledger.TransferRequest { return req },
		},
		{
			name: "refused for insufficient funds",
			first: func(req ledger.TransferRequest) ledger.TransferRequest {
				req.Amount = eur(500_00)
				return req
			},
			wantErr: ledger.ErrInsufficientFunds,
		},
		{
			name: "refused for an unknown account",
			first: func(req ledger.TransferRequest) ledger.TransferRequest {
				req.ToAccountID = "acc_0000000000000000000000000z"
				return req
			},
			wantErr: ledger.ErrAccountNotFound,
		},
		{
			name:  "void with other fields",
			first: func(req ledger.TransferRequest) ledger.TransferRequest { return req },
			void: func(req ledger.TransferRequest) ledger.TransferRequest {
				req.Void, req.Amount = true, eur(24_99)
				return req
			},
			wantErr: ledger.ErrIdempotencyMismatch,
		},
		{
			name:  "void on behalf of another user",
			first: func(req ledger.TransferRequest) ledger.TransferRequest { return req },
			void: func(req ledger.TransferRequest) ledger.TransferRequest {
				req.Void, req.OnBehalfOf = true, bob
				return req
			},
			wantErr: ledger.ErrIdempotencyMismatch,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, s := su.newLedger(t)
			a := MustOpen(t, l, alice, "EUR")
			b := MustOpen(t, l, bob, "EUR")
			MustDeposit(t, l, a, 100_00)
			first := tt.first(ledger.TransferRequest{
				FromAccountID: string(a.ID), ToAccountID: string(b.ID), Amount: eur(25_00),
				IdempotencyKey: "payment:pay_1", Principal: payments, OnBehalfOf: alice,
			})
			original, origErr := l.Transfer(ctx, first)
			wantFirst := tt.wantErr
			if tt.void != nil {
				wantFirst = nil // the first request completes; the void is what is wrong
			}
			if !errors.Is(origErr, wantFirst) {
				t.Fatalf("first request: %v, want %v", origErr, wantFirst)
			}
			// A later deposit would let a refused transfer succeed now: the key must not.
			MustDeposit(t, l, a, 1000_00)
			before := CheckInvariants(t, s)

			void := voidOf(first)
			if tt.void != nil {
				void = tt.void(first)
			}
			got, err := l.Transfer(ctx, void)
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("void: %v, want %v", err, tt.wantErr)
				}
				if tt.void == nil && err.Error() != origErr.Error() {
					t.Errorf("void refusal %q, want the original %q", err, origErr)
				}
			case err != nil:
				t.Fatalf("void of a completed transfer: %v, want its transaction", err)
			default:
				if !got.Replayed || !equalTransactions(got, original) {
					t.Fatalf("void = %+v (replayed %v), want the original %+v replayed", got, got.Replayed, original)
				}
			}
			if after := CheckInvariants(t, s); len(after.Entries) != len(before.Entries) {
				t.Fatalf("the void wrote %d entries", len(after.Entries)-len(before.Entries))
			}
			// The key's outcome is unchanged: a retry of the first request gets it again.
			again, err := l.Transfer(ctx, first)
			if fmt.Sprint(err) != fmt.Sprint(origErr) || (origErr == nil && !equalTransactions(again, original)) {
				t.Fatalf("retry after the void: %+v, %v; want %+v, %v", again, err, original, origErr)
			}
		})
	}
}

// testVoidIgnoresAmountLimit: a transfer made under a higher per-request limit is
// still found by a void after the limit was lowered (a restart with other flags),
// rather than hidden behind an InvalidArgument that says nothing about the key.
func (su suite) testVoidIgnoresAmountLimit(t *testing.T) {
	ctx := context.Background()
	s := su.newStore(t)
	l := su.startLedger(t, s)
	a := MustOpen(t, l, alice, "EUR")
	b := MustOpen(t, l, bob, "EUR")
	MustDeposit(t, l, a, 5000_00)
	req := ledger.TransferRequest{
		FromAccountID: string(a.ID), ToAccountID: string(b.ID), Amount: eur(2000_00),
		IdempotencyKey: "payment:big", Principal: payments, OnBehalfOf: alice,
	}
	original, err := l.Transfer(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = su.startLedger(t, s, ledger.WithMaxAmount(limits(t, ledger.DefaultMaxAmounts(), "EUR:500.00")))
	_, err = l.Transfer(ctx, req)
	WantError(t, err, ledger.ErrAmountTooLarge, "amount.minor_units") // a retry is checked as a new request
	got, err := l.Transfer(ctx, voidOf(req))
	if err != nil || !got.Replayed || !equalTransactions(got, original) {
		t.Fatalf("void under a lower limit: %+v, %v; want the original transfer", got, err)
	}
	// A void of an unknown key above the limit is recorded like any other.
	big := req
	big.IdempotencyKey = "payment:never-sent"
	_, err = l.Transfer(ctx, voidOf(big))
	WantError(t, err, ledger.ErrTransferVoided, "idempotency_key")
}

// testVoidRacesOriginal: a void and the original transfer of one key, sent at the
// same moment, many times over: in every round exactly one of them decides the key.
// Either the transfer moved the money and the void returns that transaction, or the
// void came first and the transfer is refused; never both, never neither. The
// balances are the sum of the rounds that moved.
func (su suite) testVoidRacesOriginal(t *testing.T) {
	ctx := context.Background()
	l, s := su.newLedger(t)
	a := MustOpen(t, l, alice, "EUR")
	b := MustOpen(t, l, bob, "EUR")
	const rounds, amount = 300, 1_00
	MustDeposit(t, l, a, rounds*amount)

	var moved, voided int
	for i := range rounds {
		req := ledger.TransferRequest{
			FromAccountID: string(a.ID), ToAccountID: string(b.ID), Amount: eur(amount),
			IdempotencyKey: fmt.Sprintf("payment:race-%d", i), Principal: payments, OnBehalfOf: alice,
		}
		var (
			wg              sync.WaitGroup
			start           = make(chan struct{})
			txn, vtxn       ledger.Transaction
			txnErr, voidErr error
		)
		wg.Go(func() { <-start; txn, txnErr = l.Transfer(ctx, req) })
		wg.Go(func() { <-start; vtxn, voidErr = l.Transfer(ctx, voidOf(req)) })
		close(start)
		wg.Wait()
		switch {
		case txnErr == nil && voidErr == nil:
			if txn.Replayed || !vtxn.Replayed || !equalTransactions(txn, vtxn) {
				t.Fatalf("round %d: transfer %+v and void %+v do not agree on one transaction", i, txn, vtxn)
			}
			moved++
		case errors.Is(txnErr, ledger.ErrTransferVoided) && errors.Is(voidErr, ledger.ErrTransferVoided):
			voided++
		default:
			t.Fatalf("round %d: transfer %v, void %v; want both moved or both voided", i, txnErr, voidErr)
		}
	}
	t.Logf("%d rounds moved, %d voided", moved, voided)
	if got := BalanceOf(t, l, b.ID); got != int64(moved*amount) {
		t.Fatalf("bob holds %d after %d moved rounds of %d", got, moved, amount)
	}
	if got := BalanceOf(t, l, a.ID); got != int64((rounds-moved)*amount) {
		t.Fatalf("alice holds %d, want %d", got, (rounds-moved)*amount)
	}
	snap := CheckInvariants(t, s)
	if want := 2 + 2*moved; len(snap.Entries) != want {
		t.Fatalf("%d entries, want %d (the funding deposit and %d transfers)", len(snap.Entries), want, moved)
	}
}
