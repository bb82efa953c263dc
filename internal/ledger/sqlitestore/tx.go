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
	stmtInsertTransaction
	stmtInsertEntry
	stmtInsertIdempotency
	stmtSavepoint
	stmtRollbackSavepoint
	stmtReleaseSavepoint
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
		return `SELECT fingerprint, COALESCE(transaction_id, ''), refusal_code, refusal_field, refusal_detail, created_at
			FROM idempotency WHERE principal = ? AND idem_key = ?`, false
	case stmtInsertAccount:
		return `INSERT INTO accounts (` + accountColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?)`, true
	case stmtSetBalance:
		return `UPDATE accounts SET balance = ? WHERE id = ?`, true
	// Only a write transaction reads the counter (AllocateSequences): a read
	// transaction has no statement to, and so cannot allocate.
	case stmtReadSequence:
		return `SELECT last_sequence FROM entry_sequence WHERE id = 1`, true
	case stmtWriteSequence:
		return `UPDATE entry_sequence SET last_sequence = ? WHERE id = 1`, true
	case stmtInsertTransaction:
		return `INSERT INTO transactions (id, kind, amount, currency, reference, principal, on_behalf_of, created_at,
			first_sequence, entry_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, true
	case stmtInsertEntry:
		return `INSERT INTO entries (` + entryColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?)`, true
	case stmtInsertIdempotency:
		return `INSERT INTO idempotency (principal, idem_key, fingerprint, transaction_id,
			refusal_code, refusal_field, refusal_detail, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, true
	// Every savepoint has the same name, so that these three statements serve
	// nested ones too: savepoints nest strictly (Savepoint runs fn inside), and
	// ROLLBACK TO and RELEASE act on the most recent savepoint of the name, the
	// innermost.
	case stmtSavepoint:
		return `SAVEPOINT sp`, true
	case stmtRollbackSavepoint:
		return `ROLLBACK TO SAVEPOINT sp`, true
	case stmtReleaseSavepoint:
		return `RELEASE SAVEPOINT sp`, true
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

// txn implements ledger.Tx over a database/sql transaction. Its savepoints
// share it: they run fn with the same txn.
type txn struct {
	tx    *sql.Tx
	stmts *statements
	cache *stmtCache
	seq   sequences
	// accounts are the account rows a write transaction has read or written, as
	// it has them now, and systems the ids of the system accounts among them:
	// the moves of a batch mostly touch the same few accounts, and reading one
	// again cost a sixth of a move. They stay right because the
	// transaction holds SQLite's write lock (no other writer changes a row
	// meanwhile) and notes its own writes; a rolled-back savepoint empties them
	// (Savepoint). Nil in a read transaction, which reads an account once.
	accounts map[ledger.AccountID]ledger.Account
	systems  map[string]ledger.AccountID
}

// sequences are the entry sequences a write transaction has allocated, kept in
// memory and written to the counter row once, at the commit (Store.Update):
// an UPDATE of the row per move cost a tenth of the move's CPU. The counter
// read at the first allocation stays right to the end because the
// transaction holds SQLite's write lock from its BEGIN (IMMEDIATE): no other
// writer, of this process or another, allocates until it commits, so
// sequences commit in order and without gaps.
type sequences struct {
	// read: counter is the committed counter, read in this transaction.
	read    bool
	counter int64
	// taken is how many sequences after counter the transaction has handed
	// out, those of rolled-back savepoints excluded: a rolled-back savepoint
	// (Savepoint) sets it back, and a rolled-back transaction never writes it.
	taken int64
}

var _ ledger.Tx = (*txn)(nil)

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

// Account implements ledger.ReadTx: a row the write transaction has, or read.
func (t *txn) Account(ctx context.Context, id ledger.AccountID) (ledger.Account, bool, error) {
	if a, ok := t.accounts[id]; ok {
		return a, true, nil
	}
	a, found, err := t.queryAccount(ctx, stmtAccount, string(id))
	if found {
		t.noteAccount(a)
	}
	return a, found, err
}

// SystemAccount implements ledger.ReadTx like Account.
func (t *txn) SystemAccount(ctx context.Context, currency string) (ledger.Account, bool, error) {
	if id, ok := t.systems[currency]; ok {
		return t.accounts[id], true, nil
	}
	a, found, err := t.queryAccount(ctx, stmtSystemAccount, currency)
	if found {
		t.noteAccount(a)
	}
	return a, found, err
}

// noteAccount keeps a, as the write transaction now has it, for its next reads.
func (t *txn) noteAccount(a ledger.Account) {
	if t.accounts == nil {
		return // a read transaction
	}
	t.accounts[a.ID] = a
	if a.System {
		t.systems[a.Currency] = a.ID
	}
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
	r := ledger.IdempotencyRecord{Principal: principal, Key: key}
	var txID string
	var created int64
	err = s.QueryRowContext(ctx, principal, key).Scan(&r.Fingerprint, &txID,
		&r.RefusalCode, &r.RefusalField, &r.RefusalDetail, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.IdempotencyRecord{}, false, nil
	}
	if err != nil {
		return ledger.IdempotencyRecord{}, false, fmt.Errorf("sqlitestore: read idempotency record: %w", err)
	}
	r.TransactionID = ledger.TransactionID(txID)
	r.CreatedAt = fromMicros(created)
	return r, true, nil
}

// CreateAccount implements ledger.Tx.
func (t *txn) CreateAccount(ctx context.Context, a ledger.Account) error {
	if _, err := t.exec(ctx, stmtInsertAccount, string(a.ID), a.Owner, a.Currency, a.Balance,
		a.DisplayName, a.System, a.CreatedAt.UnixMicro()); err != nil {
		return fmt.Errorf("sqlitestore: insert account %s: %w", a.ID, err)
	}
	t.noteAccount(a)
	return nil
}

// SetBalance implements ledger.Tx.
func (t *txn) SetBalance(ctx context.Context, id ledger.AccountID, balance int64) error {
	r, err := t.exec(ctx, stmtSetBalance, balance, string(id))
	if err != nil {
		return fmt.Errorf("sqlitestore: set balance of %s: %w", id, err)
	}
	if n, err := r.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("sqlitestore: set balance of %s: %d rows changed (%v)", id, n, err)
	}
	if a, ok := t.accounts[id]; ok {
		a.Balance = balance
		t.accounts[id] = a
	}
	return nil
}

// AllocateSequences implements ledger.Tx from the entry_sequence counter row,
// read once per transaction and written at its commit (see sequences).
func (t *txn) AllocateSequences(ctx context.Context, n int) (int64, error) {
	if n < 1 {
		return 0, fmt.Errorf("sqlitestore: allocate %d sequences", n)
	}
	if !t.seq.read {
		s, err := t.stmt(ctx, stmtReadSequence)
		if err != nil {
			return 0, err
		}
		if err := s.QueryRowContext(ctx).Scan(&t.seq.counter); err != nil {
			return 0, fmt.Errorf("sqlitestore: allocate %d sequences: read counter: %w", n, err)
		}
		t.seq.read = true
	}
	first := t.seq.counter + t.seq.taken + 1
	t.seq.taken += int64(n)
	return first, nil
}

// writeSequences writes the counter past the sequences the transaction took,
// if it took any; Update calls it just before the commit.
func (t *txn) writeSequences(ctx context.Context) error {
	if t.seq.taken == 0 {
		return nil
	}
	last := t.seq.counter + t.seq.taken
	r, err := t.exec(ctx, stmtWriteSequence, last)
	if err != nil {
		return fmt.Errorf("sqlitestore: write sequence counter %d: %w", last, err)
	}
	if n, err := r.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("sqlitestore: write sequence counter %d: %d rows changed (%v)", last, n, err)
	}
	return nil
}

// CreateTransaction implements ledger.Tx. The entries must have consecutive
// sequences.
func (t *txn) CreateTransaction(ctx context.Context, tr ledger.Transaction) error {
	if len(tr.Entries) == 0 {
		return fmt.Errorf("sqlitestore: transaction %s has no entries", tr.ID)
	}
	first := tr.Entries[0].Sequence
	for i, e := range tr.Entries {
		if e.Sequence != first+int64(i) {
			return fmt.Errorf("sqlitestore: transaction %s: entry sequences are not consecutive", tr.ID)
		}
	}
	if _, err := t.exec(ctx, stmtInsertTransaction, string(tr.ID), string(tr.Kind), tr.Amount, tr.Currency,
		tr.Reference, tr.Principal, tr.OnBehalfOf, tr.CreatedAt.UnixMicro(), first, len(tr.Entries)); err != nil {
		return fmt.Errorf("sqlitestore: insert transaction %s: %w", tr.ID, err)
	}
	for _, e := range tr.Entries {
		if _, err := t.exec(ctx, stmtInsertEntry, e.Sequence, string(e.TransactionID), string(e.AccountID),
			e.Amount, e.Currency, e.BalanceAfter, e.CreatedAt.UnixMicro()); err != nil {
			return fmt.Errorf("sqlitestore: insert entry %d: %w", e.Sequence, err)
		}
	}
	return nil
}

// CreateIdempotency implements ledger.Tx.
func (t *txn) CreateIdempotency(ctx context.Context, r ledger.IdempotencyRecord) error {
	var txID any // NULL for a refusal
	if r.TransactionID != "" {
		txID = string(r.TransactionID)
	}
	if _, err := t.exec(ctx, stmtInsertIdempotency, r.Principal, r.Key, r.Fingerprint, txID,
		r.RefusalCode, r.RefusalField, r.RefusalDetail, r.CreatedAt.UnixMicro()); err != nil {
		return fmt.Errorf("sqlitestore: insert idempotency record: %w", err)
	}
	return nil
}

// Savepoint implements ledger.Tx with prepared statements: a savepoint runs
// for every request of a batch, and parsing its three statements each time
// cost about an eighth of the move they wrap.
func (t *txn) Savepoint(ctx context.Context, fn func(ledger.Tx) error) error {
	taken := t.seq.taken
	err := ledger.RunSavepoint(ctx, t.execSavepoint, func() error { return fn(t) })
	if err != nil {
		// The savepoint's rows were rolled back (or the transaction is broken
		// and will be): the sequences it took are handed out again, and the
		// accounts are read afresh.
		t.seq.taken = taken
		clear(t.accounts)
		clear(t.systems)
	}
	return err
}

// execSavepoint runs the prepared statement of one of ledger.RunSavepoint's steps.
func (t *txn) execSavepoint(ctx context.Context, step ledger.SavepointStep) error {
	var id stmtID
	switch step {
	case ledger.SavepointBegin:
		id = stmtSavepoint
	case ledger.SavepointRollback:
		id = stmtRollbackSavepoint
	case ledger.SavepointRelease:
		id = stmtReleaseSavepoint
	default:
		return fmt.Errorf("sqlitestore: unknown savepoint step %d", step)
	}
	_, err := t.exec(ctx, id)
	return err
}
