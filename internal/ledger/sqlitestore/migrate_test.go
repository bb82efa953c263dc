package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mtlsbank/internal/ledger"
	"mtlsbank/internal/migrate"
	"mtlsbank/internal/sqlitedb"
)

// legacyMigrate is the ledger's migration runner as it shipped before
// the shared runner (commit add9e80, internal/ledger/sqlitestore/migrate.go):
// the same statements in the same transaction, with the migrations passed in
// and shorter errors, so that the test below migrates a file exactly as a
// database in the field was migrated.
func legacyMigrate(ctx context.Context, db *sql.DB, ms []migrate.Migration, now time.Time) (version int, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL)`); err != nil {
		return 0, err
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&current); err != nil {
		return 0, err
	}
	if current > len(ms) {
		return 0, errors.New("schema too new")
	}
	for _, m := range ms[current:] {
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return 0, err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)`,
			m.Version, m.Name, now.UnixMicro()); err != nil {
			return 0, err
		}
	}
	return len(ms), tx.Commit()
}

// TestOpenAdoptsLegacyDatabase opens a file migrated and written by the old
// runner: its data stays, its versions move to the one history table with
// their checksums, and the old table goes, so that an old build refuses the
// file instead of running on it.
func TestOpenAdoptsLegacyDatabase(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	// Every migration the old build shipped: 0001_init.sql.
	shipped := ms[:1]
	w, r, err := sqlitedb.Open(ctx, path, 1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := legacyMigrate(ctx, w, shipped, t0); err != nil {
		t.Fatalf("legacy migration: %v", err)
	}
	if _, err := w.Exec(`INSERT INTO accounts (id, owner, currency, balance, display_name, system, created_at)
		VALUES (?, 'spiffe://bank.local/customer/alice', 'EUR', 0, 'a', 0, ?)`, idA, t0.UnixMicro()); err != nil {
		t.Fatal(err)
	}
	w.Close()

	s := open(t, path)
	if s.SchemaVersion() != len(ms) {
		t.Fatalf("SchemaVersion = %d, want %d", s.SchemaVersion(), len(ms))
	}
	var n int
	if err := s.w.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name = 'schema_version'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("legacy table still there (%d, %v)", n, err)
	}
	var sum string
	if err := s.w.QueryRow(`SELECT checksum FROM schema_history WHERE version = 1`).Scan(&sum); err != nil || sum != ms[0].Checksum {
		t.Fatalf("history of version 1: %q, %v; want %q", sum, err, ms[0].Checksum)
	}
	err = s.View(ctx, func(tx ledger.ReadTx) error {
		a, found, err := tx.Account(ctx, idA)
		if err != nil || !found || a.ID != idA {
			t.Errorf("account after adoption = %+v, %v, %v", a, found, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// The old runner, run on the adopted file, fails and changes nothing.
	if _, err := legacyMigrate(ctx, s.w, shipped, t0); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("old runner on the adopted file: %v, want a refusal", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	open(t, path) // and the new one still opens it
}

// TestOpenRefusesEditedMigration: a database whose applied migration has
// another checksum than this build's is refused with a clear error.
func TestOpenRefusesEditedMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	s := open(t, path)
	if _, err := s.w.Exec(`UPDATE schema_history SET checksum = 'feedface' WHERE version = 1`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(ctx, path); !errors.Is(err, migrate.ErrMigrationChanged) || !strings.Contains(err.Error(), "0001_init.sql") {
		t.Fatalf("Open = %v, want ErrMigrationChanged naming 0001_init.sql", err)
	}
}
