package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"mtlsbank/internal/ledger"
	"mtlsbank/internal/money"
)

const (
	teller   = "spiffe://bank.local/teller/tina"
	alice    = "spiffe://bank.local/customer/alice"
	bob      = "spiffe://bank.local/customer/bob"
	payments = "spiffe://bank.local/service/payments"
)

// MustOpen opens an account of owner in currency or ends the test.
func MustOpen(tb testing.TB, l *ledger.Ledger, owner, currency string) ledger.Account {
	tb.Helper()
	a, err := l.OpenAccount(context.Background(), ledger.OpenAccountRequest{Owner: owner, Currency: currency, DisplayName: "test"})
	if err != nil {
		tb.Fatalf("open account for %s in %s: %v", owner, currency, err)
	}
	return a
}

// MustDeposit deposits minor units into a as a teller or ends the test.
func MustDeposit(tb testing.TB, l *ledger.Ledger, a ledger.Account, minor int64) ledger.Transaction {
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

// BalanceOf returns the balance of the customer account id or ends the test.
func BalanceOf(tb testing.TB, l *ledger.Ledger, id ledger.AccountID) int64 {
	tb.Helper()
	a, err := l.GetAccount(context.Background(), string(id))
	if err != nil {
		tb.Fatalf("get account %s: %v", id, err)
	}
	return a.Balance
}

// Snapshot is every account (customer and system) and every entry.
type Snapshot struct {
	// Accounts are all accounts by id.
	Accounts map[ledger.AccountID]ledger.Account
	// Entries are all entries in sequence order.
	Entries []ledger.Entry
}

// TakeSnapshot reads every account and entry in one View.
func TakeSnapshot(tb testing.TB, s ledger.Store) Snapshot {
	tb.Helper()
	ctx := context.Background()
	snap := Snapshot{Accounts: map[ledger.AccountID]ledger.Account{}}
	err := s.View(ctx, func(tx ledger.ReadTx) error {
		for _, system := range []bool{false, true} {
			var after ledger.AccountID
			for {
				page, err := tx.Accounts(ctx, ledger.AccountQuery{After: after, Limit: 100, System: system})
				if err != nil {
					return err
				}
				for _, a := range page {
					snap.Accounts[a.ID] = a
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
			snap.Entries = append(snap.Entries, page...)
			if len(page) < 500 {
				return nil
			}
			last = page[len(page)-1].Sequence
		}
	})
	if err != nil {
		tb.Fatalf("Snapshot: %v", err)
	}
	return snap
}

// CheckInvariants verifies the double-entry invariants over the whole store
// and returns the Snapshot it checked.
func CheckInvariants(tb testing.TB, s ledger.Store) Snapshot {
	tb.Helper()
	snap := TakeSnapshot(tb, s)
	sums := map[ledger.AccountID]int64{}
	perTxn := map[ledger.TransactionID]int64{}
	var total int64
	for i, e := range snap.Entries {
		if want := int64(i + 1); e.Sequence != want {
			tb.Fatalf("entry %d has sequence %d: sequences are not 1..N without gaps", want, e.Sequence)
		}
		a, ok := snap.Accounts[e.AccountID]
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
	for id, a := range snap.Accounts {
		if a.Balance != sums[id] {
			tb.Errorf("account %s: balance %d, sum of entries %d", id, a.Balance, sums[id])
		}
		if !a.System && a.Balance < 0 {
			tb.Errorf("customer account %s has negative balance %d", id, a.Balance)
		}
	}
	return snap
}

// WantError checks that err wraps want and, if field is not empty, names it.
func WantError(tb testing.TB, err, want error, field string) {
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
