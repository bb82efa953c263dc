package pgstore

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"mtlsbank/internal/payments"
)

// txn implements payments.Tx over a pgx transaction. pgx prepares and caches each
// statement per connection on its first use.
type txn struct{ tx pgx.Tx }

var _ payments.Tx = (*txn)(nil)

// limitLockSpace is the first key of the two-key advisory locks of the rolling
// limit: the two-key form is a lock space of its own, apart from the one-key locks
// (the migrators'). The second key is a hash of (currency, creator); two pairs
// that share a hash only wait for each other.
const limitLockSpace int32 = 0x70_61_79_6c // "payl"

// LockCreator takes the transaction-scoped advisory lock of (creator, currency).
func (t *txn) LockCreator(ctx context.Context, creator, currency string) error {
	_, err := t.tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, limitLockSpace, currency+" "+creator)
	return err
}

func (t *txn) Usage(ctx context.Context, creator, currency string, since time.Time) (int64, error) {
	var used int64
	// The minutes wholly after since from payment_usage (0002), then the payments of
	// since's own minute that are after it.
	err := t.tx.QueryRow(ctx, `SELECT (
		(SELECT COALESCE(SUM(minor_units), 0) FROM payment_usage
			WHERE created_by = $1 AND currency = $2 AND minute > $3::BIGINT / 60000000000) +
		(SELECT COALESCE(SUM(minor_units), 0) FROM payments
			WHERE created_by = $1 AND currency = $2 AND create_time > $3::BIGINT
			AND create_time < ($3::BIGINT / 60000000000 + 1) * 60000000000 AND status <> 'FAILED'))::BIGINT`,
		creator, currency, payments.Nanos(since)).Scan(&used)
	return used, err
}

func (t *txn) Insert(ctx context.Context, p payments.Payment) (int64, bool, error) {
	args, err := payments.InsertValues(p)
	if err != nil {
		return 0, false, err
	}
	var seq int64
	err = t.tx.QueryRow(ctx, `INSERT INTO payments (`+payments.InsertColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)
		ON CONFLICT (created_by, idempotency_key) DO NOTHING
		RETURNING seq`, args...).Scan(&seq)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, false, nil
	case err != nil:
		return 0, false, err
	}
	return seq, true, nil
}

func (t *txn) ByKey(ctx context.Context, creator, key string) (payments.Payment, bool, error) {
	return found(payments.ScanPayment(t.tx.QueryRow(ctx,
		`SELECT `+payments.Columns+` FROM payments WHERE created_by = $1 AND idempotency_key = $2`, creator, key)))
}

func (t *txn) ByID(ctx context.Context, id string) (payments.Payment, bool, error) {
	return found(payments.ScanPayment(t.tx.QueryRow(ctx, `SELECT `+payments.Columns+` FROM payments WHERE id = $1`, id)))
}

// Finish is one conditional UPDATE: a concurrent Finish of the same payment waits
// for the row lock, then finds it no longer PENDING and changes nothing.
func (t *txn) Finish(ctx context.Context, id string, o payments.Outcome) (bool, error) {
	tag, err := t.tx.Exec(ctx, `UPDATE payments
		SET status = $1, transaction_id = $2, failure_code = $3, failure_reason = $4,
			failure_error_reason = $5, update_time = $6, lease_owner = '', lease_until = 0
		WHERE id = $7 AND status = 'PENDING'`,
		string(o.Status), o.TransactionID, o.FailureCode, o.FailureReason, o.FailureErrorReason, payments.Nanos(o.At), id)
	return tag.RowsAffected() > 0, err
}

// Lease is one conditional UPDATE: of two replicas claiming one payment, the
// second waits for the first's row lock, then re-reads the row (READ COMMITTED),
// finds the lease taken and changes nothing.
func (t *txn) Lease(ctx context.Context, id, owner string, until, now time.Time) (payments.Payment, bool, error) {
	return found(payments.ScanPayment(t.tx.QueryRow(ctx, `UPDATE payments SET lease_owner = $1, lease_until = $2
		WHERE id = $3 AND status = 'PENDING' AND (lease_until <= $4 OR lease_owner = $1) RETURNING `+payments.Columns,
		owner, payments.Nanos(until), id, payments.Nanos(now))))
}

func (t *txn) Release(ctx context.Context, id, owner string) error {
	_, err := t.tx.Exec(ctx, `UPDATE payments SET lease_owner = '', lease_until = 0 WHERE id = $1 AND lease_owner = $2`, id, owner)
	return err
}

// found turns "no row" into found == false.
func found(p payments.Payment, err error) (payments.Payment, bool, error) {
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return payments.Payment{}, false, nil
	case err != nil:
		return payments.Payment{}, false, err
	}
	return p, true, nil
}
