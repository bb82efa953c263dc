package payments

import (
	"fmt"
	"time"
)

// Columns are the columns of the payments table, in the order ScanPayment reads
// them: the SQL stores select them (`SELECT ` + Columns + ` FROM payments ...`).
const Columns = `seq, id, created_by, idempotency_key, fingerprint, status,
	from_account_id, to_account_id, currency, minor_units, memo,
	transaction_id, failure_code, failure_reason, transfer_key, create_time, update_time,
	creator_serial, creator_issuer, limit_minor_units, limit_remaining, creator_cas, failure_error_reason,
	lease_owner, lease_until`

// Scanner is a row as database/sql and pgx return it.
type Scanner interface{ Scan(dest ...any) error }

// ScanPayment reads a row of Columns. Times are stored as nanoseconds since the
// Unix epoch (UTC), the creator's CAs as EncodeCertRefs writes them.
func ScanPayment(row Scanner) (Payment, error) {
	var p Payment
	var created, updated, leaseUntil int64
	var cas string
	err := row.Scan(&p.Seq, &p.ID, &p.CreatedBy, &p.IdempotencyKey, &p.Fingerprint, &p.Status,
		&p.FromAccountID, &p.ToAccountID, &p.Currency, &p.MinorUnits, &p.Memo,
		&p.TransactionID, &p.FailureCode, &p.FailureReason, &p.TransferKey, &created, &updated,
		&p.CreatorSerial, &p.CreatorIssuer, &p.LimitMinorUnits, &p.LimitRemaining, &cas, &p.FailureErrorReason,
		&p.LeaseOwner, &leaseUntil)
	if err != nil {
		return Payment{}, err
	}
	if p.CreatorCAs, err = DecodeCertRefs(cas); err != nil {
		return Payment{}, fmt.Errorf("payment %s: creator_cas: %w", p.ID, err)
	}
	if len(p.CreatorIssuer) == 0 {
		p.CreatorIssuer = nil // one spelling of "none", whatever the driver returns
	}
	p.CreateTime = FromNanos(created)
	p.UpdateTime = FromNanos(updated)
	p.LeaseUntil = FromNanos(leaseUntil)
	return p, nil
}

// Nanos is t as the stores keep times: nanoseconds since the Unix epoch, 0 for the
// zero time.
func Nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// FromNanos reads what Nanos wrote, in UTC.
func FromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// IssuerColumn is p.CreatorIssuer as the NOT NULL creator_issuer column takes it.
func IssuerColumn(p Payment) []byte {
	if p.CreatorIssuer == nil {
		return []byte{}
	}
	return p.CreatorIssuer
}

// InsertColumns are the columns Tx.Insert writes, in the order of InsertValues.
const InsertColumns = `id, created_by, idempotency_key, fingerprint, status,
	from_account_id, to_account_id, currency, minor_units, memo,
	transaction_id, failure_code, failure_reason, failure_error_reason, transfer_key, create_time, update_time,
	creator_serial, creator_issuer, creator_cas, limit_minor_units, limit_remaining, lease_owner, lease_until`

// InsertValues are the values of InsertColumns for p.
func InsertValues(p Payment) ([]any, error) {
	cas, err := EncodeCertRefs(p.CreatorCAs)
	if err != nil {
		return nil, err
	}
	return []any{p.ID, p.CreatedBy, p.IdempotencyKey, p.Fingerprint, string(p.Status),
		p.FromAccountID, p.ToAccountID, p.Currency, p.MinorUnits, p.Memo,
		p.TransactionID, p.FailureCode, p.FailureReason, p.FailureErrorReason, p.TransferKey, Nanos(p.CreateTime), Nanos(p.UpdateTime),
		p.CreatorSerial, IssuerColumn(p), cas, p.LimitMinorUnits, p.LimitRemaining, p.LeaseOwner, Nanos(p.LeaseUntil)}, nil
}

// Rows is a result set as database/sql and pgx return it.
type Rows interface {
	Scanner
	Next() bool
	Err() error
}

// ScanPayments reads every row of Columns in rows; the caller closes rows.
func ScanPayments(rows Rows) ([]Payment, error) {
	var out []Payment
	for rows.Next() {
		p, err := ScanPayment(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
