package payments

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

const paymentColumns = `seq, id, created_by, idempotency_key, fingerprint, status,
	from_account_id, to_account_id, currency, minor_units, memo,
	transaction_id, failure_code, failure_reason, transfer_key, create_time, update_time,
	creator_serial, creator_issuer, limit_minor_units, limit_remaining, creator_cas, failure_error_reason`

// The statements of the writer connection, prepared once: SQLite would otherwise
// parse each of them again on every payment.
const (
	// stmtInsert records a new PENDING payment; it returns no row when the
	// creator already used the idempotency key.
	stmtInsert = iota
	// stmtByKey reads the payment a creator recorded under a key.
	stmtByKey
	// stmtByIDWrite reads a payment by id inside a write transaction.
	stmtByIDWrite
	// stmtComplete and stmtFail change a payment that is still PENDING and return
	// it as changed; they return no row when it is not PENDING (or not there).
	stmtComplete
	stmtFail
	// stmtUsage sums a creator's orders in a currency that are not FAILED and
	// were created after a time: what the rolling limit has used.
	stmtUsage
	// stmtInsertRefused records an order refused by the rolling limit as FAILED;
	// like stmtInsert, it returns no row when the creator already used the key.
	stmtInsertRefused
	numWriteStmts
)

var writeSQL = [numWriteStmts]string{
	stmtInsert: `INSERT INTO payments (id, created_by, idempotency_key, fingerprint, status,
			from_account_id, to_account_id, currency, minor_units, memo, transfer_key, create_time, update_time,
			creator_serial, creator_issuer, creator_cas)
		VALUES (?, ?, ?, ?, 'PENDING', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (created_by, idempotency_key) DO NOTHING
		RETURNING seq`,
	stmtInsertRefused: `INSERT INTO payments (id, created_by, idempotency_key, fingerprint, status,
			from_account_id, to_account_id, currency, minor_units, memo, transfer_key, create_time, update_time,
			creator_serial, creator_issuer, creator_cas, failure_code, failure_reason, limit_minor_units, limit_remaining)
		VALUES (?, ?, ?, ?, 'FAILED', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (created_by, idempotency_key) DO NOTHING
		RETURNING seq`,
	stmtUsage: `SELECT COALESCE(SUM(minor_units), 0) FROM payments
		WHERE created_by = ? AND currency = ? AND create_time > ? AND status <> 'FAILED'`,
	stmtByKey:     `SELECT ` + paymentColumns + ` FROM payments WHERE created_by = ? AND idempotency_key = ?`,
	stmtByIDWrite: `SELECT ` + paymentColumns + ` FROM payments WHERE id = ?`,
	stmtComplete: `UPDATE payments SET status = 'COMPLETED', transaction_id = ?, update_time = ?
		WHERE id = ? AND status = 'PENDING' RETURNING ` + paymentColumns,
	stmtFail: `UPDATE payments SET status = 'FAILED', failure_code = ?, failure_reason = ?, failure_error_reason = ?, update_time = ?
		WHERE id = ? AND status = 'PENDING' RETURNING ` + paymentColumns,
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
	stmtByID:              `SELECT ` + paymentColumns + ` FROM payments WHERE id = ?`,
	stmtPing:              `SELECT 1 FROM schema_history LIMIT 1`,
	stmtList:              `SELECT ` + paymentColumns + ` FROM payments WHERE seq > ? ORDER BY seq LIMIT ?`,
	stmtListStatus:        `SELECT ` + paymentColumns + ` FROM payments WHERE seq > ? AND status = ? ORDER BY seq LIMIT ?`,
	stmtListCreator:       `SELECT ` + paymentColumns + ` FROM payments WHERE seq > ? AND created_by = ? ORDER BY seq LIMIT ?`,
	stmtListCreatorStatus: `SELECT ` + paymentColumns + ` FROM payments WHERE seq > ? AND created_by = ? AND status = ? ORDER BY seq LIMIT ?`,
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

// writeTx is one write transaction on the writer connection. It binds each
// prepared statement to the transaction once, however often it runs.
type writeTx struct {
	tx    *sql.Tx
	stmts []*sql.Stmt
	bound [numWriteStmts]*sql.Stmt
}

func (t *writeTx) stmt(id int) *sql.Stmt {
	if t.bound[id] == nil {
		t.bound[id] = t.tx.Stmt(t.stmts[id])
	}
	return t.bound[id]
}
