package refusal_test

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"mtlsbank/internal/ledger"
	"mtlsbank/internal/refusal"
)

// TestLedgerReason pins the reason of every ledger sentinel, wrapped as the ledger
// wraps them, and checks that an ownership refusal (an authorization denial) and an
// unknown error get none.
func TestLedgerReason(t *testing.T) {
	tests := []struct {
		err    error
		reason string
	}{
		{ledger.ErrInsufficientFunds, refusal.InsufficientFunds},
		{ledger.ErrIdempotencyMismatch, refusal.IdempotencyKeyReused},
		{ledger.ErrAccountNotFound, refusal.AccountNotFound},
		{ledger.ErrTransactionNotFound, refusal.TransactionNotFound},
		{ledger.ErrSupplyLimit, refusal.SupplyLimitReached},
		{ledger.ErrTransferVoided, refusal.TransferVoided},
		{ledger.ErrConcurrentRequest, refusal.ConcurrentRequest},
		{ledger.ErrClosed, refusal.ServiceShuttingDown},
		{ledger.ErrMissingField, refusal.MissingField},
		{ledger.ErrMalformedID, refusal.MalformedID},
		{ledger.ErrInvalidAmount, refusal.InvalidAmount},
		{ledger.ErrUnknownCurrency, refusal.UnknownCurrency},
		{ledger.ErrCurrencyMismatch, refusal.CurrencyMismatch},
		{ledger.ErrSelfTransfer, refusal.SelfTransfer},
		{ledger.ErrAmountTooLarge, refusal.AmountTooLarge},
		{ledger.ErrBalanceOverflow, refusal.BalanceOverflow},
		{ledger.ErrInvalidSPIFFEID, refusal.InvalidOwner},
		{ledger.ErrInvalidText, refusal.InvalidText},
		{ledger.ErrInvalidIdempotencyKey, refusal.InvalidIdempotencyKey},
		{ledger.ErrInvalidPageSize, refusal.InvalidPageSize},
		{ledger.ErrInvalidPageToken, refusal.InvalidPageToken},
		{ledger.ErrInvalidSequence, refusal.InvalidSequence},
		{ledger.ErrInvalidArgument, refusal.InvalidArgument},
		{ledger.ErrNotOwner, ""},
		{errors.New("disk on fire"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			for _, err := range []error{tt.err, &ledger.Error{Field: "f", Err: tt.err}, fmt.Errorf("op: %w", &ledger.Error{Err: tt.err})} {
				got, ok := refusal.LedgerReason(err)
				if got != tt.reason || ok != (tt.reason != "") {
					t.Errorf("LedgerReason(%v) = %q, %v; want %q", err, got, ok, tt.reason)
				}
			}
		})
	}
}

// TestWithErrorInfo checks that the ErrorInfo comes after the other details, and that
// Info reads only the bank's domain.
func TestWithErrorInfo(t *testing.T) {
	br := &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "amount"}}}
	err := refusal.WithErrorInfo(status.New(codes.InvalidArgument, "bad"), refusal.InvalidAmount, map[string]string{"field": "amount"}, br)
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument || st.Message() != "bad" || len(st.Details()) != 2 {
		t.Fatalf("status %v with details %v", st, st.Details())
	}
	if _, ok := st.Details()[0].(*errdetails.BadRequest); !ok {
		t.Errorf("first detail %T, want the BadRequest", st.Details()[0])
	}
	ei, ok := refusal.Info(err)
	if !ok || ei.GetReason() != refusal.InvalidAmount || ei.GetDomain() != refusal.Domain || ei.GetMetadata()["field"] != "amount" {
		t.Errorf("Info = %v, %v", ei, ok)
	}
	other, _ := status.New(codes.FailedPrecondition, "x").WithDetails(&errdetails.ErrorInfo{Reason: refusal.InsufficientFunds, Domain: "evil.example"})
	if ei, ok := refusal.Info(other.Err()); ok {
		t.Errorf("Info read an ErrorInfo of another domain: %v", ei)
	}
	if _, ok := refusal.Info(errors.New("plain")); ok {
		t.Error("Info found an ErrorInfo in a plain error")
	}
}
