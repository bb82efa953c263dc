package cli

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"mtlsbank/internal/refusal"
)

// TestDiagnoseFromReason checks that a refusal carrying a google.rpc.ErrorInfo is
// explained from its reason and metadata, and that a PERMISSION_DENIED without one (a
// policy's denial) is still explained as a denial.
func TestDiagnoseFromReason(t *testing.T) {
	withInfo := func(t testing.TB, code codes.Code, msg, reason string, md map[string]string) error {
		t.Helper()
		err := refusal.WithErrorInfo(status.New(code, msg), reason, md)
		if _, ok := refusal.Info(err); !ok {
			t.Fatalf("status built for %s carries no ErrorInfo", reason)
		}
		return err
	}
	pay := facts{service: "payments", method: "/bank.payments.v1.PaymentService/CreatePayment"}
	tests := []struct {
		name       string
		err        error
		f          facts
		wantKind   Kind
		wantReason string
		want       []string
		wantNot    []string
	}{
		{
			name: "per-payment limit",
			err: withInfo(t, codes.PermissionDenied, "EUR 500.00 exceeds the per-payment limit of EUR 250.00 for customers",
				refusal.CustomerPaymentLimitExceeded, map[string]string{"limit": "per_payment", "currency": "EUR", "max": "250.00", "amount": "500.00"}),
			f:          pay,
			wantKind:   KindRequest,
			wantReason: refusal.CustomerPaymentLimitExceeded,
			want:       []string{"per-payment limit", "500.00 EUR", "250.00 EUR", "nothing moved"},
			wantNot:    []string{"role", "not yours", "permission denied"},
		},
		{
			name: "daily limit",
			err: withInfo(t, codes.ResourceExhausted, "payment pay_1 failed: over the daily limit",
				refusal.CustomerDailyLimitExceeded, map[string]string{"limit": "daily", "window": "24h", "currency": "EUR", "max": "1000.00", "remaining": "120.00", "amount": "200.00"}),
			f:          pay,
			wantKind:   KindRequest,
			wantReason: refusal.CustomerDailyLimitExceeded,
			want:       []string{"daily limit of 1000.00 EUR per 24h", "120.00 EUR of it remains", "200.00 EUR"},
			wantNot:    []string{"rate-limiting"},
		},
		{
			name:       "insufficient funds",
			err:        withInfo(t, codes.FailedPrecondition, "from_account_id: insufficient funds", refusal.InsufficientFunds, map[string]string{"field": "from_account_id"}),
			f:          facts{service: "accounts", method: "/bank.accounts.v1.AccountsService/Transfer"},
			wantKind:   KindRequest,
			wantReason: refusal.InsufficientFunds,
			want:       []string{"Transfer refused: the account to debit does not hold enough money", "nothing moved"},
		},
		{
			name:       "idempotency key reused",
			err:        withInfo(t, codes.FailedPrecondition, "idempotency key already used for a different request", refusal.IdempotencyKeyReused, nil),
			f:          facts{service: "accounts", method: "/bank.accounts.v1.AccountsService/Deposit"},
			wantKind:   KindRequest,
			wantReason: refusal.IdempotencyKeyReused,
			want:       []string{"idempotency key was already used for a different request", "use a new key"},
		},
		{
			name:     "policy denial without a reason",
			err:      status.Error(codes.PermissionDenied, "permission denied"),
			f:        pay,
			wantKind: KindPermissionDenied,
			want:     []string{"permission denied"},
		},
		{
			name:     "reason of another domain is ignored",
			err:      detailed(t, status.New(codes.FailedPrecondition, "no"), &errdetails.ErrorInfo{Reason: refusal.InsufficientFunds, Domain: "evil.example"}),
			f:        pay,
			wantKind: KindRequest,
			want:     []string{"cannot be done in the current state"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := diagnose(tc.err, tc.f)
			if d.kind != tc.wantKind {
				t.Errorf("kind = %q, want %q (line %q)", d.kind, tc.wantKind, d.line)
			}
			if d.reason != tc.wantReason {
				t.Errorf("reason = %q, want %q", d.reason, tc.wantReason)
			}
			for _, w := range tc.want {
				if !strings.Contains(d.line, w) {
					t.Errorf("line %q lacks %q", d.line, w)
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(d.line, w) {
					t.Errorf("line %q has %q", d.line, w)
				}
			}
		})
	}
}

func detailed(t testing.TB, st *status.Status, ei *errdetails.ErrorInfo) error {
	t.Helper()
	ds, err := st.WithDetails(ei)
	if err != nil {
		t.Fatal(errors.Join(errors.New("attach ErrorInfo"), err))
	}
	return ds.Err()
}
