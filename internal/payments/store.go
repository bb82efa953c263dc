package payments

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" database/sql driver
)

// Sentinel errors of the store.
var (
	// ErrNotFound means no payment has the id.
	ErrNotFound = errors.New("payment not found")
	// ErrSchemaTooNew means the database was written by a newer version of the service.
	ErrSchemaTooNew = errors.New("database schema is newer than this program")
)

// migrations are applied in order, each in its own transaction, when a store is
// opened; migrations[i] brings the schema to version i+1. Append only: never edit
// one that has shipped.
var migrations = [...]string{
	`CREATE TABLE payments (
		seq             INTEGER PRIMARY KEY AUTOINCREMENT,
		id              TEXT    NOT NULL UNIQUE,
		created_by      TEXT    NOT NULL,
		idempotency_key TEXT    NOT NULL,
		fingerprint     TEXT    NOT NULL,
		status          TEXT    NOT NULL CHECK (status IN ('PENDING', 'COMPLETED', 'FAILED')),
		from_account_id TEXT    NOT NULL,
		to_account_id   TEXT    NOT NULL,
		currency        TEXT    NOT NULL,
		minor_units     INTEGER NOT NULL CHECK (minor_units > 0),
		memo            TEXT    NOT NULL DEFAULT '',
		transaction_id  TEXT    NOT NULL DEFAULT '',
		failure_code    TEXT    NOT NULL DEFAULT '',
		failure_reason  TEXT    NOT NULL DEFAULT '',
		transfer_key    TEXT    NOT NULL UNIQUE,
		create_time     INTEGER NOT NULL,
		update_time     INTEGER NOT NULL,
		UNIQUE (created_by, idempotency_key),
		CHECK ((status = 'COMPLETED') = (transaction_id <> '')),
		CHECK ((status = 'FAILED') = (failure_code <> ''))
	);
	CREATE INDEX payments_by_creator ON payments (created_by, seq);
	CREATE INDEX payments_pending ON payments (seq) WHERE status = 'PENDING';`,
}

// Store keeps payment orders in a SQLite database. It is safe for concurrent use.
type Store struct {
	db  *sql.DB
	now func() time.Time
}

// StoreOption configures OpenStore.
type StoreOption func(*Store)

// WithStoreClock makes the store read the time from now (default time.Now).
func WithStoreClock(now func() time.Time) StoreOption {
	return func(s *Store) { s.now = now }
}

// OpenStore opens (creating it and its directory if needed) the SQLite database at
// path and brings its schema up to date. The database runs in WAL mode with
// synchronous=FULL, so a payment acknowledged as recorded survives a crash.
func OpenStore(ctx context.Context, path string, opts ...StoreOption) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open payments database %q: path must be non-empty and contain no '?' or '#'", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open payments database %s: %w", path, err)
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate") // writers take the lock up front: no upgrade deadlocks
	db, err := sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open payments database %s: %w", path, err)
	}
	s := &Store{db: db, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	if err := s.checkPragmas(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open payments database %s: %w", path, err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open payments database %s: %w", path, err)
	}
	return s, nil
}

// Ping checks that the database answers a query (a readiness check).
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.db.QueryRowContext(ctx, `SELECT 1 FROM schema_migrations LIMIT 1`).Scan(&one); err != nil {
		return fmt.Errorf("payments database: %w", err)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error {
	return s.db.Close()
}

// checkPragmas proves that the connection settings took effect: a driver that
// ignored them would silently lose durability.
func (s *Store) checkPragmas(ctx context.Context) error {
	for _, c := range []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "1"},
	} {
		var got string
		if err := s.db.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got); err != nil {
			return fmt.Errorf("read pragma %s: %w", c.pragma, err)
		}
		if !strings.EqualFold(got, c.want) {
			return fmt.Errorf("pragma %s is %q, want %q", c.pragma, got, c.want)
		}
	}
	return nil
}

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	for {
		done, err := s.migrateOne(ctx)
		if err != nil || done {
			return err
		}
	}
}

// migrateOne applies the next migration, if any, in one transaction, so that two
// processes opening the same file cannot both apply it.
func (s *Store) migrateOne(ctx context.Context) (done bool, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	var version int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&version); err != nil {
		return false, fmt.Errorf("read schema version: %w", err)
	}
	switch {
	case version > len(migrations):
		return false, fmt.Errorf("%w: version %d, this program knows %d", ErrSchemaTooNew, version, len(migrations))
	case version == len(migrations):
		return true, nil
	}
	if _, err := tx.ExecContext(ctx, migrations[version]); err != nil {
		return false, fmt.Errorf("apply migration %d: %w", version+1, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
		version+1, s.now().UnixNano()); err != nil {
		return false, fmt.Errorf("record migration %d: %w", version+1, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("commit migration %d: %w", version+1, err)
	}
	return false, nil
}

const paymentColumns = `seq, id, created_by, idempotency_key, fingerprint, status,
	from_account_id, to_account_id, currency, minor_units, memo,
	transaction_id, failure_code, failure_reason, transfer_key, create_time, update_time`

type scanner interface{ Scan(dest ...any) error }

func scanPayment(row scanner) (Payment, error) {
	var p Payment
	var created, updated int64
	err := row.Scan(&p.Seq, &p.ID, &p.CreatedBy, &p.IdempotencyKey, &p.Fingerprint, &p.Status,
		&p.FromAccountID, &p.ToAccountID, &p.Currency, &p.MinorUnits, &p.Memo,
		&p.TransactionID, &p.FailureCode, &p.FailureReason, &p.TransferKey, &created, &updated)
	if err != nil {
		return Payment{}, err
	}
	p.CreateTime = time.Unix(0, created).UTC()
	p.UpdateTime = time.Unix(0, updated).UTC()
	return p, nil
}

// Create records p as PENDING, unless its creator already recorded a payment
// under the same idempotency key: then it returns that payment and created is
// false, whatever its content (comparing fingerprints is the caller's business).
// Create assigns Seq, Status and the timestamps; every other field comes from p.
func (s *Store) Create(ctx context.Context, p Payment) (_ Payment, created bool, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Payment{}, false, fmt.Errorf("record payment: %w", err)
	}
	defer tx.Rollback()
	now := s.now().UnixNano()
	res, err := tx.ExecContext(ctx, `INSERT INTO payments (id, created_by, idempotency_key, fingerprint, status,
			from_account_id, to_account_id, currency, minor_units, memo, transfer_key, create_time, update_time)
		VALUES (?, ?, ?, ?, 'PENDING', ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (created_by, idempotency_key) DO NOTHING`,
		p.ID, p.CreatedBy, p.IdempotencyKey, p.Fingerprint,
		p.FromAccountID, p.ToAccountID, p.Currency, p.MinorUnits, p.Memo, p.TransferKey, now, now)
	if err != nil {
		return Payment{}, false, fmt.Errorf("record payment: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return Payment{}, false, fmt.Errorf("record payment: %w", err)
	}
	stored, err := scanPayment(tx.QueryRowContext(ctx,
		`SELECT `+paymentColumns+` FROM payments WHERE created_by = ? AND idempotency_key = ?`,
		p.CreatedBy, p.IdempotencyKey))
	if err != nil {
		return Payment{}, false, fmt.Errorf("record payment: read back: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Payment{}, false, fmt.Errorf("record payment: commit: %w", err)
	}
	return stored, n == 1, nil
}

// Get returns the payment with the id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (Payment, error) {
	p, err := scanPayment(s.db.QueryRowContext(ctx, `SELECT `+paymentColumns+` FROM payments WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Payment{}, fmt.Errorf("get payment %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Payment{}, fmt.Errorf("get payment %q: %w", id, err)
	}
	return p, nil
}

// Query selects payments for List.
type Query struct {
	// CreatedBy, when set, keeps only the payments that SPIFFE ID created.
	CreatedBy string
	// Status, when set, keeps only payments in that status.
	Status Status
	// AfterSeq keeps only payments created after the one with this Seq.
	AfterSeq int64
	// Limit is the most payments returned; it must be positive.
	Limit int
}

// List returns the payments q selects, in creation order.
func (s *Store) List(ctx context.Context, q Query) ([]Payment, error) {
	if q.Limit <= 0 {
		return nil, fmt.Errorf("list payments: limit %d must be positive", q.Limit)
	}
	where := []string{"seq > ?"}
	args := []any{q.AfterSeq}
	if q.CreatedBy != "" {
		where = append(where, "created_by = ?")
		args = append(args, q.CreatedBy)
	}
	if q.Status != "" {
		where = append(where, "status = ?")
		args = append(args, string(q.Status))
	}
	args = append(args, q.Limit)
	rows, err := s.db.QueryContext(ctx, `SELECT `+paymentColumns+` FROM payments WHERE `+
		strings.Join(where, " AND ")+` ORDER BY seq LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("list payments: %w", err)
	}
	defer rows.Close()
	var out []Payment
	for rows.Next() {
		p, err := scanPayment(rows)
		if err != nil {
			return nil, fmt.Errorf("list payments: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list payments: %w", err)
	}
	return out, nil
}

// Complete marks a PENDING payment COMPLETED with the ledger transaction that
// carried it out. It returns the payment as stored afterwards: a payment that was
// no longer PENDING is returned unchanged, so the first outcome recorded wins.
func (s *Store) Complete(ctx context.Context, id, transactionID string) (Payment, error) {
	if transactionID == "" {
		return Payment{}, fmt.Errorf("complete payment %q: empty transaction id", id)
	}
	return s.finish(ctx, id, `status = 'COMPLETED', transaction_id = ?`, transactionID)
}

// Fail marks a PENDING payment FAILED with the gRPC code name the ledger refused
// it with and a reason for people. Like Complete, it never changes a payment that
// is no longer PENDING.
func (s *Store) Fail(ctx context.Context, id, code, reason string) (Payment, error) {
	if code == "" {
		return Payment{}, fmt.Errorf("fail payment %q: empty failure code", id)
	}
	return s.finish(ctx, id, `status = 'FAILED', failure_code = ?, failure_reason = ?`, code, reason)
}

func (s *Store) finish(ctx context.Context, id, set string, args ...any) (Payment, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Payment{}, fmt.Errorf("finish payment %q: %w", id, err)
	}
	defer tx.Rollback()
	args = append(args, s.now().UnixNano(), id)
	if _, err := tx.ExecContext(ctx, `UPDATE payments SET `+set+`, update_time = ?
		WHERE id = ? AND status = 'PENDING'`, args...); err != nil {
		return Payment{}, fmt.Errorf("finish payment %q: %w", id, err)
	}
	p, err := scanPayment(tx.QueryRowContext(ctx, `SELECT `+paymentColumns+` FROM payments WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Payment{}, fmt.Errorf("finish payment %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Payment{}, fmt.Errorf("finish payment %q: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return Payment{}, fmt.Errorf("finish payment %q: commit: %w", id, err)
	}
	return p, nil
}
