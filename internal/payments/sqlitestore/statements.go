package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"mtlsbank/internal/payments"
)

// The statements of the writer connection, prepared once: SQLite would otherwise
// parse each of them again on every payment.
const (
	// stmtInsert records a new payment; it changes no row when the creator
	// already used the idempotency key. (No RETURNING: SQLite would collect the
	// returned row in an ephemeral table per statement; the payment's seq is its
	// rowid, which the statement's result carries.)
	stmtInsert = iota
	// stmtByKey reads the payment a creator recorded under a key.
	stmtByKey
	// stmtByIDWrite reads a payment by id inside a write transaction.
	stmtByIDWrite
	// stmtFinish changes a payment that is still PENDING; it changes no row when
	// it is not PENDING (or not there). (No RETURNING: see Tx.Finish.)
	stmtFinish
	// stmtUsage sums a creator's orders in a currency that are not FAILED and
	// were created after a time: what the rolling limit has used.
	stmtUsage
	// stmtLease leases a PENDING payment whose lease has expired (or is the
	// owner's) and returns it; no row otherwise.
	stmtLease
	// stmtRelease clears the owner's lease.
	stmtRelease
	numWriteStmts
)

var writeSQL = [numWriteStmts]string{
	stmtInsert: `INSERT INTO payments (` + payments.InsertColumns + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (created_by, idempotency_key) DO NOTHING`,
	// The minutes wholly after since from payment_usage (0006), then the payments of
	// since's own minute that are after it.
	stmtUsage: `SELECT
		(SELECT COALESCE(SUM(minor_units), 0) FROM payment_usage
			WHERE created_by = ?1 AND currency = ?2 AND minute > ?3 / 60000000000) +
		(SELECT COALESCE(SUM(minor_units), 0) FROM payments
			WHERE created_by = ?1 AND currency = ?2 AND create_time > ?3
			AND create_time < (?3 / 60000000000 + 1) * 60000000000 AND status <> 'FAILED')`,
	stmtByKey:     `SELECT ` + payments.Columns + ` FROM payments WHERE created_by = ? AND idempotency_key = ?`,
	stmtByIDWrite: `SELECT ` + payments.Columns + ` FROM payments WHERE id = ?`,
	stmtFinish: `UPDATE payments SET status = ?, transaction_id = ?, failure_code = ?, failure_reason = ?,
			failure_error_reason = ?, update_time = ?, lease_owner = '', lease_until = 0
		WHERE id = ? AND status = 'PENDING'`,
	stmtLease: `UPDATE payments SET lease_owner = ?, lease_until = ?
		WHERE id = ? AND status = 'PENDING' AND (lease_until <= ? OR lease_owner = ?) RETURNING ` + payments.Columns,
	stmtRelease: `UPDATE payments SET lease_owner = '', lease_until = 0 WHERE id = ? AND lease_owner = ?`,
}

// The statements of the read pool: List has one statement per combination of
// its optional filters.
const (
	stmtByID = iota
	stmtPing
	stmtList              // no filter
	stmtListStatus        // status
	stmtListCreator       // created_by
	stmtListCreatorStatus // created_by and status
	numReadStmts
)

var readSQL = [numReadStmts]string{
	stmtByID:              `SELECT ` + payments.Columns + ` FROM payments WHERE id = ?`,
	stmtPing:              `SELECT 1 FROM schema_history LIMIT 1`,
	stmtList:              `SELECT ` + payments.Columns + ` FROM payments WHERE seq > ? ORDER BY seq LIMIT ?`,
	stmtListStatus:        `SELECT ` + payments.Columns + ` FROM payments WHERE seq > ? AND status = ? ORDER BY seq LIMIT ?`,
	stmtListCreator:       `SELECT ` + payments.Columns + ` FROM payments WHERE seq > ? AND created_by = ? ORDER BY seq LIMIT ?`,
	stmtListCreatorStatus: `SELECT ` + payments.Columns + ` FROM payments WHERE seq > ? AND created_by = ? AND status = ? ORDER BY seq LIMIT ?`,
}

// prepareAll prepares every statement of queries on db. database/sql prepares a
// statement again on each connection the first time it runs there, so a pool's
// connections each parse a statement once.
func prepareAll(ctx context.Context, db *sql.DB, queries []string) ([]*sql.Stmt, error) {
	stmts := make([]*sql.Stmt, len(queries))
	for i, q := range queries {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			closeAll(stmts)
			return nil, fmt.Errorf("prepare %q: %w", q, err)
		}
		stmts[i] = st
	}
	return stmts, nil
}

func closeAll(stmts []*sql.Stmt) error {
	var errs []error
	for _, st := range stmts {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// writeTx is one write transaction on the writer connection: the payments.Tx of
// a batch. It binds each prepared statement to the transaction once, however
// often it runs.
type writeTx struct {
	tx    *sql.Tx
	stmts []*sql.Stmt
	bound [numWriteStmts]*sql.Stmt
}

var _ payments.Tx = (*writeTx)(nil)

func (t *writeTx) stmt(id int) *sql.Stmt {
	if t.bound[id] == nil {
		t.bound[id] = t.tx.Stmt(t.stmts[id])
	}
	return t.bound[id]
}

// LockCreator does nothing: every write transaction holds SQLite's write lock
// (BEGIN IMMEDIATE), also against other processes on the file.
func (t *writeTx) LockCreator(context.Context, string, string) error { return nil }

func (t *writeTx) Usage(ctx context.Context, creator, currency string, since time.Time) (int64, error) {
	var used int64
	err := t.stmt(stmtUsage).QueryRowContext(ctx, creator, currency, payments.Nanos(since)).Scan(&used)
	return used, err
}

func (t *writeTx) Insert(ctx context.Context, p payments.Payment) (int64, bool, error) {
	args, err := payments.InsertValues(p)
	if err != nil {
		return 0, false, err
	}
	res, err := t.stmt(stmtInsert).ExecContext(ctx, args...)
	if err != nil {
		return 0, false, err
	}
	// The statement's own rows (sqlite3_changes), not its trigger's; and the rowid of
	// its row (seq, INTEGER PRIMARY KEY), which the trigger's insert does not replace.
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return 0, false, err
	}
	seq, err := res.LastInsertId()
	if err != nil {
		return 0, false, err
	}
	return seq, true, nil
}

func (t *writeTx) ByKey(ctx context.Context, creator, key string) (payments.Payment, bool, error) {
	return found(payments.ScanPayment(t.stmt(stmtByKey).QueryRowContext(ctx, creator, key)))
}

func (t *writeTx) ByID(ctx context.Context, id string) (payments.Payment, bool, error) {
	return found(payments.ScanPayment(t.stmt(stmtByIDWrite).QueryRowContext(ctx, id)))
}

func (t *writeTx) Finish(ctx context.Context, id string, o payments.Outcome) (bool, error) {
	res, err := t.stmt(stmtFinish).ExecContext(ctx, string(o.Status), o.TransactionID,
		o.FailureCode, o.FailureReason, o.FailureErrorReason, payments.Nanos(o.At), id)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

func (t *writeTx) Lease(ctx context.Context, id, owner string, until, now time.Time) (payments.Payment, bool, error) {
	return found(payments.ScanPayment(t.stmt(stmtLease).QueryRowContext(ctx, owner, payments.Nanos(until), id, payments.Nanos(now), owner)))
}

func (t *writeTx) Release(ctx context.Context, id, owner string) error {
	_, err := t.stmt(stmtRelease).ExecContext(ctx, id, owner)
	return err
}

// found turns "no row" into found == false.
func found(p payments.Payment, err error) (payments.Payment, bool, error) {
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return payments.Payment{}, false, nil
	case err != nil:
		return payments.Payment{}, false, err
	}
	return p, true, nil
}
