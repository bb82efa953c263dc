package accounts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	"mtlsbank/internal/ledger"
	"mtlsbank/internal/refusal"
)

// TestToStatus pins the code of every ledger sentinel, including those the server
// tests cannot provoke on SQLite (ErrConcurrentRequest).
func TestToStatus(t *testing.T) {
	s := NewService(nil, slog.New(slog.DiscardHandler))
	wrap := func(err error) error { return fmt.Errorf("ledger: op: %w", err) }
	tests := []struct {
		name   string
		err    error
		code   codes.Code
		reason string // the ErrorInfo reason; "" for none
	}{
		{name: "invalid argument", reason: refusal.InvalidAmount, err: &ledger.Error{Field: "amount.minor_units", Err: ledger.ErrInvalidAmount}, code: codes.InvalidArgument},
		{name: "bare invalid argument", reason: refusal.InvalidPageToken, err: ledger.ErrInvalidPageToken, code: codes.InvalidArgument},
		{name: "insufficient funds", reason: refusal.InsufficientFunds, err: &ledger.Error{Field: "account_id", Err: ledger.ErrInsufficientFunds}, code: codes.FailedPrecondition},
		{name: "idempotency mismatch", reason: refusal.IdempotencyKeyReused, err: &ledger.Error{Err: ledger.ErrIdempotencyMismatch}, code: codes.FailedPrecondition},
		{name: "account not found", reason: refusal.AccountNotFound, err: &ledger.Error{Err: ledger.ErrAccountNotFound}, code: codes.NotFound},
		{name: "transaction not found", reason: refusal.TransactionNotFound, err: ledger.ErrTransactionNotFound, code: codes.NotFound},
		{name: "not owner", err: &ledger.Error{Err: ledger.ErrNotOwner}, code: codes.PermissionDenied},
		{name: "concurrent request", reason: refusal.ConcurrentRequest, err: &ledger.Error{Err: ledger.ErrConcurrentRequest}, code: codes.Aborted},
		{name: "closed", reason: refusal.ServiceShuttingDown, err: wrap(ledger.ErrClosed), code: codes.Unavailable},
		{name: "canceled", err: wrap(context.Canceled), code: codes.Canceled},
		{name: "deadline", err: wrap(context.DeadlineExceeded), code: codes.DeadlineExceeded},
		{name: "status passes through", err: status.Error(codes.ResourceExhausted, "slow down"), code: codes.ResourceExhausted},
		{name: "unexpected", err: errors.New("disk on fire"), code: codes.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := status.Convert(s.toStatus(context.Background(), tt.err))
			if st.Code() != tt.code {
				t.Errorf("code %s, want %s (%v)", st.Code(), tt.code, tt.err)
			}
			var reasons []string
			for _, d := range st.Details() {
				if ei, ok := d.(*errdetails.ErrorInfo); ok {
					reasons = append(reasons, ei.GetDomain()+"/"+ei.GetReason())
				}
			}
			switch {
			case tt.reason == "" && len(reasons) != 0:
				t.Errorf("ErrorInfo %v, want none", reasons)
			case tt.reason != "" && (len(reasons) != 1 || reasons[0] != refusal.Domain+"/"+tt.reason):
				t.Errorf("ErrorInfo %v, want [%s/%s]", reasons, refusal.Domain, tt.reason)
			}
			if tt.code == codes.Internal && st.Message() != msgInternal {
				t.Errorf("internal message %q leaks detail", st.Message())
			}
		})
	}
	if err := s.toStatus(context.Background(), nil); err != nil {
		t.Errorf("toStatus(nil) = %v", err)
	}
}

// TestNoDecisionFailsClosed: without the authorization interceptor a handler refuses
// rather than serve an unknown caller.
func TestNoDecisionFailsClosed(t *testing.T) {
	s := NewService(nil, nil) // the ledger is never reached
	_, err := s.GetAccount(context.Background(), &accountsv1.GetAccountRequest{Id: "acc_00000000000000000000000000"})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("got %v, want Unauthenticated", err)
	}
}
