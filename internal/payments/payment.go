package payments

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"time"
)

// Status is where a payment is in its life.
type Status string

// The statuses a payment moves through: PENDING, then COMPLETED or FAILED, never back.
const (
	// StatusPending means the payment is recorded and the transfer's outcome is unknown.
	StatusPending Status = "PENDING"
	// StatusCompleted means the money moved; TransactionID names the ledger transaction.
	StatusCompleted Status = "COMPLETED"
	// StatusFailed means the ledger refused the transfer; nothing moved.
	StatusFailed Status = "FAILED"
)

// Payment is one payment order as the store keeps it.
type Payment struct {
	// Seq is the payment's position in creation order, assigned by the store.
	Seq int64
	// ID is the opaque identifier, "pay_" and 26 base32 characters (newPaymentID).
	ID string
	// CreatedBy is the SPIFFE ID of the user who ordered the payment.
	CreatedBy string
	// IdempotencyKey is the caller's key; unique per CreatedBy.
	IdempotencyKey string
	// Fingerprint identifies the order's content, so that a reused key can be told
	// from a retry.
	Fingerprint string
	// Status is PENDING, COMPLETED or FAILED.
	Status Status
	// FromAccountID is the account debited.
	FromAccountID string
	// ToAccountID is the account credited.
	ToAccountID string
	// Currency is the ISO 4217 code of the amount.
	Currency string
	// MinorUnits is the positive amount in minor units of Currency.
	MinorUnits int64
	// Memo is the payer's free text.
	Memo string
	// TransactionID is the ledger transaction of a COMPLETED payment.
	TransactionID string
	// FailureCode is the gRPC code name (such as "FAILED_PRECONDITION") the ledger
	// refused a FAILED payment with.
	FailureCode string
	// FailureReason says, for people, why a FAILED payment failed.
	FailureReason string
	// FailureErrorReason is the google.rpc.ErrorInfo reason (package refusal, such
	// as INSUFFICIENT_FUNDS) the ledger refused a FAILED payment with, or empty.
	FailureErrorReason string
	// TransferKey is the idempotency key of the accounts transfer that carries the
	// payment out; every attempt uses the same one, so money moves at most once.
	TransferKey string
	// CreateTime is when the payment was recorded.
	CreateTime time.Time
	// UpdateTime is when the payment last changed status.
	UpdateTime time.Time
	// CreatorSerial is the serial number, in lower-case hex, of the certificate the
	// order was made with; empty for orders recorded before it was kept.
	CreatorSerial string
	// CreatorIssuer is the raw DER issuer name of that certificate.
	CreatorIssuer []byte
	// CreatorCAs are the CAs of that certificate's verified chain between it and the
	// root (its intermediates): revoking one of them revokes the creator too.
	CreatorCAs []CertRef
	// LimitMinorUnits and LimitRemaining are set on an order refused by the rolling
	// customer limit (FailureCode CodeLimitExceeded): the limit of its currency and
	// what remained of it when the order came.
	LimitMinorUnits int64
	LimitRemaining  int64
	// LeaseOwner is the payments process (a random name per process) that holds the
	// right to carry out this PENDING payment until LeaseUntil: the one that
	// recorded it, or the one whose recovery took it over. Another process takes it
	// over only once the lease has expired. Empty when no one holds it.
	LeaseOwner string
	// LeaseUntil is when LeaseOwner's lease expires.
	LeaseUntil time.Time
}

// Order is what a caller asks for: the part of a payment a fingerprint covers.
type Order struct {
	// FromAccountID is the account to debit.
	FromAccountID string
	// ToAccountID is the account to credit.
	ToAccountID string
	// Currency is the ISO 4217 code of the amount.
	Currency string
	// MinorUnits is the positive amount in minor units.
	MinorUnits int64
	// Memo is free text.
	Memo string
}

// Fingerprint returns a digest of every field of the order, length-prefixed so
// that no two different orders share one.
func (o Order) Fingerprint() string {
	h := sha256.New()
	var n [8]byte
	for _, s := range []string{o.FromAccountID, o.ToAccountID, o.Currency, o.Memo} {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	binary.BigEndian.PutUint64(n[:], uint64(o.MinorUnits))
	h.Write(n[:])
	return hex.EncodeToString(h.Sum(nil))
}

// idEncoding is RFC 4648 base32 with its alphabet in ASCII order (the same characters),
// so that ids sort as the bytes they encode.
var idEncoding = base32.NewEncoding("234567ABCDEFGHIJKLMNOPQRSTUVWXYZ").WithPadding(base32.NoPadding)

// newPaymentID returns "pay_" and 26 base32 characters encoding 128 bits: the first 48
// the millisecond the payment was made, the other 80 from crypto/rand. Ids made later
// sort later, so a store's inserts by payment id (and by the transfer key made from it,
// in the accounts ledger too) append to the index instead of dirtying a random page of
// it per payment; 80 random bits keep ids unguessable, and the time they reveal is the
// payment's create_time, which its readers see anyway.
func newPaymentID() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	_, _ = rand.Read(b[6:])
	return "pay_" + idEncoding.EncodeToString(b[:])
}

// transferKey derives the accounts idempotency key from a payment id. It fits the
// accounts key alphabet [A-Za-z0-9._:-].
func transferKey(paymentID string) string {
	return "payment:" + paymentID
}
