package sqlitestore_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mtlsbank/internal/payments"
	"mtlsbank/internal/payments/paymentstest"
	"mtlsbank/internal/sqlitedb"
)

// legacyV1 is migration 1 exactly as the payments runner before the shared runner (internal/migrate)
// shipped it (commit add9e80, internal/payments/store.go, migrations[0]).
const legacyV1 = `CREATE TABLE payments (
		seq             INTEGER PRIMARY KEY AUTOINCREMENT,
		id              TEXT    NOT NULL UNIQUE,
		created_by      TEXT    NOT NULL,
		idempotency_key TEXT    NOT NULL,
		fingerprint     TEXT    NOT NULL,
		status          TEXT    NOT NULL CHECK (status IN ('PENDING', 'COMPLETED', 'FAILED')),
		from_account_id TEXT    NOT NULL,
		to_account_id   TEXT    NOT NULL,
		currency        TEXT    NOT NULL,
		minor_units     INTEGER NOT NULL CHECK (minor_units > 0),
		memo            TEXT    NOT NULL DEFAULT '',
		transaction_id  TEXT    NOT NULL DEFAULT '',
		failure_code    TEXT    NOT NULL DEFAULT '',
		failure_reason  TEXT    NOT NULL DEFAULT '',
		transfer_key    TEXT    NOT NULL UNIQUE,
		create_time     INTEGER NOT NULL,
		update_time     INTEGER NOT NULL,
		UNIQUE (created_by, idempotency_key),
		CHECK ((status = 'COMPLETED') = (transaction_id <> '')),
		CHECK ((status = 'FAILED') = (failure_code <> ''))
	);
	CREATE INDEX payments_by_creator ON payments (created_by, seq);
	CREATE INDEX payments_pending ON payments (seq) WHERE status = 'PENDING';`

// legacyMigrate is that runner (Store.migrate and migrateOne of add9e80): the
// bookkeeping table outside any transaction, then each migration in its own.
func legacyMigrate(tb testing.TB, db *sql.DB, migrations []string) {
	tb.Helper()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		tb.Fatal(err)
	}
	for {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			tb.Fatal(err)
		}
		var version int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&version); err != nil {
			tb.Fatal(err)
		}
		if version == len(migrations) {
			tx.Rollback()
			return
		}
		if _, err := tx.ExecContext(ctx, migrations[version]); err != nil {
			tb.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
			version+1, time.Now().UnixNano()); err != nil {
			tb.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			tb.Fatal(err)
		}
	}
}

// TestOpenAdoptsLegacyDatabase opens a file that today's code migrated and
// wrote: its payments stay, a recovery finds its pending one, the old bookkeeping
// table is gone (an old build then refuses the file instead of running on a schema
// it does not know), and the schema ends up the same as on a new file.
func TestOpenAdoptsLegacyDatabase(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "legacy.db")
	w, r, err := sqlitedb.Open(ctx, path, 1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	legacyMigrate(t, w, []string{legacyV1})
	// The insert of add9e80's store, for one pending and one completed payment.
	for _, row := range []struct{ id, status, txn string }{{"pay_old_1", "PENDING", ""}, {"pay_old_2", "COMPLETED", "txn_1"}} {
		if _, err := w.Exec(`INSERT INTO payments (id, created_by, idempotency_key, fingerprint, status,
			from_account_id, to_account_id, currency, minor_units, memo, transfer_key, transaction_id, create_time, update_time)
			VALUES (?, ?, ?, 'fp', ?, 'acc_a', 'acc_b', 'EUR', 100, '', ?, ?, 1, 1)`,
			row.id, paymentstest.Alice, row.id, row.status, "payment:"+row.id, row.txn); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()

	s := openStore(t, path)
	p, err := s.Get(ctx, "pay_old_1")
	if err != nil || p.Status != payments.StatusPending || p.TransferKey != "payment:pay_old_1" {
		t.Fatalf("legacy payment after adoption: %+v, %v", p, err)
	}
	if ids := paymentstest.ListIDs(t, s, payments.Query{Status: payments.StatusPending, Limit: 10}); fmt.Sprint(ids) != "[pay_old_1]" {
		t.Fatalf("pending after adoption = %v", ids)
	}
	if _, _, err := payments.NewOrders(s, nil).Create(ctx, paymentstest.NewPayment("pay_new", paymentstest.Alice, "k-new"), payments.CreateOptions{}); err != nil {
		t.Fatalf("Create on the adopted file: %v", err)
	}
	s.Close()

	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name = 'schema_migrations'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("legacy table still there (%d, %v)", n, err)
	}
	fresh := filepath.Join(dir, "fresh.db")
	openStore(t, fresh).Close()
	if got, want := schemaOf(t, path), schemaOf(t, fresh); got != want {
		t.Fatalf("schema of the adopted file:\n%s\nof a new file:\n%s", got, want)
	}
}

// schemaOf lists the columns and indexes of the payments table.
func schemaOf(tb testing.TB, path string) string {
	tb.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	var b strings.Builder
	for _, q := range []string{
		`SELECT name || ' ' || type || ' ' || "notnull" || ' ' || COALESCE(dflt_value, '') || ' ' || pk FROM pragma_table_info('payments') ORDER BY cid`,
		`SELECT name || ' ' || "unique" || ' ' || partial FROM pragma_index_list('payments') ORDER BY name`,
	} {
		rows, err := db.Query(q)
		if err != nil {
			tb.Fatal(err)
		}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				tb.Fatal(err)
			}
			b.WriteString(line + "\n")
		}
		rows.Close()
	}
	return b.String()
}
