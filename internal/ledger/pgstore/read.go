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

// querier runs statements: the transaction of a View, or the connection an
// Update holds.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// reader implements ledger.ReadTx with a statement per read. pgx prepares and
// caches each statement per connection on its first use. A View's reads are
// all a reader's; an Update's write transaction (writeset.Tx) answers what it can from memory and
// reads the rest through one.
type reader struct {
	q querier
	// lock: the rows of accounts read are locked until the transaction ends.
	lock bool
}

var _ ledger.ReadTx = reader{}

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

// The account reads; a write transaction's lock the row until it ends, because
// the ledger writes the balance it read.
const (
	accountByID       = `SELECT ` + accountColumns + ` FROM accounts WHERE id = $1`
	systemAccount     = `SELECT ` + accountColumns + ` FROM accounts WHERE system AND currency = $1`
	forUpdate         = ` FOR UPDATE`
	idempotencyRecord = `SELECT fingerprint, COALESCE(transaction_id, ''), refusal_code, refusal_field,
		refusal_detail, created_at FROM idempotency WHERE principal = $1 AND idem_key = $2`
)

// queryAccount reads one account with query (accountByID or systemAccount).
func (r reader) queryAccount(ctx context.Context, query string, arg any) (ledger.Account, bool, error) {
	if r.lock {
		query += forUpdate
	}
	a, err := scanAccount(r.q.QueryRow(ctx, query, arg))
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.Account{}, false, nil
	}
	if err != nil {
		return ledger.Account{}, false, fmt.Errorf("pgstore: read account: %w", err)
	}
	return a, true, nil
}

// Account implements ledger.ReadTx.
func (r reader) Account(ctx context.Context, id ledger.AccountID) (ledger.Account, bool, error) {
	return r.queryAccount(ctx, accountByID, string(id))
}

// SystemAccount implements ledger.ReadTx.
func (r reader) SystemAccount(ctx context.Context, currency string) (ledger.Account, bool, error) {
	return r.queryAccount(ctx, systemAccount, currency)
}

// Accounts implements ledger.ReadTx.
func (r reader) Accounts(ctx context.Context, q ledger.AccountQuery) ([]ledger.Account, error) {
	if q.Limit < 1 {
		return nil, fmt.Errorf("pgstore: list accounts: limit %d is not positive", q.Limit)
	}
	var rows pgx.Rows
	var err error
	switch {
	case q.Owner != "" && q.System:
		return nil, nil // system accounts have no owner
	case q.Owner != "":
		rows, err = r.q.Query(ctx, `SELECT `+accountColumns+` FROM accounts
			WHERE owner = $1 AND NOT system AND id > $2 ORDER BY id LIMIT $3`, q.Owner, string(q.After), q.Limit)
	default:
		rows, err = r.q.Query(ctx, `SELECT `+accountColumns+` FROM accounts
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
func (r reader) Transaction(ctx context.Context, id ledger.TransactionID) (ledger.Transaction, bool, error) {
	var tr ledger.Transaction
	var tid, kind string
	var created, first int64
	var count int32
	err := r.q.QueryRow(ctx, `SELECT id, kind, amount, currency, reference, principal, on_behalf_of, created_at,
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

	rows, err := r.q.Query(ctx, `SELECT `+entryColumns+` FROM entries
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
func (r reader) EntriesAfter(ctx context.Context, after int64, limit int) ([]ledger.Entry, error) {
	rows, err := r.q.Query(ctx, `SELECT `+entryColumns+` FROM entries WHERE sequence > $1 ORDER BY sequence LIMIT $2`, after, limit)
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
func (r reader) TransactionsAfter(ctx context.Context, after int64, limit int) ([]ledger.KeyedTransaction, error) {
	rows, err := r.q.Query(ctx, `SELECT t.id, t.kind, t.amount, t.currency, t.reference, t.principal, t.on_behalf_of,
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
	erows, err := r.q.Query(ctx, `SELECT `+entryColumns+` FROM entries WHERE sequence BETWEEN $1 AND $2 ORDER BY sequence`, from, to)
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
func (r reader) Idempotency(ctx context.Context, principal, key string) (ledger.IdempotencyRecord, bool, error) {
	rec, found, err := scanIdempotency(r.q.QueryRow(ctx, idempotencyRecord, principal, key))
	rec.Principal, rec.Key = principal, key
	return rec, found, err
}

// scanIdempotency scans the row of idempotencyRecord (without the principal
// and key, which the caller knows).
func scanIdempotency(row pgx.Row) (ledger.IdempotencyRecord, bool, error) {
	var rec ledger.IdempotencyRecord
	var txID string
	var created int64
	err := row.Scan(&rec.Fingerprint, &txID, &rec.RefusalCode, &rec.RefusalField, &rec.RefusalDetail, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.IdempotencyRecord{}, false, nil
	}
	if err != nil {
		return ledger.IdempotencyRecord{}, false, fmt.Errorf("pgstore: read idempotency record: %w", err)
	}
	rec.TransactionID = ledger.TransactionID(txID)
	rec.CreatedAt = fromMicros(created)
	return rec, true, nil
}

// errSecondRead refuses a second read in a ViewRead, which would not see the
// first one's snapshot.
var errSecondRead = errors.New("pgstore: a second read in ViewRead")

// oneRead is the ledger.ReadTx of a ViewRead: one read, then errSecondRead.
type oneRead struct {
	r    reader
	done bool
}

func (o *oneRead) once() error {
	if o.done {
		return errSecondRead
	}
	o.done = true
	return nil
}

func (o *oneRead) Account(ctx context.Context, id ledger.AccountID) (ledger.Account, bool, error) {
	if err := o.once(); err != nil {
		return ledger.Account{}, false, err
	}
	return o.r.Account(ctx, id)
}

func (o *oneRead) SystemAccount(ctx context.Context, currency string) (ledger.Account, bool, error) {
	if err := o.once(); err != nil {
		return ledger.Account{}, false, err
	}
	return o.r.SystemAccount(ctx, currency)
}

func (o *oneRead) Accounts(ctx context.Context, q ledger.AccountQuery) ([]ledger.Account, error) {
	if err := o.once(); err != nil {
		return nil, err
	}
	return o.r.Accounts(ctx, q)
}

func (o *oneRead) Transaction(ctx context.Context, id ledger.TransactionID) (ledger.Transaction, bool, error) {
	if err := o.once(); err != nil {
		return ledger.Transaction{}, false, err
	}
	return o.r.Transaction(ctx, id)
}

func (o *oneRead) EntriesAfter(ctx context.Context, after int64, limit int) ([]ledger.Entry, error) {
	if err := o.once(); err != nil {
		return nil, err
	}
	return o.r.EntriesAfter(ctx, after, limit)
}

func (o *oneRead) TransactionsAfter(ctx context.Context, after int64, limit int) ([]ledger.KeyedTransaction, error) {
	if err := o.once(); err != nil {
		return nil, err
	}
	return o.r.TransactionsAfter(ctx, after, limit)
}

func (o *oneRead) Idempotency(ctx context.Context, principal, key string) (ledger.IdempotencyRecord, bool, error) {
	if err := o.once(); err != nil {
		return ledger.IdempotencyRecord{}, false, err
	}
	return o.r.Idempotency(ctx, principal, key)
}
