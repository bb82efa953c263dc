package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"mtlsbank/internal/ledger"
	"mtlsbank/internal/ledger/ledgertest"
	"mtlsbank/internal/money"
	"mtlsbank/internal/pgtest"
)

const payments = "spiffe://bank.local/service/payments"

// TestConflictAtCommitReruns: a writer that does not take the sequence counter
// row first (none of the store's do; a bug or a hand-run INSERT could) inserts
// a transfer's idempotency key while the ledger decides that transfer. The
// ledger's read of the key does not see the uncommitted row, so the store only
// learns of the duplicate when its deferred insert meets it at the commit.
// The ledger then runs the batch again: the transfer finds the key taken with
// other fields (ErrIdempotencyMismatch), exactly what a retry would have been
// told, and no money moved. Without the rerun the caller got an internal error.
func TestConflictAtCommitReruns(t *testing.T) {
	url := pgtest.NewDatabase(t)
	store := open(t, url)
	l := ledgertest.StartLedger(t, store)
	ctx := context.Background()
	a := ledgertest.MustOpen(t, l, "spiffe://bank.local/customer/alice", "EUR")
	b := ledgertest.MustOpen(t, l, "spiffe://bank.local/customer/alice", "EUR")
	ledgertest.MustDeposit(t, l, a, 1000)

	blind, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer blind.Close(context.Background())
	tx, err := blind.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, `INSERT INTO idempotency (principal, idem_key, fingerprint, transaction_id, refusal_code,
		refusal_field, refusal_detail, created_at) VALUES ($1, 'k', '\x00', NULL, 'insufficient_funds', '', '', 0)`, payments); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() {
		_, err := l.Transfer(ctx, ledger.TransferRequest{FromAccountID: string(a.ID), ToAccountID: string(b.ID),
			Amount: money.Amount{Currency: "EUR", Minor: 300}, IdempotencyKey: "k", Principal: payments})
		done <- err
	}()
	// The ledger's commit waits on the uncommitted key: then let it through.
	watch, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close(context.Background())
	for deadline := time.Now().Add(30 * time.Second); ; {
		var waiting int
		if err := watch.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the transfer ended (%v) before meeting the uncommitted key", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the ledger's commit never waited on the uncommitted key")
		}
		time.Sleep(10 * time.Millisecond) // polling the server, not synchronising
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		ledgertest.WantError(t, err, ledger.ErrIdempotencyMismatch, "idempotency_key")
	case <-time.After(30 * time.Second):
		t.Fatal("the transfer did not end after the blind writer committed")
	}
	if got := ledgertest.BalanceOf(t, l, a.ID); got != 1000 {
		t.Errorf("debited account holds %d, want 1000: money moved", got)
	}
	ledgertest.CheckInvariants(t, store)
}

// TestViewReadOneRead: ViewRead serves one read and refuses a second, which
// would see another snapshot.
func TestViewReadOneRead(t *testing.T) {
	s := open(t, pgtest.NewDatabase(t))
	ctx := context.Background()
	err := s.ViewRead(ctx, func(tx ledger.ReadTx) error {
		if _, found, err := tx.Account(ctx, "acc_00000000000000000000000001"); found || err != nil {
			t.Errorf("first read: found %v, %v; want not found", found, err)
		}
		_, err := tx.EntriesAfter(ctx, 0, 10)
		return err
	})
	if err == nil {
		t.Error("a second read in ViewRead succeeded")
	}
}
