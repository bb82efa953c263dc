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

// TestSequenceCounter checks the counter row behind AllocateSequences, which a
// write transaction keeps in memory and writes at its commit: sequences taken
// in rolled-back savepoints and transactions are handed out again, the row
// holds the last committed one, and a reopened store goes on from it.
func TestSequenceCounter(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	refused := errors.New("refused")
	// alloc allocates n sequences in a savepoint that keeps them or, with
	// refuse, rolls back; it returns the first.
	alloc := func(t *testing.T, tx ledger.Tx, n int, refuse bool) int64 {
		t.Helper()
		var first int64
		err := tx.Savepoint(ctx, func(tx ledger.Tx) error {
			var err error
			if first, err = tx.AllocateSequences(ctx, n); err != nil {
				return err
			}
			if refuse {
				return refused
			}
			return nil
		})
		if err != nil && !(refuse && errors.Is(err, refused)) {
			t.Fatalf("savepoint: %v", err)
		}
		return first
	}
	counter := func(t *testing.T, s *Store) int64 {
		t.Helper()
		var last int64
		if err := s.w.QueryRowContext(ctx, `SELECT last_sequence FROM entry_sequence WHERE id = 1`).Scan(&last); err != nil {
			t.Fatal(err)
		}
		return last
	}
	type step struct {
		n      int
		refuse bool
		want   int64
	}
	tests := []struct {
		name   string
		reopen bool // close and reopen the store first
		steps  []step
		commit bool
		want   int64 // the counter row after the transaction
	}{
		{name: "first taken in a rolled-back savepoint", commit: true, want: 3,
			steps: []step{{n: 5, refuse: true, want: 1}, {n: 2, want: 1}, {n: 1, want: 3}}},
		{name: "rolled-back savepoint between kept ones", commit: true, want: 7,
			steps: []step{{n: 2, want: 4}, {n: 3, refuse: true, want: 6}, {n: 2, want: 6}}},
		{name: "rolled-back transaction", commit: false, want: 7,
			steps: []step{{n: 4, want: 8}, {n: 1, want: 12}}},
		{name: "after the rolled-back transaction", commit: true, want: 8,
			steps: []step{{n: 1, want: 8}}},
		{name: "only rolled-back savepoints", commit: true, want: 8,
			steps: []step{{n: 3, refuse: true, want: 9}}},
		{name: "reopened", reopen: true, commit: true, want: 10,
			steps: []step{{n: 2, want: 9}}},
	}
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.reopen {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if s, err = Open(ctx, path); err != nil {
					t.Fatal(err)
				}
			}
			err := s.Update(ctx, func(tx ledger.Tx) error {
				for i, st := range tt.steps {
					if got := alloc(t, tx, st.n, st.refuse); got != st.want {
						t.Errorf("step %d: AllocateSequences(%d) = %d, want %d", i, st.n, got, st.want)
					}
				}
				if !tt.commit {
					return refused
				}
				return nil
			})
			if tt.commit && err != nil || !tt.commit && !errors.Is(err, refused) {
				t.Fatalf("Update = %v", err)
			}
			if got := counter(t, s); got != tt.want {
				t.Errorf("counter row = %d, want %d", got, tt.want)
			}
		})
	}
}
