package main

import (
	"context"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	typev1 "mtlsbank/gen/bank/type/v1"
	"mtlsbank/internal/refusal"
)

// TestRefusalReasons calls the real pair of services over mutual TLS with one request
// per kind of refusal and checks its code and its google.rpc.ErrorInfo: reason, domain
// and the metadata a client acts on. An authorization denial carries no ErrorInfo.
func TestRefusalReasons(t *testing.T) {
	b := newBank(t, "--customer-limit", "EUR:250.00", "--customer-daily-limit", "EUR:300.00")
	ctx := context.Background()
	aliceAcc := b.open(t, aliceID, 1000_00)
	alicePoor := b.open(t, aliceID, 50)
	bobAcc := b.open(t, bobID, 0)
	alice, intern, auditor := b.payments(t, aliceID), b.payments(t, internID), b.payments(t, auditorID)
	const unknownAccount = "acc_00000000000000000000000000"
	pay := func(from, to string, amount *typev1.Money, key string) func() error {
		return func() error {
			_, err := alice.CreatePayment(ctx, &paymentsv1.CreatePaymentRequest{FromAccountId: from, ToAccountId: to, Amount: amount, IdempotencyKey: key})
			return err
		}
	}
	// 200.00 of the 300.00 daily limit used: 100.00 remains.
	if err := pay(aliceAcc, bobAcc, eur(200_00), "first")(); err != nil {
		t.Fatalf("first payment: %v", err)
	}

	tests := []struct {
		name   string
		call   func() error
		code   codes.Code
		reason string            // "" for an authorization denial: no ErrorInfo at all
		md     map[string]string // metadata the ErrorInfo must hold
	}{
		{name: "over the per-payment limit", call: pay(aliceAcc, bobAcc, eur(260_00), "big"), code: codes.PermissionDenied,
			reason: refusal.CustomerPaymentLimitExceeded, md: map[string]string{"limit": "per_payment", "currency": "EUR", "max": "250.00", "amount": "260.00"}},
		{name: "over what remains of the daily limit", call: pay(aliceAcc, bobAcc, eur(150_00), "daily"), code: codes.ResourceExhausted,
			reason: refusal.CustomerDailyLimitExceeded, md: map[string]string{"limit": "daily", "currency": "EUR", "max": "300.00", "remaining": "100.00", "amount": "150.00"}},
		{name: "insufficient funds", call: pay(alicePoor, bobAcc, eur(1_00), "poor"), code: codes.FailedPrecondition,
			reason: refusal.InsufficientFunds},
		{name: "insufficient funds, replayed", call: pay(alicePoor, bobAcc, eur(1_00), "poor"), code: codes.FailedPrecondition,
			reason: refusal.InsufficientFunds},
		{name: "idempotency key reused", call: pay(aliceAcc, bobAcc, eur(1_00), "first"), code: codes.FailedPrecondition,
			reason: refusal.IdempotencyKeyReused},
		{name: "unknown destination account", call: pay(aliceAcc, unknownAccount, eur(1_00), "nowhere"), code: codes.NotFound,
			reason: refusal.AccountNotFound},
		{name: "self-payment", call: pay(aliceAcc, aliceAcc, eur(1_00), "self"), code: codes.InvalidArgument,
			reason: refusal.SelfTransfer, md: map[string]string{"field": "to_account_id"}},
		{name: "zero amount", call: pay(aliceAcc, bobAcc, eur(0), "zero"), code: codes.InvalidArgument,
			reason: refusal.InvalidAmount, md: map[string]string{"field": "amount.minor_units"}},
		{name: "unknown currency", call: pay(aliceAcc, bobAcc, &typev1.Money{CurrencyCode: "XXY", MinorUnits: 1}, "xxy"), code: codes.InvalidArgument,
			reason: refusal.UnknownCurrency, md: map[string]string{"field": "amount.currency_code"}},
		{name: "malformed account id", call: pay("acc_x", bobAcc, eur(1_00), "malformed"), code: codes.InvalidArgument,
			reason: refusal.MalformedID, md: map[string]string{"field": "from_account_id"}},
		{name: "missing account id", call: pay("", bobAcc, eur(1_00), "missing"), code: codes.InvalidArgument,
			reason: refusal.MissingField, md: map[string]string{"field": "from_account_id"}},
		{name: "invalid idempotency key", call: pay(aliceAcc, bobAcc, eur(1_00), "two words"), code: codes.InvalidArgument,
			reason: refusal.InvalidIdempotencyKey, md: map[string]string{"field": "idempotency_key"}},
		{name: "currency customers may not pay in", call: pay(aliceAcc, bobAcc, &typev1.Money{CurrencyCode: "USD", MinorUnits: 1_00}, "usd"), code: codes.PermissionDenied,
			reason: refusal.CurrencyNotAllowed, md: map[string]string{"currency": "USD"}},
		{name: "unknown payment", code: codes.NotFound, reason: refusal.PaymentNotFound, call: func() error {
			_, err := auditor.GetPayment(ctx, &paymentsv1.GetPaymentRequest{Id: "pay_DOESNOTEXISTAAAAAAAAAAAAAA"})
			return err
		}},
		{name: "negative page size", code: codes.InvalidArgument, reason: refusal.InvalidPageSize, call: func() error {
			_, err := auditor.ListPayments(ctx, &paymentsv1.ListPaymentsRequest{PageSize: -1})
			return err
		}},
		// Authorization denials stay generic.
		{name: "role without the method", code: codes.PermissionDenied, call: func() error {
			_, err := intern.CreatePayment(ctx, &paymentsv1.CreatePaymentRequest{FromAccountId: aliceAcc, ToAccountId: bobAcc, Amount: eur(1_00), IdempotencyKey: "intern"})
			return err
		}},
		{name: "customer reads a payment that is not hers", code: codes.PermissionDenied, call: func() error {
			_, err := alice.GetPayment(ctx, &paymentsv1.GetPaymentRequest{Id: "pay_DOESNOTEXISTAAAAAAAAAAAAAA"})
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			st := status.Convert(err)
			if st.Code() != tc.code {
				t.Fatalf("code %s, want %s (%v)", st.Code(), tc.code, err)
			}
			var infos []*errdetails.ErrorInfo
			for _, d := range st.Details() {
				if ei, ok := d.(*errdetails.ErrorInfo); ok {
					infos = append(infos, ei)
				}
			}
			if tc.reason == "" {
				if len(infos) != 0 {
					t.Fatalf("authorization denial carries ErrorInfo %v, want none", infos)
				}
				return
			}
			if len(infos) != 1 || infos[0].GetReason() != tc.reason || infos[0].GetDomain() != refusal.Domain {
				t.Fatalf("ErrorInfo %v, want one with reason %s in domain %s (%v)", infos, tc.reason, refusal.Domain, err)
			}
			for k, v := range tc.md {
				if got := infos[0].GetMetadata()[k]; got != v {
					t.Errorf("metadata %s = %q, want %q (all: %v)", k, got, v, infos[0].GetMetadata())
				}
			}
		})
	}
	b.wantBalances(t, []string{aliceAcc, alicePoor, bobAcc}, 800_00, 50, 200_00)
}
