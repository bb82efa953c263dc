package ledgertest

import (
	"context"
	"errors"
	"maps"
	"math"
	"strconv"
	"strings"
	"testing"

	"mtlsbank/internal/ledger"
	"mtlsbank/internal/money"
)

func eur(minor int64) money.Amount { return money.Amount{Currency: "EUR", Minor: minor} }

func (su suite) testMoneyMovement(t *testing.T) {
	l, s := su.newLedger(t)
	ctx := context.Background()
	a := MustOpen(t, l, alice, "EUR")
	b := MustOpen(t, l, bob, "EUR")
	MustDeposit(t, l, a, 10000)

	tr, err := l.Transfer(ctx, ledger.TransferRequest{
		FromAccountID: string(a.ID), ToAccountID: string(b.ID), Amount: eur(2550),
		IdempotencyKey: "t1", Reference: "rent", Principal: payments, OnBehalfOf: alice,
	})
	if err != nil {
		t.Fatalf("Transfer: %v", err)
	}
	if tr.Kind != ledger.KindTransfer || tr.Amount != 2550 || tr.Currency != "EUR" || tr.Reference != "rent" ||
		tr.Principal != payments || tr.OnBehalfOf != alice || len(tr.Entries) != 2 {
		t.Fatalf("Transfer = %+v", tr)
	}
	debit, credit := tr.Entries[0], tr.Entries[1]
	if debit.AccountID != a.ID || debit.Amount != -2550 || debit.BalanceAfter != 7450 ||
		credit.AccountID != b.ID || credit.Amount != 2550 || credit.BalanceAfter != 2550 ||
		credit.Sequence != debit.Sequence+1 || debit.TransactionID != tr.ID {
		t.Errorf("entries = %+v", tr.Entries)
	}
	got, err := l.GetTransaction(ctx, string(tr.ID))
	if err != nil {
		t.Fatalf("GetTransaction: %v", err)
	}
	if !equalTransactions(got, tr) {
		t.Errorf("GetTransaction = %+v, want %+v", got, tr)
	}

	w, err := l.Withdraw(ctx, ledger.WithdrawRequest{AccountID: string(b.ID), Amount: eur(550), IdempotencyKey: "w1", Principal: teller})
	if err != nil {
		t.Fatalf("Withdraw: %v", err)
	}
	if w.Kind != ledger.KindWithdrawal || w.Entries[0].AccountID != b.ID || w.Entries[0].BalanceAfter != 2000 {
		t.Errorf("Withdraw = %+v", w)
	}
	// Withdraw the whole balance: a balance may reach zero.
	if _, err := l.Withdraw(ctx, ledger.WithdrawRequest{AccountID: string(b.ID), Amount: eur(2000), IdempotencyKey: "w2", Principal: teller}); err != nil {
		t.Fatalf("Withdraw all: %v", err)
	}
	if bal := BalanceOf(t, l, a.ID); bal != 7450 {
		t.Errorf("alice balance = %d, want 7450", bal)
	}
	if bal := BalanceOf(t, l, b.ID); bal != 0 {
		t.Errorf("bob balance = %d, want 0", bal)
	}
	snap := CheckInvariants(t, s)
	if len(snap.Entries) != 8 {
		t.Errorf("%d entries, want 8 (4 transactions)", len(snap.Entries))
	}
}

func (su suite) testGetTransactionRefusals(t *testing.T) {
	l, _ := su.newLedger(t)
	tests := []struct {
		name string
		id   string
		err  error
	}{
		{name: "missing", id: "", err: ledger.ErrMissingField},
		{name: "account id", id: "acc_00000000000000000000000000", err: ledger.ErrMalformedID},
		{name: "unknown", id: "txn_00000000000000000000000000", err: ledger.ErrTransactionNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := l.GetTransaction(context.Background(), tt.id)
			WantError(t, err, tt.err, "id")
		})
	}
}

// testRefusals checks every rule with its sentinel and field, and that a
// refused request changes no balance and writes no entry.
func (su suite) testRefusals(t *testing.T) {
	// CHF: at most 1,000.00 in one request and 1,000.00 held by all customers.
	var amounts, supplies ledger.CurrencyLimits = ledger.DefaultMaxAmounts(), ledger.DefaultMaxSupplies()
	if err := amounts.Set("CHF:1000.00"); err != nil {
		t.Fatal(err)
	}
	if err := supplies.Set("CHF:1000.00"); err != nil {
		t.Fatal(err)
	}
	l, s := su.newLedger(t, ledger.WithMaxAmount(amounts), ledger.WithMaxSupply(supplies))
	ctx := context.Background()
	a := MustOpen(t, l, alice, "EUR")
	b := MustOpen(t, l, bob, "EUR")
	u := MustOpen(t, l, bob, "USD")
	full := MustOpen(t, l, alice, "CHF")
	other := MustOpen(t, l, bob, "CHF")
	MustDeposit(t, l, a, 10000)
	MustDeposit(t, l, u, 10000)
	MustDeposit(t, l, full, 100000) // customers now hold the CHF max supply
	sys, err := l.SystemAccounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	unknown := "acc_00000000000000000000000000"

	// A key of "k" stands for a fresh key: recorded refusals keep their key.
	n := 0
	fresh := func(key string) string {
		if key != "k" {
			return key
		}
		n++
		return "fresh-" + strconv.Itoa(n)
	}
	deposit := func(r ledger.DepositRequest) func() error {
		return func() error {
			r.IdempotencyKey = fresh(r.IdempotencyKey)
			if r.Principal == "" {
				r.Principal = teller
			}
			_, err := l.Deposit(ctx, r)
			return err
		}
	}
	withdraw := func(r ledger.WithdrawRequest) func() error {
		return func() error {
			r.IdempotencyKey = fresh(r.IdempotencyKey)
			if r.Principal == "" {
				r.Principal = teller
			}
			_, err := l.Withdraw(ctx, r)
			return err
		}
	}
	transfer := func(r ledger.TransferRequest) func() error {
		return func() error {
			r.IdempotencyKey = fresh(r.IdempotencyKey)
			if r.Principal == "" {
				r.Principal = payments
			}
			_, err := l.Transfer(ctx, r)
			return err
		}
	}
	A, B, U := string(a.ID), string(b.ID), string(u.ID)

	tests := []struct {
		name  string
		do    func() error
		err   error
		field string
	}{
		// Amounts.
		{name: "deposit zero", do: deposit(ledger.DepositRequest{AccountID: A, Amount: eur(0), IdempotencyKey: "k"}), err: ledger.ErrInvalidAmount, field: "amount.minor_units"},
		{name: "deposit negative", do: deposit(ledger.DepositRequest{AccountID: A, Amount: eur(-100), IdempotencyKey: "k"}), err: ledger.ErrInvalidAmount, field: "amount.minor_units"},
		{name: "deposit most negative", do: deposit(ledger.DepositRequest{AccountID: A, Amount: eur(math.MinInt64), IdempotencyKey: "k"}), err: ledger.ErrInvalidAmount, field: "amount.minor_units"},
		{name: "withdraw zero", do: withdraw(ledger.WithdrawRequest{AccountID: A, Amount: eur(0), IdempotencyKey: "k"}), err: ledger.ErrInvalidAmount, field: "amount.minor_units"},
		{name: "transfer negative", do: transfer(ledger.TransferRequest{FromAccountID: A, ToAccountID: B, Amount: eur(-1), IdempotencyKey: "k"}), err: ledger.ErrInvalidAmount, field: "amount.minor_units"},
		{name: "deposit of the int64 maximum", do: deposit(ledger.DepositRequest{AccountID: A, Amount: eur(math.MaxInt64), IdempotencyKey: "k"}), err: ledger.ErrAmountTooLarge, field: "amount.minor_units"},
		{name: "deposit over the max amount", do: deposit(ledger.DepositRequest{AccountID: string(other.ID), Amount: money.Amount{Currency: "CHF", Minor: 100001}, IdempotencyKey: "k"}), err: ledger.ErrAmountTooLarge, field: "amount.minor_units"},
		{name: "withdrawal over the max amount", do: withdraw(ledger.WithdrawRequest{AccountID: A, Amount: eur(ledger.DefaultMaxAmount*100 + 1), IdempotencyKey: "k"}), err: ledger.ErrAmountTooLarge, field: "amount.minor_units"},
		{name: "transfer over the max amount", do: transfer(ledger.TransferRequest{FromAccountID: A, ToAccountID: B, Amount: eur(ledger.DefaultMaxAmount*100 + 1), IdempotencyKey: "k"}), err: ledger.ErrAmountTooLarge, field: "amount.minor_units"},
		{name: "deposit past the max supply", do: deposit(ledger.DepositRequest{AccountID: string(full.ID), Amount: money.Amount{Currency: "CHF", Minor: 1}, IdempotencyKey: "k"}), err: ledger.ErrSupplyLimit, field: "amount.minor_units"},
		{name: "deposit past the max supply, other account", do: deposit(ledger.DepositRequest{AccountID: string(other.ID), Amount: money.Amount{Currency: "CHF", Minor: 2}, IdempotencyKey: "k"}), err: ledger.ErrSupplyLimit, field: "amount.minor_units"},
		{name: "transfer overdraft in a full currency", do: transfer(ledger.TransferRequest{FromAccountID: string(other.ID), ToAccountID: string(full.ID), Amount: money.Amount{Currency: "CHF", Minor: 1}, IdempotencyKey: "k"}), err: ledger.ErrInsufficientFunds, field: "from_account_id"},
		// Currencies.
		{name: "deposit without currency", do: deposit(ledger.DepositRequest{AccountID: A, Amount: money.Amount{Minor: 100}, IdempotencyKey: "k"}), err: ledger.ErrMissingField, field: "amount.currency_code"},
		{name: "deposit unknown currency", do: deposit(ledger.DepositRequest{AccountID: A, Amount: money.Amount{Currency: "XYZ", Minor: 100}, IdempotencyKey: "k"}), err: ledger.ErrUnknownCurrency, field: "amount.currency_code"},
		{name: "deposit USD into EUR", do: deposit(ledger.DepositRequest{AccountID: A, Amount: money.Amount{Currency: "USD", Minor: 100}, IdempotencyKey: "k"}), err: ledger.ErrCurrencyMismatch, field: "amount.currency_code"},
		{name: "withdraw USD from EUR", do: withdraw(ledger.WithdrawRequest{AccountID: A, Amount: money.Amount{Currency: "USD", Minor: 100}, IdempotencyKey: "k"}), err: ledger.ErrCurrencyMismatch, field: "amount.currency_code"},
		{name: "transfer EUR to USD account", do: transfer(ledger.TransferRequest{FromAccountID: A, ToAccountID: U, Amount: eur(100), IdempotencyKey: "k"}), err: ledger.ErrCurrencyMismatch, field: "amount.currency_code"},
		{name: "transfer USD from EUR account", do: transfer(ledger.TransferRequest{FromAccountID: A, ToAccountID: U, Amount: money.Amount{Currency: "USD", Minor: 100}, IdempotencyKey: "k"}), err: ledger.ErrCurrencyMismatch, field: "amount.currency_code"},
		// Funds.
		{name: "overdraft", do: withdraw(ledger.WithdrawRequest{AccountID: A, Amount: eur(10001), IdempotencyKey: "k"}), err: ledger.ErrInsufficientFunds, field: "account_id"},
		{name: "withdraw from empty account", do: withdraw(ledger.WithdrawRequest{AccountID: B, Amount: eur(1), IdempotencyKey: "k"}), err: ledger.ErrInsufficientFunds, field: "account_id"},
		{name: "transfer overdraft", do: transfer(ledger.TransferRequest{FromAccountID: A, ToAccountID: B, Amount: eur(10001), IdempotencyKey: "k"}), err: ledger.ErrInsufficientFunds, field: "from_account_id"},
		// Accounts.
		{name: "self-transfer", do: transfer(ledger.TransferRequest{FromAccountID: A, ToAccountID: A, Amount: eur(1), IdempotencyKey: "k"}), err: ledger.ErrSelfTransfer, field: "to_account_id"},
		{name: "deposit to unknown account", do: deposit(ledger.DepositRequest{AccountID: unknown, Amount: eur(1), IdempotencyKey: "k"}), err: ledger.ErrAccountNotFound, field: "account_id"},
		{name: "deposit to system account", do: deposit(ledger.DepositRequest{AccountID: string(sys[0].ID), Amount: money.Amount{Currency: sys[0].Currency, Minor: 1}, IdempotencyKey: "k"}), err: ledger.ErrAccountNotFound, field: "account_id"},
		{name: "transfer from unknown account", do: transfer(ledger.TransferRequest{FromAccountID: unknown, ToAccountID: B, Amount: eur(1), IdempotencyKey: "k"}), err: ledger.ErrAccountNotFound, field: "from_account_id"},
		{name: "transfer to unknown account", do: transfer(ledger.TransferRequest{FromAccountID: A, ToAccountID: unknown, Amount: eur(1), IdempotencyKey: "k"}), err: ledger.ErrAccountNotFound, field: "to_account_id"},
		{name: "deposit to malformed id", do: deposit(ledger.DepositRequest{AccountID: "acc_123", Amount: eur(1), IdempotencyKey: "k"}), err: ledger.ErrMalformedID, field: "account_id"},
		{name: "deposit without account", do: deposit(ledger.DepositRequest{Amount: eur(1), IdempotencyKey: "k"}), err: ledger.ErrMissingField, field: "account_id"},
		{name: "withdraw from malformed id", do: withdraw(ledger.WithdrawRequest{AccountID: "acc_" + strings.Repeat("z", 26), Amount: eur(1), IdempotencyKey: "k"}), err: ledger.ErrMalformedID, field: "account_id"},
		{name: "transfer from malformed id", do: transfer(ledger.TransferRequest{FromAccountID: "x", ToAccountID: B, Amount: eur(1), IdempotencyKey: "k"}), err: ledger.ErrMalformedID, field: "from_account_id"},
		{name: "transfer to malformed id", do: transfer(ledger.TransferRequest{FromAccountID: A, ToAccountID: "x", Amount: eur(1), IdempotencyKey: "k"}), err: ledger.ErrMalformedID, field: "to_account_id"},
		{name: "transfer without destination", do: transfer(ledger.TransferRequest{FromAccountID: A, Amount: eur(1), IdempotencyKey: "k"}), err: ledger.ErrMissingField, field: "to_account_id"},
		// Keys, text and identities.
		{name: "missing idempotency key", do: deposit(ledger.DepositRequest{AccountID: A, Amount: eur(1)}), err: ledger.ErrMissingField, field: "idempotency_key"},
		{name: "idempotency key with a space", do: deposit(ledger.DepositRequest{AccountID: A, Amount: eur(1), IdempotencyKey: "a b"}), err: ledger.ErrInvalidIdempotencyKey, field: "idempotency_key"},
		{name: "idempotency key too long", do: transfer(ledger.TransferRequest{FromAccountID: A, ToAccountID: B, Amount: eur(1), IdempotencyKey: strings.Repeat("k", ledger.MaxIdempotencyKeyLen+1)}), err: ledger.ErrInvalidIdempotencyKey, field: "idempotency_key"},
		{name: "reference too long", do: deposit(ledger.DepositRequest{AccountID: A, Amount: eur(1), IdempotencyKey: "k", Reference: strings.Repeat("r", ledger.MaxReferenceLen+1)}), err: ledger.ErrInvalidText, field: "reference"},
		{name: "reference with control character", do: withdraw(ledger.WithdrawRequest{AccountID: A, Amount: eur(1), IdempotencyKey: "k", Reference: "a\x00b"}), err: ledger.ErrInvalidText, field: "reference"},
		{name: "principal of another trust domain", do: deposit(ledger.DepositRequest{AccountID: A, Amount: eur(1), IdempotencyKey: "k", Principal: "spiffe://other.example/teller/tina"}), err: ledger.ErrInvalidSPIFFEID, field: "principal"},
		{name: "on behalf of a non-SPIFFE ID", do: transfer(ledger.TransferRequest{FromAccountID: A, ToAccountID: B, Amount: eur(1), IdempotencyKey: "k", OnBehalfOf: "alice"}), err: ledger.ErrInvalidSPIFFEID, field: "on_behalf_of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := TakeSnapshot(t, s)
			err := tt.do()
			WantError(t, err, tt.err, tt.field)
			var le *ledger.Error
			if !errors.As(err, &le) || le.Error() == "" {
				t.Errorf("error %v is not a *ledger.Error with a message", err)
			}
			after := TakeSnapshot(t, s)
			if !maps.Equal(before.Accounts, after.Accounts) {
				t.Errorf("refused request changed accounts:\nbefore %v\nafter  %v", before.Accounts, after.Accounts)
			}
			if len(after.Entries) != len(before.Entries) {
				t.Errorf("refused request wrote %d entries", len(after.Entries)-len(before.Entries))
			}
		})
	}
	CheckInvariants(t, s)
}

// equalTransactions compares two transactions field by field.
func equalTransactions(a, b ledger.Transaction) bool {
	if a.ID != b.ID || a.Kind != b.Kind || a.Amount != b.Amount || a.Currency != b.Currency ||
		a.Reference != b.Reference || !a.CreatedAt.Equal(b.CreatedAt) || a.Principal != b.Principal ||
		a.OnBehalfOf != b.OnBehalfOf || len(a.Entries) != len(b.Entries) {
		return false
	}
	for i := range a.Entries {
		x, y := a.Entries[i], b.Entries[i]
		if x.Sequence != y.Sequence || x.TransactionID != y.TransactionID || x.AccountID != y.AccountID ||
			x.Amount != y.Amount || x.Currency != y.Currency || x.BalanceAfter != y.BalanceAfter || !x.CreatedAt.Equal(y.CreatedAt) {
			return false
		}
	}
	return true
}
