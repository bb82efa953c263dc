package payments

import (
	"context"
	"testing"

	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	"mtlsbank/internal/validation"
)

// TestPaymentIDsPassTheirRule: every id the service hands out is one GetPayment's
// request rule (bank.payment_id) admits, or a payment could never be read back.
func TestPaymentIDsPassTheirRule(t *testing.T) {
	v, err := validation.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 200 {
		id := newPaymentID()
		if err := v.Check(context.Background(), &paymentsv1.GetPaymentRequest{Id: id}); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
}
