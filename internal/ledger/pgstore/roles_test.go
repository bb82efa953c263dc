package pgstore_test

import (
	"context"
	"testing"

	"mtlsbank/internal/ledger"
	"mtlsbank/internal/ledger/pgstore"
	"mtlsbank/internal/money"
	"mtlsbank/internal/pgtest"
)

// TestLeastPrivilege: the migration step runs as the owner role and grants the
// runtime role RuntimeGrants; a store of the runtime role (WithoutMigrations)
// moves money, but the runtime role can neither change the schema nor rewrite
// what the ledger wrote, nor open another service's database.
func TestLeastPrivilege(t *testing.T) {
	ctx := context.Background()
	owner, runtime := pgtest.NewRole(t), pgtest.NewRole(t)
	db := pgtest.Provision(t, owner, runtime)

	pgtest.CheckMigrationStep(t, owner, runtime, db, func(ctx context.Context, url, role string) (int, error) {
		return pgstore.Migrate(ctx, url, role)
	}, openStore(pgstore.WithoutMigrations()), pgstore.ErrSchemaBehind)

	ownerStore := open(t, owner.URL(db), pgstore.WithoutMigrations())
	if !ownerStore.CanChangeSchema() {
		t.Error("the owner's store says it cannot change the schema")
	}
	s := open(t, runtime.URL(db), pgstore.WithoutMigrations())
	if s.CanChangeSchema() {
		t.Error("the runtime role's store says it can change the schema")
	}
	l, err := ledger.New(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	const alice, bob, teller = "spiffe://bank.local/customer/alice", "spiffe://bank.local/customer/bob", "spiffe://bank.local/teller/tina"
	a, err := l.OpenAccount(ctx, ledger.OpenAccountRequest{Owner: alice, Currency: "EUR"})
	if err != nil {
		t.Fatalf("OpenAccount as the runtime role: %v", err)
	}
	b, err := l.OpenAccount(ctx, ledger.OpenAccountRequest{Owner: bob, Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Deposit(ctx, ledger.DepositRequest{AccountID: a.ID.String(), Amount: money.Amount{Currency: "EUR", Minor: 100},
		IdempotencyKey: "d1", Principal: teller}); err != nil {
		t.Fatalf("Deposit as the runtime role: %v", err)
	}
	if _, err := l.Transfer(ctx, ledger.TransferRequest{FromAccountID: a.ID.String(), ToAccountID: b.ID.String(),
		Amount: money.Amount{Currency: "EUR", Minor: 40}, IdempotencyKey: "t1", Principal: teller}); err != nil {
		t.Fatalf("Transfer as the runtime role: %v", err)
	}

	pgtest.WantInsufficientPrivilege(t, runtime.URL(db),
		`ALTER TABLE accounts ADD COLUMN x INT`,
		`DROP TABLE entries`,
		`CREATE TABLE stash (id INT)`,
		`CREATE INDEX accounts_by_balance ON accounts (balance)`,
		`UPDATE entries SET amount = amount * 2`,
		`UPDATE transactions SET amount = 1`,
		`UPDATE accounts SET owner = 'spiffe://bank.local/customer/mallory'`,
		`UPDATE idempotency SET transaction_id = NULL`,
		`DELETE FROM transactions`,
		`DELETE FROM idempotency`,
		`TRUNCATE entries`,
		`INSERT INTO schema_history (version, name, checksum, applied_at) VALUES (99, 'x', 'x', 0)`,
		`DELETE FROM schema_history`,
	)

	// Another service's database, provisioned the same way for its own roles.
	otherOwner, otherRuntime := pgtest.NewRole(t), pgtest.NewRole(t)
	other := pgtest.Provision(t, otherOwner, otherRuntime)
	pgtest.WantConnectRefused(t, runtime.URL(other))
}

// TestRuntimeGrantsCoverEveryTable: every table the migrations create is in
// RuntimeGrants (or is the migration history, which the runtime role reads
// only), so a new table cannot ship without its privileges.
func TestRuntimeGrantsCoverEveryTable(t *testing.T) {
	url := pgtest.NewDatabase(t)
	if _, err := pgstore.Migrate(context.Background(), url, ""); err != nil {
		t.Fatal(err)
	}
	pgtest.WantGrantsCoverTables(t, url, pgstore.RuntimeGrants())
}
