package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"mtlsbank/internal/ledger"
	"mtlsbank/internal/ledger/ledgertest"
	"mtlsbank/internal/sqlitedb"
)

func open(tb testing.TB, path string) *Store {
	tb.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		tb.Fatalf("Open(%s): %v", path, err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)

func account(id string) ledger.Account {
	return ledger.Account{ID: ledger.AccountID(id), Owner: "spiffe://bank.local/customer/alice", Currency: "EUR", DisplayName: "a", CreatedAt: t0}
}

const (
	idA = "acc_00000000000000000000000001"
	idB = "acc_00000000000000000000000002"
)

func TestOpenConfiguresSQLite(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "ledger.db"))
	ctx := context.Background()
	tests := []struct {
		name   string
		db     *sql.DB
		pragma string
		want   string
	}{
		{name: "writer journal", db: s.w, pragma: "journal_mode", want: "wal"},
		{name: "writer synchronous FULL", db: s.w, pragma: "synchronous", want: "2"},
		{name: "writer foreign keys", db: s.w, pragma: "foreign_keys", want: "1"},
		{name: "writer busy timeout", db: s.w, pragma: "busy_timeout", want: "5000"},
		{name: "writer temp store in memory", db: s.w, pragma: "temp_store", want: "2"},
		{name: "reader journal", db: s.r, pragma: "journal_mode", want: "wal"},
		{name: "reader query only", db: s.r, pragma: "query_only", want: "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			if err := tt.db.QueryRowContext(ctx, "PRAGMA "+tt.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("PRAGMA %s = %s, want %s", tt.pragma, got, tt.want)
			}
		})
	}
	if s.w.Stats().MaxOpenConnections != 1 {
		t.Errorf("writer pool allows %d connections, want 1", s.w.Stats().MaxOpenConnections)
	}
}

func TestOpenRefuses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tests := []struct {
		name string
		path string
		opts []Option
	}{
		{name: "empty path", path: ""},
		{name: "no read connections", path: filepath.Join(dir, "a.db"), opts: []Option{WithReadConns(0)}},
		{name: "negative busy timeout", path: filepath.Join(dir, "b.db"), opts: []Option{WithBusyTimeout(-time.Second)}},
		{name: "a directory", path: dir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := Open(ctx, tt.path, tt.opts...); err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded")
			}
		})
	}
}

func TestPathWithSpecialCharacters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dir with space", "led?ger#1%20.db")
	s := open(t, path)
	if s.Path() != path {
		t.Errorf("Path() = %s, want %s", s.Path(), path)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not at the path given: %v", err)
	}
}

func TestMigrations(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	ms, err := loadMigrations()
	if err != nil || len(ms) == 0 {
		t.Fatalf("loadMigrations = %d, %v", len(ms), err)
	}

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if s.SchemaVersion() != len(ms) {
		t.Errorf("SchemaVersion = %d, want %d", s.SchemaVersion(), len(ms))
	}
	if err := s.Update(ctx, func(tx ledger.Tx) error { return tx.CreateAccount(ctx, account(idA)) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopening applies nothing twice and keeps the data.
	s = open(t, path)
	var rows int
	if err := s.w.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_history`).Scan(&rows); err != nil || rows != len(ms) {
		t.Errorf("schema_history has %d rows (%v), want %d", rows, err, len(ms))
	}
	err = s.View(ctx, func(tx ledger.ReadTx) error {
		a, found, err := tx.Account(ctx, idA)
		if err != nil || !found || a != account(idA) {
			t.Errorf("Account after reopen = %+v, %v, %v; want %+v", a, found, err, account(idA))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// A database from a newer build is refused, not downgraded.
	if _, err := s.w.ExecContext(ctx, `INSERT INTO schema_history (version, name, checksum, applied_at) VALUES (?, 'future', '', 0)`, len(ms)+1); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, path); !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("Open of a newer schema = %v, want ErrSchemaTooNew", err)
	}
}

// TestConformanceExclusive runs the conformance suite on SQLite files each held by one
// store (WithExclusive), every ledger with the account cache, as services/accounts runs
// the embedded default.
func TestConformanceExclusive(t *testing.T) {
	ledgertest.Run(t, ledgertest.Stores{
		New: func(tb testing.TB) ledger.Store {
			s, err := Open(context.Background(), filepath.Join(tb.TempDir(), "ledger.db"), WithExclusive())
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(func() { _ = s.Close() })
			return s
		},
		LedgerOptions: []ledger.Option{ledger.WithAccountCache(ledger.DefaultAccountCache)},
	})
}

// TestExclusive: a store opened WithExclusive holds its file against every other
// exclusive store until it is closed, and says so (SoleWriter); a plain store does not.
func TestExclusive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	ctx := context.Background()
	first, err := Open(ctx, path, WithExclusive())
	if err != nil {
		t.Fatal(err)
	}
	if !first.SoleWriter() {
		t.Error("an exclusive store does not report SoleWriter")
	}
	if _, err := Open(ctx, path, WithExclusive()); !errors.Is(err, sqlitedb.ErrLocked) {
		t.Fatalf("a second exclusive store on the file: %v, want ErrLocked", err)
	}
	fi, err := os.Stat(path + "-lock")
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("lock file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	if plain := open(t, filepath.Join(t.TempDir(), "other.db")); plain.SoleWriter() {
		t.Error("a plain store reports SoleWriter")
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Open(ctx, path, WithExclusive())
	if err != nil {
		t.Fatalf("after Close the file is still locked: %v", err)
	}
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestConformance runs the ledger.Store conformance suite on SQLite files;
// replicas are separate stores (connections) on one file, as separate
// processes would open it.
func TestConformance(t *testing.T) {
	ledgertest.Run(t, ledgertest.Stores{
		New: func(tb testing.TB) ledger.Store { return open(tb, filepath.Join(tb.TempDir(), "ledger.db")) },
		Replicas: func(tb testing.TB, n int) []ledger.Store {
			path := filepath.Join(tb.TempDir(), "ledger.db")
			stores := make([]ledger.Store, n)
			for i := range stores {
				stores[i] = open(tb, path)
			}
			return stores
		},
	})
}
