package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"mtlsbank/internal/ledger"
)

type stmtID int

const (
	stmtAccount stmtID = iota
	stmtSystemAccount
	stmtAccounts
	stmtAccountsByOwner
	stmtTransaction
	stmtTransactionEntries
	stmtEntriesAfter
	stmtTransactionsAfter
	stmtIdempotency
	stmtInsertAccount
	stmtSetBalance
	stmtReadSequence
	stmtWriteSequence
	numStmts
)

const accountColumns = `id, owner, currency, balance, display_name, system, created_at`

const entryColumns = `sequence, transaction_id, account_id, amount, currency, balance_after, created_at`

// stmtSQL returns a statement's text and whether it writes.
func stmtSQL(id stmtID) (string, bool) {
	switch id {
	case stmtAccount:
		return `SELECT ` + accountColumns + ` FROM accounts WHERE id = ?`, false
	case stmtSystemAccount:
		return `SELECT ` + accountColumns + ` FROM accounts WHERE system = 1 AND currency = ?`, false
	case stmtAccounts:
		return `SELECT ` + accountColumns + ` FROM accounts WHERE system = ? AND id > ? ORDER BY id LIMIT ?`, false
	case stmtAccountsByOwner:
		return `SELECT ` + accountColumns + ` FROM accounts WHERE owner = ? AND system = 0 AND id > ? ORDER BY id LIMIT ?`, false
	case stmtTransaction:
		return `SELECT id, kind, amount, currency, reference, principal, on_behalf_of, created_at,
			first_sequence, entry_count FROM transactions WHERE id = ?`, false
	case stmtTransactionEntries:
		return `SELECT ` + entryColumns + ` FROM entries WHERE sequence BETWEEN ? AND ? ORDER BY sequence`, false
	case stmtEntriesAfter:
		return `SELECT ` + entryColumns + ` FROM entries WHERE sequence > ? ORDER BY sequence LIMIT ?`, false
	case stmtTransactionsAfter:
		// A transaction's first entry is the one with its first_sequence: the
		// entries' primary key finds the page, the transactions' its rows.
		return `SELECT t.id, t.kind, t.amount, t.currency, t.reference, t.principal, t.on_behalf_of, t.created_at,
			t.first_sequence, t.entry_count, COALESCE(i.idem_key, '')
			FROM entries e JOIN transactions t ON t.id = e.transaction_id AND t.first_sequence = e.sequence
			LEFT JOIN idempotency i ON i.transaction_id = t.id
			WHERE e.sequence > ? ORDER BY e.sequence LIMIT ?`, false
	case stmtIdempotency:
		return `SELECT principal, idem_key, fingerprint, COALESCE(transaction_id, ''), refusal_code, refusal_field,
			refusal_detail, created_at FROM idempotency WHERE principal = ? AND idem_key = ?`, false
	case stmtInsertAccount:
		return `INSERT INTO accounts (` + accountColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?)`, true
	case stmtSetBalance:
		return `UPDATE accounts SET balance = ? WHERE id = ?`, true
	// Only a write transaction reads the counter (Update): a read transaction
	// has no statement to, and so cannot allocate.
	case stmtReadSequence:
		return `SELECT last_sequence FROM entry_sequence WHERE id = 1`, true
	case stmtWriteSequence:
		return `UPDATE entry_sequence SET last_sequence = ? WHERE id = 1`, true
	}
	return "", false
}

// statements are prepared once per pool; database/sql prepares each on a
// connection the first time it runs there.
type statements [numStmts]*sql.Stmt

func (st *statements) prepare(ctx context.Context, db *sql.DB, writes bool) error {
	for id := range stmtID(numStmts) {
		q, write := stmtSQL(id)
		if q == "" {
			return fmt.Errorf("statement %d has no SQL", id)
		}
		if write && !writes {
			continue
		}
		s, err := db.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
		st[id] = s
	}
	return nil
}

func (st *statements) close() error {
	var errs []error
	for i, s := range st {
		if s != nil {
			errs = append(errs, s.Close())
			st[i] = nil
		}
	}
	return errors.Join(errs...)
}

// stmtCache holds a transaction's own handles on the prepared statements.
type stmtCache [numStmts]*sql.Stmt

// txn reads a database/sql transaction: it is the ledger.ReadTx of a View, and the
// reads and writes of an Update's write transaction (backend).
type txn struct {
	tx    *sql.Tx
	stmts *statements
	cache *stmtCache
}

var _ ledger.ReadTx = (*txn)(nil)

func (t *txn) stmt(ctx context.Context, id stmtID) (*sql.Stmt, error) {
	if s := t.cache[id]; s != nil {
		return s, nil
	}
	if t.stmts[id] == nil {
		return nil, errors.New("sqlitestore: write in a read transaction")
	}
	s := t.tx.StmtContext(ctx, t.stmts[id])
	t.cache[id] = s
	return s, nil
}

func (t *txn) exec(ctx context.Context, id stmtID, args ...any) (sql.Result, error) {
	s, err := t.stmt(ctx, id)
	if err != nil {
		return nil, err
	}
	r, err := s.ExecContext(ctx, args...)
	if err != nil {
		return nil, mapError(err)
	}
	return r, nil
}

func (t *txn) query(ctx context.Context, id stmtID, args ...any) (*sql.Rows, error) {
	s, err := t.stmt(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

// mapError turns SQLite's uniqueness violations into ledger.ErrDuplicateKey,
// so that no SQLite error code is seen above this package.
func mapError(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return fmt.Errorf("%w: %v", ledger.ErrDuplicateKey, err)
		}
	}
	return err
}

type scanner interface{ Scan(dest ...any) error }

func scanAccount(row scanner) (ledger.Account, error) {
	var a ledger.Account
	var id string
	var created int64
	if err := row.Scan(&id, &a.Owner, &a.Currency, &a.Balance, &a.DisplayName, &a.System, &created); err != nil {
		return ledger.Account{}, err
	}
	a.ID = ledger.AccountID(id)
	a.CreatedAt = fromMicros(created)
	return a, nil
}

func scanEntry(row scanner) (ledger.Entry, error) {
	var e ledger.Entry
	var txID, acctID string
	var created int64
	if err := row.Scan(&e.Sequence, &txID, &acctID, &e.Amount, &e.Currency, &e.BalanceAfter, &created); err != nil {
		return ledger.Entry{}, err
	}
	e.TransactionID = ledger.TransactionID(txID)
	e.AccountID = ledger.AccountID(acctID)
	e.CreatedAt = fromMicros(created)
	return e, nil
}

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func (t *txn) queryAccount(ctx context.Context, id stmtID, arg any) (ledger.Account, bool, error) {
	s, err := t.stmt(ctx, id)
	if err != nil {
		return ledger.Account{}, false, err
	}
	a, err := scanAccount(s.QueryRowContext(ctx, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.Account{}, false, nil
	}
	if err != nil {
		return ledger.Account{}, false, fmt.Errorf("sqlitestore: read account: %w", err)
	}
	return a, true, nil
}

// Account implements ledger.ReadTx.
func (t *txn) Account(ctx context.Context, id ledger.AccountID) (ledger.Account, bool, error) {
	return t.queryAccount(ctx, stmtAccount, string(id))
}

// SystemAccount implements ledger.ReadTx.
func (t *txn) SystemAccount(ctx context.Context, currency string) (ledger.Account, bool, error) {
	return t.queryAccount(ctx, stmtSystemAccount, currency)
}

// Accounts implements ledger.ReadTx.
func (t *txn) Accounts(ctx context.Context, q ledger.AccountQuery) ([]ledger.Account, error) {
	if q.Limit < 1 {
		return nil, fmt.Errorf("sqlitestore: list accounts: limit %d is not positive", q.Limit)
	}
	var rows *sql.Rows
	var err error
	switch {
	case q.Owner != "" && q.System:
		return nil, nil // system accounts have no owner
	case q.Owner != "":
		rows, err = t.query(ctx, stmtAccountsByOwner, q.Owner, string(q.After), q.Limit)
	default:
		rows, err = t.query(ctx, stmtAccounts, q.System, string(q.After), q.Limit)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: list accounts: %w", err)
	}
	defer rows.Close()
	var out []ledger.Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: list accounts: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: list accounts: %w", err)
	}
	return out, nil
}

// Transaction implements ledger.ReadTx.
func (t *txn) Transaction(ctx context.Context, id ledger.TransactionID) (ledger.Transaction, bool, error) {
	s, err := t.stmt(ctx, stmtTransaction)
	if err != nil {
		return ledger.Transaction{}, false, err
	}
	var tr ledger.Transaction
	var tid, kind string
	var created, first, count int64
	err = s.QueryRowContext(ctx, string(id)).Scan(&tid, &kind, &tr.Amount, &tr.Currency,
		&tr.Reference, &tr.Principal, &tr.OnBehalfOf, &created, &first, &count)
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.Transaction{}, false, nil
	}
	if err != nil {
		return ledger.Transaction{}, false, fmt.Errorf("sqlitestore: read transaction %s: %w", id, err)
	}
	tr.ID = ledger.TransactionID(tid)
	tr.Kind = ledger.Kind(kind)
	tr.CreatedAt = fromMicros(created)

	rows, err := t.query(ctx, stmtTransactionEntries, first, first+count-1)
	if err != nil {
		return ledger.Transaction{}, false, fmt.Errorf("sqlitestore: read entries of %s: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return ledger.Transaction{}, false, fmt.Errorf("sqlitestore: read entries of %s: %w", id, err)
		}
		tr.Entries = append(tr.Entries, e)
	}
	if err := rows.Err(); err != nil {
		return ledger.Transaction{}, false, fmt.Errorf("sqlitestore: read entries of %s: %w", id, err)
	}
	if int64(len(tr.Entries)) != count {
		return ledger.Transaction{}, false, fmt.Errorf("sqlitestore: transaction %s has %d of its %d entries", id, len(tr.Entries), count)
	}
	for _, e := range tr.Entries {
		if e.TransactionID != id {
			return ledger.Transaction{}, false, fmt.Errorf("sqlitestore: entry %d of transaction %s belongs to %s", e.Sequence, id, e.TransactionID)
		}
	}
	return tr, true, nil
}

// EntriesAfter implements ledger.ReadTx.
func (t *txn) EntriesAfter(ctx context.Context, after int64, limit int) ([]ledger.Entry, error) {
	rows, err := t.query(ctx, stmtEntriesAfter, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: read entries after %d: %w", after, err)
	}
	defer rows.Close()
	out := make([]ledger.Entry, 0, min(limit, 1024))
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: read entries after %d: %w", after, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: read entries after %d: %w", after, err)
	}
	return out, nil
}

// TransactionsAfter implements ledger.ReadTx.
func (t *txn) TransactionsAfter(ctx context.Context, after int64, limit int) ([]ledger.KeyedTransaction, error) {
	rows, err := t.query(ctx, stmtTransactionsAfter, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: read transactions after %d: %w", after, err)
	}
	defer rows.Close()
	out := []ledger.KeyedTransaction{}
	var counts []int64
	for rows.Next() {
		var kt ledger.KeyedTransaction
		var tid, kind string
		var created, first, count int64
		if err := rows.Scan(&tid, &kind, &kt.Amount, &kt.Currency, &kt.Reference, &kt.Principal, &kt.OnBehalfOf,
			&created, &first, &count, &kt.IdempotencyKey); err != nil {
			return nil, fmt.Errorf("sqlitestore: read transactions after %d: %w", after, err)
		}
		kt.ID, kt.Kind, kt.CreatedAt = ledger.TransactionID(tid), ledger.Kind(kind), fromMicros(created)
		out = append(out, kt)
		counts = append(counts, first, count)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: read transactions after %d: %w", after, err)
	}
	rows.Close()
	if len(out) == 0 {
		return out, nil
	}
	from, to := counts[0], counts[len(counts)-2]+counts[len(counts)-1]-1
	erows, err := t.query(ctx, stmtTransactionEntries, from, to)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: read entries %d to %d: %w", from, to, err)
	}
	defer erows.Close()
	var entries []ledger.Entry
	for erows.Next() {
		e, err := scanEntry(erows)
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: read entries %d to %d: %w", from, to, err)
		}
		entries = append(entries, e)
	}
	if err := erows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: read entries %d to %d: %w", from, to, err)
	}
	return ledger.AttachEntries(out, entries)
}

// Idempotency implements ledger.ReadTx.
func (t *txn) Idempotency(ctx context.Context, principal, key string) (ledger.IdempotencyRecord, bool, error) {
	s, err := t.stmt(ctx, stmtIdempotency)
	if err != nil {
		return ledger.IdempotencyRecord{}, false, err
	}
	r, err := scanIdempotency(s.QueryRowContext(ctx, principal, key))
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.IdempotencyRecord{}, false, nil
	}
	if err != nil {
		return ledger.IdempotencyRecord{}, false, fmt.Errorf("sqlitestore: read idempotency record: %w", err)
	}
	return r, true, nil
}

// scanIdempotency scans a row of the idempotency table, as stmtIdempotency and the
// sized readRecords select it.
func scanIdempotency(row scanner) (ledger.IdempotencyRecord, error) {
	var r ledger.IdempotencyRecord
	var txID string
	var created int64
	if err := row.Scan(&r.Principal, &r.Key, &r.Fingerprint, &txID,
		&r.RefusalCode, &r.RefusalField, &r.RefusalDetail, &created); err != nil {
		return ledger.IdempotencyRecord{}, err
	}
	r.TransactionID = ledger.TransactionID(txID)
	r.CreatedAt = fromMicros(created)
	return r, nil
}
