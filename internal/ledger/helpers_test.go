package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"

	"mtlsbank/internal/ledger"
	"mtlsbank/internal/ledger/sqlitestore"
	"mtlsbank/internal/money"
)

const (
	teller   = "spiffe://bank.local/teller/tina"
	alice    = "spiffe://bank.local/customer/alice"
	bob      = "spiffe://bank.local/customer/bob"
	payments = "spiffe://bank.local/service/payments"
)

// openStore opens a SQLite store at path, closed at the end of the test.
func openStore(tb testing.TB, path string) *sqlitestore.Store {
	tb.Helper()
	s, err := sqlitestore.Open(context.Background(), path)
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

// startLedger starts a ledger on s, closed (before s) at the end of the test.
func startLedger(tb testing.TB, s ledger.Store, opts ...ledger.Option) *ledger.Ledger {
	tb.Helper()
	l, err := ledger.New(s, opts...)
	if err != nil {
		tb.Fatalf("new ledger: %v", err)
	}
	tb.Cleanup(func() { _ = l.Close() })
	return l
}

func mustOpen(tb testing.TB, l *ledger.Ledger, owner, currency string) ledger.Account {
	tb.Helper()
	a, err := l.OpenAccount(context.Background(), ledger.OpenAccountRequest{Owner: owner, Currency: currency, DisplayName: "test"})
	if err != nil {
		tb.Fatalf("open account for %s in %s: %v", owner, currency, err)
	}
	return a
}

func mustDeposit(tb testing.TB, l *ledger.Ledger, a ledger.Account, minor int64) ledger.Transaction {
	tb.Helper()
	t, err := l.Deposit(context.Background(), ledger.DepositRequest{
		AccountID: string(a.ID), Amount: money.Amount{Currency: a.Currency, Minor: minor},
		IdempotencyKey: fmt.Sprintf("fund-%s-%d", a.ID, minor), Principal: teller,
	})
	if err != nil {
		tb.Fatalf("deposit %d into %s: %v", minor, a.ID, err)
	}
	return t
}

func balanceOf(tb testing.TB, l *ledger.Ledger, id ledger.AccountID) int64 {
	tb.Helper()
	a, err := l.GetAccount(context.Background(), string(id))
	if err != nil {
		tb.Fatalf("get account %s: %v", id, err)
	}
	return a.Balance
}

// snapshot is every account (customer and system) and every entry.
type snapshot struct {
	accounts map[ledger.AccountID]ledger.Account
	entries  []ledger.Entry
}

func takeSnapshot(tb testing.TB, s ledger.Store) snapshot {
	tb.Helper()
	ctx := context.Background()
	snap := snapshot{accounts: map[ledger.AccountID]ledger.Account{}}
	err := s.View(ctx, func(tx ledger.ReadTx) error {
		for _, system := range []bool{false, true} {
			var after ledger.AccountID
			for {
				page, err := tx.Accounts(ctx, ledger.AccountQuery{After: after, Limit: 100, System: system})
				if err != nil {
					return err
				}
				for _, a := range page {
					snap.accounts[a.ID] = a
				}
				if len(page) < 100 {
					break
				}
				after = page[len(page)-1].ID
			}
		}
		var last int64
		for {
			page, err := tx.EntriesAfter(ctx, last, 500)
			if err != nil {
				return err
			}
			snap.entries = append(snap.entries, page...)
			if len(page) < 500 {
				return nil
			}
			last = page[len(page)-1].Sequence
		}
	})
	if err != nil {
		tb.Fatalf("snapshot: %v", err)
	}
	return snap
}

// checkInvariants verifies the double-entry invariants over the whole store
// and returns the snapshot it checked.
func checkInvariants(tb testing.TB, s ledger.Store) snapshot {
	tb.Helper()
	snap := takeSnapshot(tb, s)
	sums := map[ledger.AccountID]int64{}
	perTxn := map[ledger.TransactionID]int64{}
	var total int64
	for i, e := range snap.entries {
		if want := int64(i + 1); e.Sequence != want {
			tb.Fatalf("entry %d has sequence %d: sequences are not 1..N without gaps", want, e.Sequence)
		}
		a, ok := snap.accounts[e.AccountID]
		if !ok {
			tb.Fatalf("entry %d names unknown account %s", e.Sequence, e.AccountID)
		}
		if e.Currency != a.Currency {
			tb.Errorf("entry %d in %s on account %s of %s", e.Sequence, e.Currency, a.ID, a.Currency)
		}
		sums[e.AccountID] += e.Amount
		if sums[e.AccountID] != e.BalanceAfter {
			tb.Errorf("entry %d: balance after %d, running sum of the account's entries %d", e.Sequence, e.BalanceAfter, sums[e.AccountID])
		}
		perTxn[e.TransactionID] += e.Amount
		total += e.Amount
	}
	if total != 0 {
		tb.Errorf("sum of all entries = %d, want 0", total)
	}
	for id, sum := range perTxn {
		if sum != 0 {
			tb.Errorf("transaction %s: entries sum to %d, want 0", id, sum)
		}
	}
	for id, a := range snap.accounts {
		if a.Balance != sums[id] {
			tb.Errorf("account %s: balance %d, sum of entries %d", id, a.Balance, sums[id])
		}
		if !a.System && a.Balance < 0 {
			tb.Errorf("customer account %s has negative balance %d", id, a.Balance)
		}
	}
	return snap
}

// wantError checks that err wraps want and, if field is not empty, names it.
func wantError(tb testing.TB, err, want error, field string) {
	tb.Helper()
	if !errors.Is(err, want) {
		tb.Fatalf("error = %v, want %v", err, want)
	}
	if field == "" {
		return
	}
	var le *ledger.Error
	if !errors.As(err, &le) {
		tb.Fatalf("error %v is not a *ledger.Error", err)
	}
	if le.Field != field {
		tb.Errorf("error names field %q, want %q (%v)", le.Field, field, err)
	}
}

func testingProcs() int { return runtime.GOMAXPROCS(0) }
