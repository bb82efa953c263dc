package pgstore_test

import (
	"context"
	"testing"
	"time"

	"mtlsbank/internal/payments"
	"mtlsbank/internal/payments/pgstore"
	"mtlsbank/internal/pgtest"
)

// TestLeastPrivilege: the migration step (payments --migrate) runs as the owner
// role and grants the runtime role RuntimeGrants; a store of the runtime role
// (WithoutMigrations) records, leases and finishes payments under the rolling
// limit, but the runtime role can neither change the schema nor rewrite what an
// order says (amount, accounts, creator, keys), delete or truncate history, nor
// open another service's database (the ledger's).
func TestLeastPrivilege(t *testing.T) {
	ctx := context.Background()
	owner, runtime := pgtest.NewRole(t), pgtest.NewRole(t)
	db := pgtest.Provision(t, owner, runtime)

	pgtest.CheckMigrationStep(t, owner, runtime, db, func(ctx context.Context, url, role string) (int, error) {
		return pgstore.Migrate(ctx, url, role)
	}, openStore(pgstore.WithoutMigrations()), pgstore.ErrSchemaBehind)

	if !open(t, owner.URL(db), pgstore.WithoutMigrations()).CanChangeSchema() {
		t.Error("the owner's store says it cannot change the schema")
	}
	s := open(t, runtime.URL(db), pgstore.WithoutMigrations())
	if s.CanChangeSchema() {
		t.Error("the runtime role's store says it can change the schema")
	}
	orders := payments.NewOrders(s, time.Now)
	const alice = "spiffe://bank.local/customer/alice"
	lease := payments.Lease{Owner: "replica-a", Duration: time.Minute}
	var ids []string
	var recorded []payments.Payment
	for i, key := range []string{"k1", "k2"} {
		p, created, err := orders.Create(ctx, payments.Payment{
			ID: "pay_" + key, CreatedBy: alice, IdempotencyKey: key, Fingerprint: "f" + key,
			FromAccountID: "acc_a", ToAccountID: "acc_b", Currency: "EUR", MinorUnits: int64(100 * (i + 1)),
			TransferKey: "payment:pay_" + key,
		}, payments.CreateOptions{Limit: &payments.RollingLimit{MinorUnits: 1000, Window: 24 * time.Hour}, Lease: lease})
		if err != nil || !created || p.Status != payments.StatusPending {
			t.Fatalf("Create as the runtime role: %+v, created %v, %v", p, created, err)
		}
		ids = append(ids, p.ID)
		recorded = append(recorded, p)
	}
	if err := orders.Release(ctx, ids[0], lease.Owner); err != nil {
		t.Fatalf("Release as the runtime role: %v", err)
	}
	if _, claimed, err := orders.Claim(ctx, ids[0], payments.Lease{Owner: "replica-b", Duration: time.Minute}); err != nil || !claimed {
		t.Fatalf("Claim as the runtime role: claimed %v, %v", claimed, err)
	}
	if p, err := orders.Complete(ctx, recorded[0], "txn_1"); err != nil || p.Status != payments.StatusCompleted {
		t.Fatalf("Complete as the runtime role: %+v, %v", p, err)
	}
	if p, err := orders.Fail(ctx, recorded[1], "FAILED_PRECONDITION", "no"); err != nil || p.Status != payments.StatusFailed {
		t.Fatalf("Fail as the runtime role: %+v, %v", p, err)
	}

	pgtest.WantInsufficientPrivilege(t, runtime.URL(db),
		`ALTER TABLE payments ADD COLUMN x INT`,
		`DROP TABLE payments`,
		`CREATE TABLE stash (id INT)`,
		`CREATE INDEX payments_by_memo ON payments (memo)`,
		`UPDATE payments SET minor_units = minor_units * 2`,
		`UPDATE payments SET to_account_id = 'acc_mallory'`,
		`UPDATE payments SET from_account_id = 'acc_mallory'`,
		`UPDATE payments SET created_by = 'spiffe://bank.local/customer/mallory'`,
		`UPDATE payments SET transfer_key = 'x'`,
		`UPDATE payments SET idempotency_key = 'x'`,
		`UPDATE payments SET create_time = 0`,
		`UPDATE payments SET creator_serial = ''`,
		`DELETE FROM payments`,
		`TRUNCATE payments`,
		`INSERT INTO schema_history (version, name, checksum, applied_at) VALUES (99, 'x', 'x', 0)`,
		`DELETE FROM schema_history`,
	)

	// The accounts service's database, provisioned the same way for its own roles.
	ledgerOwner, ledgerRuntime := pgtest.NewRole(t), pgtest.NewRole(t)
	ledgerDB := pgtest.Provision(t, ledgerOwner, ledgerRuntime)
	pgtest.WantConnectRefused(t, runtime.URL(ledgerDB))
}

// TestRuntimeGrantsCoverEveryTable: every table the migrations create is in
// RuntimeGrants (or is the migration history, which the runtime role reads
// only), so a new table cannot ship without its privileges.
func TestRuntimeGrantsCoverEveryTable(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	if _, err := pgstore.Migrate(ctx, url, ""); err != nil {
		t.Fatal(err)
	}
	pgtest.WantGrantsCoverTables(t, url, pgstore.RuntimeGrants())
}
