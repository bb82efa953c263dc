// Package refusal gives every refusal of the bank's services other than
// authentication and authorization a machine-readable reason: a
// google.rpc.ErrorInfo in the domain bank.local with a stable UPPER_SNAKE
// reason and metadata, attached to the gRPC status besides any other detail
// (google.rpc.BadRequest for a field at fault).
//
// Authentication and authorization denials (UNAUTHENTICATED, and
// PERMISSION_DENIED from the policy or for a resource that is not the
// caller's) carry no ErrorInfo: they stay generic to the client.
package refusal

import (
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"mtlsbank/internal/ledger"
)

// Domain is the ErrorInfo domain of the bank.
const Domain = "bank.local"

// Reasons. They are part of the API: never rename one, only add.
const (
	// InsufficientFunds: the debited account holds less than the amount (FAILED_PRECONDITION).
	InsufficientFunds = "INSUFFICIENT_FUNDS"
	// IdempotencyKeyReused: the key was already used for a different request (FAILED_PRECONDITION).
	IdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED"
	// AccountNotFound: no account has the id (NOT_FOUND).
	AccountNotFound = "ACCOUNT_NOT_FOUND"
	// TransactionNotFound: no transaction has the id (NOT_FOUND).
	TransactionNotFound = "TRANSACTION_NOT_FOUND"
	// PaymentNotFound: no payment has the id (NOT_FOUND).
	PaymentNotFound = "PAYMENT_NOT_FOUND"
	// SupplyLimitReached: the bank holds its maximum of money in the currency (FAILED_PRECONDITION).
	SupplyLimitReached = "SUPPLY_LIMIT_REACHED"
	// TransferVoided: the transfer's key was voided; nothing moved and nothing will (FAILED_PRECONDITION).
	TransferVoided = "TRANSFER_VOIDED"
	// ConcurrentRequest: another request with the same key ran at the same moment; retry (ABORTED).
	ConcurrentRequest = "CONCURRENT_REQUEST"
	// ServiceShuttingDown: the service is stopping; retry with the same key (UNAVAILABLE).
	ServiceShuttingDown = "SERVICE_SHUTTING_DOWN"
	// MissingField: a required field is empty (INVALID_ARGUMENT).
	MissingField = "MISSING_FIELD"
	// MalformedID: an id is not in the bank's format (INVALID_ARGUMENT).
	MalformedID = "MALFORMED_ID"
	// InvalidAmount: the amount is zero or negative (INVALID_ARGUMENT).
	InvalidAmount = "INVALID_AMOUNT"
	// UnknownCurrency: the currency is not an active ISO 4217 code (INVALID_ARGUMENT).
	UnknownCurrency = "UNKNOWN_CURRENCY"
	// CurrencyMismatch: the amount's currency is not the account's (INVALID_ARGUMENT).
	CurrencyMismatch = "CURRENCY_MISMATCH"
	// SelfTransfer: a transfer names the same account twice (INVALID_ARGUMENT).
	SelfTransfer = "SELF_TRANSFER"
	// AmountTooLarge: the amount is above the largest of one request (INVALID_ARGUMENT).
	AmountTooLarge = "AMOUNT_TOO_LARGE"
	// BalanceOverflow: the amount would take a balance beyond what it can hold (INVALID_ARGUMENT).
	BalanceOverflow = "BALANCE_OVERFLOW"
	// InvalidOwner: an owner identity is not a SPIFFE ID of the trust domain (INVALID_ARGUMENT).
	InvalidOwner = "INVALID_OWNER"
	// InvalidText: a free-text field is too long, not UTF-8 or holds control characters (INVALID_ARGUMENT).
	InvalidText = "INVALID_TEXT"
	// InvalidIdempotencyKey: the key is too long or holds characters it may not (INVALID_ARGUMENT).
	InvalidIdempotencyKey = "INVALID_IDEMPOTENCY_KEY"
	// InvalidPageSize: a negative page size (INVALID_ARGUMENT).
	InvalidPageSize = "INVALID_PAGE_SIZE"
	// InvalidPageToken: a page token the service did not issue for the query (INVALID_ARGUMENT).
	InvalidPageToken = "INVALID_PAGE_TOKEN"
	// InvalidSequence: a negative sequence number (INVALID_ARGUMENT).
	InvalidSequence = "INVALID_SEQUENCE"
	// InvalidArgument: malformed input of no more specific reason (INVALID_ARGUMENT).
	InvalidArgument = "INVALID_ARGUMENT"
	// CustomerPaymentLimitExceeded: the payment is above the customers' per-payment
	// limit (PERMISSION_DENIED; metadata limit, currency, max, amount).
	CustomerPaymentLimitExceeded = "CUSTOMER_PAYMENT_LIMIT_EXCEEDED"
	// CustomerDailyLimitExceeded: the payment does not fit in what remains of the
	// customer's rolling daily limit (RESOURCE_EXHAUSTED; metadata limit, window,
	// currency, max, remaining, amount).
	CustomerDailyLimitExceeded = "CUSTOMER_DAILY_LIMIT_EXCEEDED"
	// CurrencyNotAllowed: customers may not order payments in the currency (PERMISSION_DENIED).
	CurrencyNotAllowed = "CURRENCY_NOT_ALLOWED"
)

// ledgerReasons maps each ledger sentinel to its reason; the first that err
// wraps wins, so the specific reasons of ErrInvalidArgument come before it.
var ledgerReasons = []struct {
	err    error
	reason string
}{
	{ledger.ErrInsufficientFunds, InsufficientFunds},
	{ledger.ErrIdempotencyMismatch, IdempotencyKeyReused},
	{ledger.ErrAccountNotFound, AccountNotFound},
	{ledger.ErrTransactionNotFound, TransactionNotFound},
	{ledger.ErrSupplyLimit, SupplyLimitReached},
	{ledger.ErrTransferVoided, TransferVoided},
	{ledger.ErrConcurrentRequest, ConcurrentRequest},
	{ledger.ErrClosed, ServiceShuttingDown},
	{ledger.ErrMissingField, MissingField},
	{ledger.ErrMalformedID, MalformedID},
	{ledger.ErrInvalidAmount, InvalidAmount},
	{ledger.ErrUnknownCurrency, UnknownCurrency},
	{ledger.ErrCurrencyMismatch, CurrencyMismatch},
	{ledger.ErrSelfTransfer, SelfTransfer},
	{ledger.ErrAmountTooLarge, AmountTooLarge},
	{ledger.ErrBalanceOverflow, BalanceOverflow},
	{ledger.ErrInvalidSPIFFEID, InvalidOwner},
	{ledger.ErrInvalidText, InvalidText},
	{ledger.ErrInvalidIdempotencyKey, InvalidIdempotencyKey},
	{ledger.ErrInvalidPageSize, InvalidPageSize},
	{ledger.ErrInvalidPageToken, InvalidPageToken},
	{ledger.ErrInvalidSequence, InvalidSequence},
	{ledger.ErrInvalidArgument, InvalidArgument},
}

// LedgerReason returns the reason of a ledger refusal, and false for an error
// that wraps none of the ledger's sentinels (and for ledger.ErrNotOwner, an
// authorization denial that stays generic).
func LedgerReason(err error) (string, bool) {
	for _, r := range ledgerReasons {
		if errors.Is(err, r.err) {
			return r.reason, true
		}
	}
	return "", false
}

// WithErrorInfo returns st with a google.rpc.ErrorInfo of reason in Domain
// and metadata (nil for none), after the other details, or st with only the
// other details if the ErrorInfo cannot be attached (it cannot happen with
// these messages).
func WithErrorInfo(st *status.Status, reason string, metadata map[string]string, details ...protoadapt.MessageV1) error {
	all := append(details, &errdetails.ErrorInfo{Reason: reason, Domain: Domain, Metadata: metadata})
	if ds, err := st.WithDetails(all...); err == nil {
		return ds.Err()
	}
	if ds, err := st.WithDetails(details...); err == nil {
		return ds.Err()
	}
	return st.Err()
}

// Info returns the ErrorInfo of the bank's domain that err's status carries.
func Info(err error) (*errdetails.ErrorInfo, bool) {
	st, ok := status.FromError(err)
	if !ok {
		return nil, false
	}
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetDomain() == Domain {
			return ei, true
		}
	}
	return nil, false
}
