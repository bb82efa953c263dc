package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

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
	// A batch is observed right after its callers are answered, so the last one may land
	// just after the answer the test got: read /metrics until it holds.
	want := []struct {
		store       string
		minRequests float64
	}{{"payments", 4}, {"audit", 2}} // each payment recorded, then finished; each audited
	var last string
	deadline := time.Now().Add(10 * time.Second)
	for {
		last = checkCommitMetrics(t, b.probes+"/metrics", want)
		if last == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkCommitMetrics reads url and says what is missing, "" if nothing.
func checkCommitMetrics(t *testing.T, url string, want []struct {
	store       string
	minRequests float64
}) string {
	t.Helper()
	resp, err := http.Get(url)
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
			return -1
		}
		v, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range want {
		batches := value(`bank_commit_duration_seconds_count{store="` + c.store + `"}`)
		requests := value(`bank_commit_requests_sum{store="` + c.store + `"}`)
		seconds := value(`bank_commit_duration_seconds_sum{store="` + c.store + `"}`)
		if batches < 1 || requests < c.minRequests || requests < batches || seconds <= 0 {
			return fmt.Sprintf("store %s: %v commits of %v requests in %vs; want at least %v requests, and time", c.store, batches, requests, seconds, c.minRequests)
		}
	}
	return ""
}
