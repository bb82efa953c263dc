package ledger

import (
	"errors"
	"fmt"
)

// Sentinel errors. The comment on each names the gRPC status code the edge
// maps it to; test with errors.Is.
var (
	// ErrInvalidArgument is the parent of every refusal of malformed or
	// inconsistent input (codes.InvalidArgument). The specific reasons below
	// wrap it, and *Error names the field.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrInsufficientFunds refuses a debit larger than the customer balance
	// (codes.FailedPrecondition). Customer balances never go negative.
	ErrInsufficientFunds = errors.New("insufficient funds")
	// ErrAccountNotFound means no customer account has the id (codes.NotFound).
	ErrAccountNotFound = errors.New("account not found")
	// ErrTransactionNotFound means no transaction has the id (codes.NotFound).
	ErrTransactionNotFound = errors.New("transaction not found")
	// ErrIdempotencyMismatch means the caller already used the idempotency
	// key for a different request (codes.FailedPrecondition).
	ErrIdempotencyMismatch = errors.New("idempotency key already used for a different request")
	// ErrNotOwner means the account belongs to someone else
	// (codes.PermissionDenied).
	ErrNotOwner = errors.New("account not owned by the caller")
	// ErrClosed means the ledger is shutting down (codes.Unavailable).
	ErrClosed = errors.New("ledger closed")
	// ErrSupplyLimit refuses a deposit that would take the money all customer
	// accounts hold in its currency beyond the ledger's max supply
	// (codes.FailedPrecondition). Withdrawals and transfers still work.
	ErrSupplyLimit = errors.New("the bank's limit on money held in this currency is reached")
	// ErrTransferVoided means the caller voided the idempotency key before any
	// request under it ran (TransferRequest.Void): nothing moved under the key
	// and nothing ever will (codes.FailedPrecondition, ErrorInfo reason
	// TRANSFER_VOIDED).
	ErrTransferVoided = errors.New("transfer voided")
	// ErrConcurrentRequest means another writer recorded the same
	// idempotency key at the same moment; retrying returns its outcome
	// (codes.Aborted). With the SQLite store, whose writes are serialized,
	// it does not happen.
	ErrConcurrentRequest = errors.New("concurrent request with the same idempotency key")
)

// Reasons for ErrInvalidArgument. Each wraps ErrInvalidArgument, so
// errors.Is(err, ErrInvalidArgument) holds for all of them.
var (
	// ErrMissingField means a required field is empty.
	ErrMissingField = fmt.Errorf("%w: required field missing", ErrInvalidArgument)
	// ErrMalformedID means an account or transaction id is not in the
	// ledger's format (a prefix and 26 Crockford base32 characters).
	ErrMalformedID = fmt.Errorf("%w: malformed id", ErrInvalidArgument)
	// ErrInvalidAmount means an amount is zero or negative.
	ErrInvalidAmount = fmt.Errorf("%w: amount must be positive", ErrInvalidArgument)
	// ErrUnknownCurrency means a currency code is not an active ISO 4217 code.
	ErrUnknownCurrency = fmt.Errorf("%w: unknown currency", ErrInvalidArgument)
	// ErrCurrencyMismatch means the amount's currency is not the account's.
	ErrCurrencyMismatch = fmt.Errorf("%w: currency is not the account's", ErrInvalidArgument)
	// ErrSelfTransfer means a transfer names the same account twice.
	ErrSelfTransfer = fmt.Errorf("%w: transfer to the same account", ErrInvalidArgument)
	// ErrAmountTooLarge means an amount is more than the ledger's largest amount
	// of one request in its currency.
	ErrAmountTooLarge = fmt.Errorf("%w: amount too large", ErrInvalidArgument)
	// ErrBalanceOverflow means the amount would take a balance beyond what
	// int64 minor units hold.
	ErrBalanceOverflow = fmt.Errorf("%w: amount would overflow the balance", ErrInvalidArgument)
	// ErrInvalidSPIFFEID means an owner or caller identity is not a SPIFFE ID
	// with a path in the bank's trust domain.
	ErrInvalidSPIFFEID = fmt.Errorf("%w: not a SPIFFE ID of the trust domain", ErrInvalidArgument)
	// ErrInvalidText means a free-text field is too long, not UTF-8 or holds
	// control characters.
	ErrInvalidText = fmt.Errorf("%w: invalid text", ErrInvalidArgument)
	// ErrInvalidIdempotencyKey means the key is longer than 128 bytes or
	// holds characters other than printable ASCII without spaces.
	ErrInvalidIdempotencyKey = fmt.Errorf("%w: invalid idempotency key", ErrInvalidArgument)
	// ErrInvalidPageSize means a negative page size.
	ErrInvalidPageSize = fmt.Errorf("%w: page size must not be negative", ErrInvalidArgument)
	// ErrInvalidPageToken means a page token this ledger did not issue for
	// the same query.
	ErrInvalidPageToken = fmt.Errorf("%w: invalid page token", ErrInvalidArgument)
	// ErrInvalidSequence means a negative sequence number.
	ErrInvalidSequence = fmt.Errorf("%w: sequence must not be negative", ErrInvalidArgument)
)

// Error is a refused request: Err is one of the sentinels above, Field the
// request field at fault (named as in the API, such as "from_account_id" or
// "amount.currency_code"; empty if none), and Detail a sentence for the person
// who was refused. It never carries another customer's data.
type Error struct {
	// Field is the request field at fault, or empty.
	Field string
	// Err is the sentinel that says why.
	Err error
	// Detail explains the refusal, or is empty.
	Detail string
}

// Error implements error.
func (e *Error) Error() string {
	s := e.Err.Error()
	if e.Field != "" {
		s = e.Field + ": " + s
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Err }

func fieldError(field string, err error, format string, args ...any) *Error {
	return &Error{Field: field, Err: err, Detail: fmt.Sprintf(format, args...)}
}

// Refusals that depend on the ledger's state rather than on the request
// alone are decided inside the write transaction and recorded under the
// idempotency key with a stable code, so that a replay returns the same
// refusal even after the state changed. Malformed input is refused before
// and never recorded.

// refusalCode returns the stable code of a recordable refusal.
func refusalCode(err error) (*Error, string, bool) {
	var e *Error
	if !errors.As(err, &e) {
		return nil, "", false
	}
	switch e.Err {
	case ErrInsufficientFunds:
		return e, "insufficient_funds", true
	case ErrAccountNotFound:
		return e, "account_not_found", true
	case ErrCurrencyMismatch:
		return e, "currency_mismatch", true
	case ErrBalanceOverflow:
		return e, "balance_overflow", true
	case ErrSupplyLimit:
		return e, "supply_limit", true
	case ErrTransferVoided:
		return e, "voided", true
	}
	return nil, "", false
}

// refusalFromCode rebuilds a recorded refusal.
func refusalFromCode(code, field, detail string) (*Error, bool) {
	var err error
	switch code {
	case "insufficient_funds":
		err = ErrInsufficientFunds
	case "account_not_found":
		err = ErrAccountNotFound
	case "currency_mismatch":
		err = ErrCurrencyMismatch
	case "balance_overflow":
		err = ErrBalanceOverflow
	case "supply_limit":
		err = ErrSupplyLimit
	case "voided":
		err = ErrTransferVoided
	default:
		return nil, false
	}
	return &Error{Field: field, Err: err, Detail: detail}, true
}
