package ledger

import (
	"time"

	"mtlsbank/internal/money"
)

// Account is a ledger account. Customer accounts have an owner and never a
// negative balance. Each currency also has one system account, the outside
// world that deposits come from and withdrawals go to; it has no owner, its
// balance is minus the customer money in that currency, and it is never
// listed or returned as a customer account.
type Account struct {
	// ID is the account's opaque id.
	ID AccountID
	// Owner is the owner's SPIFFE ID; empty for a system account.
	Owner string
	// Currency is the ISO 4217 code of everything the account holds.
	Currency string
	// Balance is the balance in minor units: the sum of the account's entries.
	Balance int64
	// DisplayName is a free-text label chosen at opening.
	DisplayName string
	// System marks the per-currency system account.
	System bool
	// CreatedAt is when the account was opened.
	CreatedAt time.Time
}

// CheckOwner returns an error wrapping ErrNotOwner unless principal owns the
// account. Owners never change, so a check made before a request stays true
// while the request runs.
func (a Account) CheckOwner(principal string) error {
	if a.System || principal == "" || a.Owner != principal {
		return &Error{Err: ErrNotOwner, Detail: "account " + string(a.ID)}
	}
	return nil
}

// Kind says what a transaction did.
type Kind string

// Transaction kinds.
const (
	// KindDeposit credits a customer account from the system account.
	KindDeposit Kind = "deposit"
	// KindWithdrawal debits a customer account to the system account.
	KindWithdrawal Kind = "withdrawal"
	// KindTransfer moves money between two customer accounts.
	KindTransfer Kind = "transfer"
)

// Transaction is one committed movement of money and its balanced entries.
type Transaction struct {
	// ID is the transaction's opaque id.
	ID TransactionID
	// Kind says what the transaction did.
	Kind Kind
	// Amount is the positive amount moved, in minor units of Currency.
	Amount int64
	// Currency is the ISO 4217 code.
	Currency string
	// Entries are the debit (negative) and credit (positive) entries, in
	// sequence order; their amounts sum to zero.
	Entries []Entry
	// Reference is the caller's free-text reference.
	Reference string
	// CreatedAt is when the transaction committed.
	CreatedAt time.Time
	// Principal is the SPIFFE ID of the caller that asked for it.
	Principal string
	// OnBehalfOf is the SPIFFE ID of the end user a delegating caller named,
	// or empty.
	OnBehalfOf string
	// Replayed is set on the result of Deposit, Withdraw or Transfer when the
	// request repeated an earlier one under the same idempotency key and
	// returned its original transaction. It is not stored.
	Replayed bool
}

// KeyedTransaction is a transaction with the idempotency key of the request
// that made it (in its Principal's scope), as ListTransactions lists it.
type KeyedTransaction struct {
	Transaction
	// IdempotencyKey is the key the request was made with.
	IdempotencyKey string
}

// Money returns the transaction's amount with its currency.
func (t Transaction) Money() money.Amount {
	return money.Amount{Currency: t.Currency, Minor: t.Amount}
}

// Entry is one line of the ledger: a signed change to one account's balance.
type Entry struct {
	// Sequence numbers all entries of the ledger from 1 without gaps, in
	// commit order.
	Sequence int64
	// TransactionID is the transaction the entry belongs to.
	TransactionID TransactionID
	// AccountID is the account whose balance changed.
	AccountID AccountID
	// Amount is the change in minor units: positive for a credit, negative
	// for a debit.
	Amount int64
	// Currency is the ISO 4217 code.
	Currency string
	// BalanceAfter is the account's balance after this entry.
	BalanceAfter int64
	// CreatedAt is when the entry's transaction committed.
	CreatedAt time.Time
}
