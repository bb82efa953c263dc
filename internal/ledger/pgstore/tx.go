package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"mtlsbank/internal/ledger"
)

const accountColumns = `id, owner, currency, balance, display_name, system, created_at`

const entryColumns = `sequence, transaction_id, account_id, amount, currency, balance_after, created_at`

// uniqueViolation is PostgreSQL's SQLSTATE for a violated unique constraint.
const uniqueViolation = "23505"

// txn implements ledger.Tx over a pgx transaction. pgx prepares and caches
// each statement per connection on its first use.
type txn struct {
	tx    pgx.Tx
	write bool
	// wrote is set once the transaction created entries, shared with its
	// savepoints (one that rolls back leaves it set: a spurious wake-up is harmless).
	wrote *bool
	depth int
}

var _ ledger.Tx = (*txn)(nil)

// errReadOnly refuses a write in a View before it reaches the server.
var errReadOnly = errors.New("pgstore: write in a read transaction")

func (t *txn) exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if !t.write {
		return pgconn.CommandTag{}, errReadOnly
	}
	tag, err := t.tx.Exec(ctx, sql, args...)
	return tag, mapError(err)
}

// mapError turns PostgreSQL's uniqueness violations into
// ledger.ErrDuplicateKey, so that no SQLSTATE is seen above this package.
func mapError(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == uniqueViolation {
		return fmt.Errorf("%w: %v", ledger.ErrDuplicateKey, err)
	}
	return err
}

func scanAccount(row pgx.Row) (ledger.Account, error) {
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

func scanEntry(row pgx.Row) (ledger.Entry, error) {
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

// queryAccount reads one account; in a write transaction it locks the row
// until the transaction ends, because the ledger writes the balance it read.
func (t *txn) queryAccount(ctx context.Context, where string, arg any) (ledger.Account, bool, error) {
	q := `SELECT ` + accountColumns + ` FROM accounts WHERE ` + where
	if t.write {
		q += ` FOR UPDATE`
	}
	a, err := scanAccount(t.tx.QueryRow(ctx, q, arg))
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.Account{}, false, nil
	}
	if err != nil {
		return ledger.Account{}, false, fmt.Errorf("pgstore: read account: %w", err)
	}
	return a, true, nil
}

// Account implements ledger.ReadTx.
func (t *txn) Account(ctx context.Context, id ledger.AccountID) (ledger.Account, bool, error) {
	return t.queryAccount(ctx, `id = $1`, string(id))
}

// SystemAccount implements ledger.ReadTx.
func (t *txn) SystemAccount(ctx context.Context, currency string) (ledger.Account, bool, error) {
	return t.queryAccount(ctx, `system AND currency = $1`, currency)
}

// Accounts implements ledger.ReadTx.
func (t *txn) Accounts(ctx context.Context, q ledger.AccountQuery) ([]ledger.Account, error) {
	if q.Limit < 1 {
		return nil, fmt.Errorf("pgstore: list accounts: limit %d is not positive", q.Limit)
	}
	var rows pgx.Rows
	var err error
	switch {
	case q.Owner != "" && q.System:
		return nil, nil // system accounts have no owner
	case q.Owner != "":
		rows, err = t.tx.Query(ctx, `SELECT `+accountColumns+` FROM accounts
			WHERE owner = $1 AND NOT system AND id > $2 ORDER BY id LIMIT $3`, q.Owner, string(q.After), q.Limit)
	default:
		rows, err = t.tx.Query(ctx, `SELECT `+accountColumns+` FROM accounts
			WHERE system = $1 AND id > $2 ORDER BY id LIMIT $3`, q.System, string(q.After), q.Limit)
	}
	if err != nil {
		return nil, fmt.Errorf("pgstore: list accounts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ledger.Account, error) { return scanAccount(r) })
	if err != nil {
		return nil, fmt.Errorf("pgstore: list accounts: %w", err)
	}
	return out, nil
}

// Transaction implements ledger.ReadTx.
func (t *txn) Transaction(ctx context.Context, id ledger.TransactionID) (ledger.Transaction, bool, error) {
	var tr ledger.Transaction
	var tid, kind string
	var created, first int64
	var count int32
	err := t.tx.QueryRow(ctx, `SELECT id, kind, amount, currency, reference, principal, on_behalf_of, created_at,
		first_sequence, entry_count FROM transactions WHERE id = $1`, string(id)).Scan(&tid, &kind, &tr.Amount, &tr.Currency,
		&tr.Reference, &tr.Principal, &tr.OnBehalfOf, &created, &first, &count)
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.Transaction{}, false, nil
	}
	if err != nil {
		return ledger.Transaction{}, false, fmt.Errorf("pgstore: read transaction %s: %w", id, err)
	}
	tr.ID = ledger.TransactionID(tid)
	tr.Kind = ledger.Kind(kind)
	tr.CreatedAt = fromMicros(created)

	rows, err := t.tx.Query(ctx, `SELECT `+entryColumns+` FROM entries
		WHERE sequence BETWEEN $1 AND $2 ORDER BY sequence`, first, first+int64(count)-1)
	if err != nil {
		return ledger.Transaction{}, false, fmt.Errorf("pgstore: read entries of %s: %w", id, err)
	}
	tr.Entries, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ledger.Entry, error) { return scanEntry(r) })
	if err != nil {
		return ledger.Transaction{}, false, fmt.Errorf("pgstore: read entries of %s: %w", id, err)
	}
	if len(tr.Entries) != int(count) {
		return ledger.Transaction{}, false, fmt.Errorf("pgstore: transaction %s has %d of its %d entries", id, len(tr.Entries), count)
	}
	for _, e := range tr.Entries {
		if e.TransactionID != id {
			return ledger.Transaction{}, false, fmt.Errorf("pgstore: entry %d of transaction %s belongs to %s", e.Sequence, id, e.TransactionID)
		}
	}
	return tr, true, nil
}

// EntriesAfter implements ledger.ReadTx.
func (t *txn) EntriesAfter(ctx context.Context, after int64, limit int) ([]ledger.Entry, error) {
	rows, err := t.tx.Query(ctx, `SELECT `+entryColumns+` FROM entries WHERE sequence > $1 ORDER BY sequence LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("pgstore: read entries after %d: %w", after, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ledger.Entry, error) { return scanEntry(r) })
	if err != nil {
		return nil, fmt.Errorf("pgstore: read entries after %d: %w", after, err)
	}
	if out == nil {
		out = []ledger.Entry{}
	}
	return out, nil
}

// TransactionsAfter implements ledger.ReadTx. A transaction's first entry is
// the one with its first_sequence: the entries' primary key finds the page,
// the transactions' their rows.
func (t *txn) TransactionsAfter(ctx context.Context, after int64, limit int) ([]ledger.KeyedTransaction, error) {
	rows, err := t.tx.Query(ctx, `SELECT t.id, t.kind, t.amount, t.currency, t.reference, t.principal, t.on_behalf_of,
		t.created_at, t.first_sequence, t.entry_count, COALESCE(i.idem_key, '')
		FROM entries e JOIN transactions t ON t.id = e.transaction_id AND t.first_sequence = e.sequence
		LEFT JOIN idempotency i ON i.transaction_id = t.id
		WHERE e.sequence > $1 ORDER BY e.sequence LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("pgstore: read transactions after %d: %w", after, err)
	}
	var spans [][2]int64
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ledger.KeyedTransaction, error) {
		var kt ledger.KeyedTransaction
		var tid, kind string
		var created, first int64
		var count int32
		err := r.Scan(&tid, &kind, &kt.Amount, &kt.Currency, &kt.Reference, &kt.Principal, &kt.OnBehalfOf,
			&created, &first, &count, &kt.IdempotencyKey)
		kt.ID, kt.Kind, kt.CreatedAt = ledger.TransactionID(tid), ledger.Kind(kind), fromMicros(created)
		spans = append(spans, [2]int64{first, first + int64(count) - 1})
		return kt, err
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: read transactions after %d: %w", after, err)
	}
	if len(out) == 0 {
		return []ledger.KeyedTransaction{}, nil
	}
	from, to := spans[0][0], spans[len(spans)-1][1]
	erows, err := t.tx.Query(ctx, `SELECT `+entryColumns+` FROM entries WHERE sequence BETWEEN $1 AND $2 ORDER BY sequence`, from, to)
	if err != nil {
		return nil, fmt.Errorf("pgstore: read entries %d to %d: %w", from, to, err)
	}
	entries, err := pgx.CollectRows(erows, func(r pgx.CollectableRow) (ledger.Entry, error) { return scanEntry(r) })
	if err != nil {
		return nil, fmt.Errorf("pgstore: read entries %d to %d: %w", from, to, err)
	}
	return ledger.AttachEntries(out, entries)
}

// Idempotency implements ledger.ReadTx.
func (t *txn) Idempotency(ctx context.Context, principal, key string) (ledger.IdempotencyRecord, bool, error) {
	r := ledger.IdempotencyRecord{Principal: principal, Key: key}
	var txID string
	var created int64
	err := t.tx.QueryRow(ctx, `SELECT fingerprint, COALESCE(transaction_id, ''), refusal_code, refusal_field,
		refusal_detail, created_at FROM idempotency WHERE principal = $1 AND idem_key = $2`, principal, key).Scan(
		&r.Fingerprint, &txID, &r.RefusalCode, &r.RefusalField, &r.RefusalDetail, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.IdempotencyRecord{}, false, nil
	}
	if err != nil {
		return ledger.IdempotencyRecord{}, false, fmt.Errorf("pgstore: read idempotency record: %w", err)
	}
	r.TransactionID = ledger.TransactionID(txID)
	r.CreatedAt = fromMicros(created)
	return r, true, nil
}

// CreateAccount implements ledger.Tx.
func (t *txn) CreateAccount(ctx context.Context, a ledger.Account) error {
	if _, err := t.exec(ctx, `INSERT INTO accounts (`+accountColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		string(a.ID), a.Owner, a.Currency, a.Balance, a.DisplayName, a.System, a.CreatedAt.UnixMicro()); err != nil {
		return fmt.Errorf("pgstore: insert account %s: %w", a.ID, err)
	}
	return nil
}

// SetBalance implements ledger.Tx.
func (t *txn) SetBalance(ctx context.Context, id ledger.AccountID, balance int64) error {
	tag, err := t.exec(ctx, `UPDATE accounts SET balance = $1 WHERE id = $2`, balance, string(id))
	if err != nil {
		return fmt.Errorf("pgstore: set balance of %s: %w", id, err)
	}
	if n := tag.RowsAffected(); n != 1 {
		return fmt.Errorf("pgstore: set balance of %s: %d rows changed", id, n)
	}
	return nil
}

// AllocateSequences implements ledger.Tx with the entry_sequence counter row,
// which Update locked first: the next writer's allocation waits for this
// transaction to end, so sequences commit in order and a rollback returns them.
func (t *txn) AllocateSequences(ctx context.Context, n int) (int64, error) {
	if n < 1 {
		return 0, fmt.Errorf("pgstore: allocate %d sequences", n)
	}
	if !t.write {
		return 0, errReadOnly
	}
	var last int64
	if err := t.tx.QueryRow(ctx, `UPDATE entry_sequence SET last_sequence = last_sequence + $1
		WHERE id = 1 RETURNING last_sequence`, n).Scan(&last); err != nil {
		return 0, fmt.Errorf("pgstore: allocate %d sequences: %w", n, err)
	}
	return last - int64(n) + 1, nil
}

// CreateTransaction implements ledger.Tx. The entries must have consecutive
// sequences; that is checked before anything is written, since a failed
// statement aborts a PostgreSQL transaction.
func (t *txn) CreateTransaction(ctx context.Context, tr ledger.Transaction) error {
	if len(tr.Entries) == 0 {
		return fmt.Errorf("pgstore: transaction %s has no entries", tr.ID)
	}
	first := tr.Entries[0].Sequence
	for i, e := range tr.Entries {
		if e.Sequence != first+int64(i) {
			return fmt.Errorf("pgstore: transaction %s: entry sequences are not consecutive", tr.ID)
		}
	}
	if _, err := t.exec(ctx, `INSERT INTO transactions (id, kind, amount, currency, reference, principal,
		on_behalf_of, created_at, first_sequence, entry_count) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		string(tr.ID), string(tr.Kind), tr.Amount, tr.Currency, tr.Reference, tr.Principal, tr.OnBehalfOf,
		tr.CreatedAt.UnixMicro(), first, len(tr.Entries)); err != nil {
		return fmt.Errorf("pgstore: insert transaction %s: %w", tr.ID, err)
	}
	for _, e := range tr.Entries {
		if _, err := t.exec(ctx, `INSERT INTO entries (`+entryColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			e.Sequence, string(e.TransactionID), string(e.AccountID), e.Amount, e.Currency, e.BalanceAfter,
			e.CreatedAt.UnixMicro()); err != nil {
			return fmt.Errorf("pgstore: insert entry %d: %w", e.Sequence, err)
		}
	}
	*t.wrote = true
	return nil
}

// CreateIdempotency implements ledger.Tx.
func (t *txn) CreateIdempotency(ctx context.Context, r ledger.IdempotencyRecord) error {
	var txID *string // NULL for a refusal
	if r.TransactionID != "" {
		s := string(r.TransactionID)
		txID = &s
	}
	if _, err := t.exec(ctx, `INSERT INTO idempotency (principal, idem_key, fingerprint, transaction_id,
		refusal_code, refusal_field, refusal_detail, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		r.Principal, r.Key, r.Fingerprint, txID, r.RefusalCode, r.RefusalField, r.RefusalDetail,
		r.CreatedAt.UnixMicro()); err != nil {
		return fmt.Errorf("pgstore: insert idempotency record: %w", err)
	}
	return nil
}

// Savepoint implements ledger.Tx. After a failed statement PostgreSQL refuses
// every statement of the transaction until ROLLBACK TO, which is why the
// ledger runs each request, and each insert that may collide, in one.
func (t *txn) Savepoint(ctx context.Context, fn func(ledger.Tx) error) error {
	inner := &txn{tx: t.tx, write: t.write, wrote: t.wrote, depth: t.depth + 1}
	return ledger.RunSavepoint(ctx, func(ctx context.Context, stmt string) error {
		_, err := t.tx.Exec(ctx, stmt)
		return err
	}, fmt.Sprintf("sp%d", t.depth+1), func() error { return fn(inner) })
}
