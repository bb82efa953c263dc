package payments

import (
	"context"
	"testing"
	"time"

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

// TestPaymentIDsSortByTime: an id made in a later millisecond sorts after every id of
// an earlier one (inserts append to the indexes by id and by transfer key), and ids of
// the same millisecond differ in their 80 random bits.
func TestPaymentIDsSortByTime(t *testing.T) {
	first := newPaymentID()
	for start := time.Now(); time.Since(start) < 2*time.Millisecond; {
		// Wait for the clock, not for another goroutine: the next id is of a later millisecond.
	}
	if later := newPaymentID(); later <= first {
		t.Fatalf("id %s made 2 ms after %s sorts before it", later, first)
	}
	a, b := newPaymentID(), newPaymentID()
	// The last 12 characters are 58 of the random bits.
	if a[len(a)-12:] == b[len(b)-12:] {
		t.Fatalf("two ids share their random low bits: %s %s", a, b)
	}
}
