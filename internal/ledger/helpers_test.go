package ledger_test

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"

	"mtlsbank/internal/ledger"
	"mtlsbank/internal/ledger/ledgertest"
	"mtlsbank/internal/ledger/sqlitestore"
	"mtlsbank/internal/money"
)

// The ledger's rules on a store are tested by the conformance suite
// (package ledgertest), which every store runs. What is here tests the
// ledger alone: its committer, Close, options and the SQLite durability.

const (
	teller   = "spiffe://bank.local/teller/tina"
	alice    = "spiffe://bank.local/customer/alice"
	bob      = "spiffe://bank.local/customer/bob"
	payments = "spiffe://bank.local/service/payments"
)

var (
	mustOpen        = ledgertest.MustOpen
	mustDeposit     = ledgertest.MustDeposit
	balanceOf       = ledgertest.BalanceOf
	checkInvariants = ledgertest.CheckInvariants
	wantError       = ledgertest.WantError
	startLedger     = ledgertest.StartLedger
)

func eur(minor int64) money.Amount { return money.Amount{Currency: "EUR", Minor: minor} }

// openStore opens a SQLite store at path, closed at the end of the test.
func openStore(tb testing.TB, path string, opts ...sqlitestore.Option) *sqlitestore.Store {
	tb.Helper()
	s, err := sqlitestore.Open(context.Background(), path, opts...)
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close store: %v", err)
		}
	})
	return s
}

// newLedger returns a ledger on a fresh SQLite file in tb.TempDir().
func newLedger(tb testing.TB, opts ...ledger.Option) (*ledger.Ledger, *sqlitestore.Store) {
	tb.Helper()
	s := openStore(tb, filepath.Join(tb.TempDir(), "ledger.db"))
	return startLedger(tb, s, opts...), s
}

func testingProcs() int { return runtime.GOMAXPROCS(0) }
