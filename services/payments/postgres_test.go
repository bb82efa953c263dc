package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	"mtlsbank/internal/payments/pgstore"
	"mtlsbank/internal/pgtest"
)

// TestTwoReplicasOnPostgres runs two payments runtimes (two processes' worth: each
// its own TLS source, policy, store pool, recovery worker) on one PostgreSQL
// database given as --db, beside the real accounts service. alice sends 20
// payments of 100.00 EUR at once, alternating between them, against
// --customer-daily-limit EUR:500.00: together they accept five and exactly 500.00
// EUR leaves her account. A payment made on one replica reads back on the other,
// the rows are in PostgreSQL, and the runtime role's password (in the password
// file) is in no log. The replicas run as the runtime role after the migration
// step (pgstore.Migrate, what payments --migrate runs) as the owner.
func TestTwoReplicasOnPostgres(t *testing.T) {
	owner, runtime := pgtest.NewRole(t), pgtest.NewRole(t)
	db := pgtest.Provision(t, owner, runtime)
	ctx := context.Background()
	if _, err := pgstore.Migrate(ctx, owner.URL(db), runtime.Name); err != nil {
		t.Fatalf("payments --migrate: %v", err)
	}
	url := runtime.URL(db)
	args := []string{"--db", url, "--customer-daily-limit", "EUR:500.00,USD:500.00"}
	// Each replica its own CRL history and audit trail.
	own := func() []string {
		dir := t.TempDir()
		return slices.Concat(args, []string{"--crl-state", filepath.Join(dir, "crl-state.json"), "--audit-file", filepath.Join(dir, "audit.jsonl")})
	}
	b := newBank(t, own()...)
	second := b.startPayments(t, bankSetup{}, own()...)
	aliceAcc := b.open(t, aliceID, 10_000_00)
	bobAcc := b.open(t, bobID, 0)
	replicas := []paymentsv1.PaymentsServiceClient{b.payments(t, aliceID), b.paymentsOf(t, second, aliceID)}

	const n = 20
	resps := make([]*paymentsv1.CreatePaymentResponse, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			resps[i], errs[i] = replicas[i%2].CreatePayment(ctx, &paymentsv1.CreatePaymentRequest{
				FromAccountId: aliceAcc, ToAccountId: bobAcc, Amount: eur(100_00), IdempotencyKey: fmt.Sprintf("burst-%d", i),
			})
		})
	}
	close(start)
	wg.Wait()
	var ok int
	var made *paymentsv1.Payment
	other := -1 // the replica that did not make it
	for i, err := range errs {
		switch status.Code(err) {
		case codes.OK:
			ok++
			made, other = resps[i].GetPayment(), (i+1)%2
		case codes.ResourceExhausted:
		default:
			t.Fatalf("payment %d: %v", i, err)
		}
	}
	if ok != 5 {
		t.Fatalf("%d payments accepted by the two replicas together, want 5 (500.00 of 100.00 each)", ok)
	}
	b.wantBalances(t, []string{aliceAcc, bobAcc}, 10_000_00-500_00, 500_00)

	if made == nil {
		t.Fatal("no payment accepted")
	}
	// Which replica's calls won the limit is a race: read an accepted one on the other.
	got, err := replicas[other].GetPayment(ctx, &paymentsv1.GetPaymentRequest{Id: made.GetId()})
	if err != nil || got.GetPayment().GetStatus() != paymentsv1.PaymentStatus_PAYMENT_STATUS_COMPLETED {
		t.Fatalf("payment %s read on the other replica: %v, %v", made.GetId(), got, err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows, completed int
	if err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE status = 'COMPLETED') FROM payments`).Scan(&rows, &completed); err != nil {
		t.Fatal(err)
	}
	if rows != n || completed != 5 {
		t.Fatalf("PostgreSQL holds %d payments, %d COMPLETED; want %d and 5", rows, completed, n)
	}
	if strings.Contains(b.logs.String(), runtime.Password()) {
		t.Error("a log shows the database password")
	}
}
