package sqlitestore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"mtlsbank/internal/payments"
	"mtlsbank/internal/payments/paymentstest"
	"mtlsbank/internal/payments/sqlitestore"
)

// openStore opens the store at path, closed when the test ends.
func openStore(tb testing.TB, path string, opts ...sqlitestore.Option) *sqlitestore.Store {
	tb.Helper()
	s, err := sqlitestore.Open(context.Background(), path, opts...)
	if err != nil {
		tb.Fatalf("Open(%s): %v", path, err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// TestConformance runs the payments.Store conformance suite on SQLite: each test on
// a file of its own; replicas are stores with their own connections on one file,
// as two payments processes sharing the file would be.
func TestConformance(t *testing.T) {
	paymentstest.Run(t, paymentstest.Stores{
		New: func(tb testing.TB) payments.Store { return openStore(tb, filepath.Join(tb.TempDir(), "p.db")) },
		Replicas: func(tb testing.TB, n int) []payments.Store {
			path := filepath.Join(tb.TempDir(), "shared.db")
			stores := make([]payments.Store, n)
			for i := range stores {
				stores[i] = openStore(tb, path)
			}
			return stores
		},
		Unbatched: func(tb testing.TB) payments.Store {
			return openStore(tb, filepath.Join(tb.TempDir(), "p.db"), sqlitestore.WithMaxBatch(1), sqlitestore.WithReadConns(1))
		},
	})
}

func TestStoreSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "dir", "p.db")
	s, err := sqlitestore.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := payments.NewOrders(s, nil).Create(ctx, paymentstest.NewPayment("pay_1", paymentstest.Alice, "k"), payments.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err == nil {
		t.Fatal("Ping on a closed store: no error")
	}
	s = openStore(t, path) // migrations run again and must be a no-op
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	p, err := s.Get(ctx, "pay_1")
	if err != nil || p.Status != payments.StatusPending || p.TransferKey != "payment:pay_1" {
		t.Fatalf("after reopen: %+v, %v", p, err)
	}
}

func TestOpenStoreRefuses(t *testing.T) {
	dir := t.TempDir()
	newer := filepath.Join(dir, "newer.db")
	openStore(t, newer).Close()
	db, err := sql.Open("sqlite", newer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO schema_history (version, name, checksum, applied_at) VALUES (99, '0099_future.sql', '', 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	tests := []struct {
		name    string
		path    string
		wantErr error
	}{
		{name: "empty path", path: ""},
		{name: "query in path", path: filepath.Join(dir, "x.db?mode=ro")},
		{name: "schema from the future", path: newer, wantErr: sqlitestore.ErrSchemaTooNew},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := sqlitestore.Open(context.Background(), tt.path)
			if err == nil {
				s.Close()
				t.Fatal("no error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestStoreClosedRefusesWrites(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "p.db")
	s, err := sqlitestore.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	first, _, err := payments.NewOrders(s, nil).Create(ctx, paymentstest.NewPayment("pay_1", paymentstest.Alice, "k1"), payments.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Writers racing with Close: each is either refused or durable.
	const n = 20
	acked := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, _, err := payments.NewOrders(s, nil).Create(ctx, paymentstest.NewPayment(fmt.Sprintf("pay_race_%d", i), paymentstest.Alice, fmt.Sprintf("race-%d", i)), payments.CreateOptions{})
			switch {
			case err == nil:
				acked[i] = true
			case !errors.Is(err, payments.ErrClosed):
				t.Errorf("Create racing Close: %v, want success or ErrClosed", err)
			}
		})
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	tests := []struct {
		name string
		call func() error
	}{
		{"create", func() error {
			_, _, err := payments.NewOrders(s, nil).Create(ctx, paymentstest.NewPayment("pay_2", paymentstest.Alice, "k2"), payments.CreateOptions{})
			return err
		}},
		{"complete", func() error { _, err := payments.NewOrders(s, nil).Complete(ctx, first, "txn_1"); return err }},
		{"fail", func() error { _, err := payments.NewOrders(s, nil).Fail(ctx, first, "NOT_FOUND", "gone"); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, payments.ErrClosed) {
				t.Fatalf("got %v, want ErrClosed", err)
			}
		})
	}

	reopened := openStore(t, path)
	for i, ok := range acked {
		p, err := reopened.Get(ctx, fmt.Sprintf("pay_race_%d", i))
		switch {
		case ok && err != nil:
			t.Errorf("acknowledged pay_race_%d lost: %v", i, err)
		case !ok && !errors.Is(err, payments.ErrNotFound):
			t.Errorf("refused pay_race_%d: Get = %+v, %v; want ErrNotFound", i, p, err)
		}
	}
	p, err := reopened.Get(ctx, "pay_1")
	if err != nil || p.Status != payments.StatusPending {
		t.Fatalf("pay_1 after the refused writes: %+v, %v; want PENDING", p, err)
	}
}
