package accounts_test

import (
	"context"
	"maps"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	"mtlsbank/internal/accounts"
)

// voidedInfo returns the ErrorInfo of a voided-key refusal in err, or nil.
func voidedInfo(err error) *errdetails.ErrorInfo {
	for _, d := range status.Convert(err).Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetReason() == accounts.ReasonTransferVoided {
			return ei
		}
	}
	return nil
}

// TestTransferVoid: through the real service (mutual TLS, the real policy, the ledger
// on SQLite), the payments service voids the keys of its delegated transfers. A void
// of a key without an outcome is FAILED_PRECONDITION with ErrorInfo TRANSFER_VOIDED
// (domain bank.local), and so is the original sent afterwards; a void of a key with
// an outcome returns it as a retry does. Nothing moves.
func TestTransferVoid(t *testing.T) {
	b := newBank(t)
	aliceEUR, bobEUR := b.aliceEUR.GetId(), b.bobEUR.GetId()
	req := func(key string, minor int64) *accountsv1.TransferRequest {
		return &accountsv1.TransferRequest{FromAccountId: aliceEUR, ToAccountId: bobEUR,
			Amount: amountOf("EUR", minor), IdempotencyKey: key, Reference: "rent"}
	}
	void := func(r *accountsv1.TransferRequest) *accountsv1.TransferRequest {
		v := proto.CloneOf(r)
		v.Void = true
		return v
	}
	asPayments := func(ctx context.Context, r *accountsv1.TransferRequest) (*accountsv1.TransferResponse, error) {
		return b.payments.Transfer(actingFor(ctx, aliceID), r)
	}

	t.Run("unknown key", func(t *testing.T) {
		ctx := callCtx(t)
		before := balances(t, b.teller)
		original := req("payment:unknown", 300)
		for i, r := range []*accountsv1.TransferRequest{void(original), original, void(original)} {
			_, err := asPayments(ctx, r)
			st := status.Convert(err)
			ei := voidedInfo(err)
			if st.Code() != codes.FailedPrecondition || ei.GetDomain() != accounts.ErrorDomain {
				t.Fatalf("request %d (void %v): %v (details %v); want FAILED_PRECONDITION with ErrorInfo %s in %s",
					i, r.GetVoid(), err, st.Details(), accounts.ReasonTransferVoided, accounts.ErrorDomain)
			}
		}
		if after := balances(t, b.teller); !maps.Equal(before, after) {
			t.Fatalf("balances %v after a voided key, want %v", after, before)
		}
	})

	t.Run("completed key", func(t *testing.T) {
		ctx := callCtx(t)
		original := req("payment:done", 400)
		first, err := asPayments(ctx, original)
		if err != nil {
			t.Fatal(err)
		}
		before := balances(t, b.teller)
		got, err := asPayments(ctx, void(original))
		if err != nil || !got.GetReplayed() || !proto.Equal(got.GetTransaction(), first.GetTransaction()) {
			t.Fatalf("void of a completed transfer: %v, %v; want the original transaction, replayed", got, err)
		}
		if after := balances(t, b.teller); !maps.Equal(before, after) {
			t.Fatalf("the void moved money: %v, want %v", after, before)
		}
	})

	t.Run("refused key", func(t *testing.T) {
		ctx := callCtx(t)
		original := req("payment:too-much", aliceEURFunds*10)
		_, origErr := asPayments(ctx, original)
		if status.Code(origErr) != codes.FailedPrecondition {
			t.Fatalf("overdraft: %v", origErr)
		}
		_, err := asPayments(ctx, void(original))
		if status.Code(err) != codes.FailedPrecondition || status.Convert(err).Message() != status.Convert(origErr).Message() || voidedInfo(err) != nil {
			t.Fatalf("void of a refused transfer: %v; want the original refusal %v", err, origErr)
		}
	})

	// A void is a Transfer: the same authorization, ownership and key scope.
	t.Run("only the transfer's own caller settles its key", func(t *testing.T) {
		ctx := callCtx(t)
		original := req("payment:contested", 500)
		_, err := b.alice.Transfer(ctx, void(original)) // customers may not call Transfer
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("alice voids directly: %v, want PERMISSION_DENIED", err)
		}
		_, err = b.payments.Transfer(actingFor(ctx, bobID), void(original)) // not bob's account
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("void on behalf of bob from alice's account: %v, want PERMISSION_DENIED", err)
		}
		before := balanceOf(t, b.teller, bobEUR)
		got, err := asPayments(ctx, original)
		if err != nil || got.GetReplayed() {
			t.Fatalf("the original after refused voids: %v, %v; want a new transfer", got, err)
		}
		if after := balanceOf(t, b.teller, bobEUR); after != before+500 {
			t.Fatalf("bob holds %d, want %d", after, before+500)
		}
	})
}
