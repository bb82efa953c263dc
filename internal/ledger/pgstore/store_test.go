package pgstore_test

import (
	"context"
	"os"
	"testing"

	"mtlsbank/internal/ledger"
	"mtlsbank/internal/ledger/ledgertest"
	"mtlsbank/internal/ledger/pgstore"
	"mtlsbank/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// open opens a store on the database url, closed at the end of the test.
func open(tb testing.TB, url string, opts ...pgstore.Option) *pgstore.Store {
	tb.Helper()
	s, err := pgstore.Open(context.Background(), url, opts...)
	if err != nil {
		tb.Fatalf("pgstore.Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close store: %v", err)
		}
	})
	return s
}

// TestConformance runs the ledger.Store conformance suite on PostgreSQL:
// each test on a database of its own; replicas are stores with their own
// pools on one database, as replicas of the accounts service would be.
func TestConformance(t *testing.T) {
	ledgertest.Run(t, ledgertest.Stores{
		New: func(tb testing.TB) ledger.Store { return open(tb, pgtest.NewDatabase(tb)) },
		Replicas: func(tb testing.TB, n int) []ledger.Store {
			url := pgtest.NewDatabase(tb)
			stores := make([]ledger.Store, n)
			for i := range stores {
				stores[i] = open(tb, url)
			}
			return stores
		},
	})
}
