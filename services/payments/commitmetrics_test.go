package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"

	paymentsv1 "mtlsbank/gen/bank/payments/v1"
)

// TestCommitMetrics: the service exports its group commits by store. After payments,
// the payments store's commits (the order, its outcome) and the audit file's (the
// money-moving call's record, synced before the answer) are on /metrics.
func TestCommitMetrics(t *testing.T) {
	b := newBank(t)
	ctx := context.Background()
	from, to := b.open(t, aliceID, 100_00), b.open(t, bobID, 0)
	alice := b.payments(t, aliceID)
	for _, key := range []string{"m-1", "m-2"} {
		resp, err := alice.CreatePayment(ctx, &paymentsv1.CreatePaymentRequest{FromAccountId: from, ToAccountId: to, Amount: eur(1_00), IdempotencyKey: key})
		if err != nil || resp.GetPayment().GetStatus() != paymentsv1.PaymentStatus_PAYMENT_STATUS_COMPLETED {
			t.Fatalf("payment %s: %v, %v", key, resp, err)
		}
	}
	resp, err := http.Get(b.probes + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	value := func(series string) float64 {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(body)
		if m == nil {
			t.Fatalf("/metrics has no %s", series)
		}
		v, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// Two payments: each recorded, then finished, in the payments store (batches may
	// group them); each audited before its answer.
	for _, c := range []struct {
		store       string
		minRequests float64
	}{{"payments", 4}, {"audit", 2}} {
		batches := value(`bank_commit_duration_seconds_count{store="` + c.store + `"}`)
		requests := value(`bank_commit_requests_sum{store="` + c.store + `"}`)
		seconds := value(`bank_commit_duration_seconds_sum{store="` + c.store + `"}`)
		if batches < 1 || requests < c.minRequests || requests < batches || seconds <= 0 {
			t.Errorf("store %s: %v commits of %v requests in %vs; want at least %v requests, and time", c.store, batches, requests, seconds, c.minRequests)
		}
	}
}
