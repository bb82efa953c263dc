package pgstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"mtlsbank/internal/migrate"
	"mtlsbank/internal/payments"
	"mtlsbank/internal/pgdb"
)

// migrationFiles are the schema versions of the PostgreSQL store, named
// NNNN_what.sql from 0001 without gaps. A released file is never edited.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// ErrSchemaTooNew means the database was migrated by a newer build.
var ErrSchemaTooNew = pgdb.ErrSchemaTooNew

// ErrSchemaBehind means the database lacks migrations of this build and Open was
// told not to migrate (WithoutMigrations): run Migrate first.
var ErrSchemaBehind = pgdb.ErrSchemaBehind

// ErrBadURL means the database URL does not parse. The URL is never part of the
// message: it may hold a password.
var ErrBadURL = pgdb.ErrBadURL

// Store is a payments.Store on a PostgreSQL database, through one pgx pool.
type Store struct {
	pool    *pgxpool.Pool
	version int
	// privileged: the role may change the schema (see CanChangeSchema).
	privileged bool
	closed     atomic.Bool
}

var _ payments.Store = (*Store)(nil)

// Option configures Open and Migrate.
type Option = pgdb.Option

// WithMaxConns sets the size of the connection pool (default 16). Each write of a
// request holds a connection for its transaction only (never across the call to
// accounts), so this bounds the writes and reads running at once. A
// pool_max_conns parameter in the URL is overridden.
func WithMaxConns(n int32) Option { return pgdb.WithMaxConns(n) }

// WithClock makes the migrations record their time from now (default time.Now).
func WithClock(now func() time.Time) Option { return pgdb.WithClock(now) }

// WithoutMigrations makes Open check the schema instead of migrating it: a
// database the migration step (Migrate) has not brought to this build's schema is
// refused with ErrSchemaBehind, and nothing is ever created or altered. This is
// how a service runs as its runtime role, which may not change the schema.
func WithoutMigrations() Option { return pgdb.WithoutMigrations() }

// RuntimeGrants is what the runtime role of a payments database may do (Migrate
// grants it): read and add payments, and change only what carrying one out
// changes: its status and outcome, its update time and its lease. Never who
// created it, the accounts, the amount, the keys or the creator's certificate;
// no DELETE, no TRUNCATE, no DDL.
func RuntimeGrants() []migrate.TableGrant {
	return []migrate.TableGrant{
		{Table: "payments", Privileges: "SELECT, INSERT, UPDATE (status, transaction_id, failure_code, failure_reason, " +
			"failure_error_reason, update_time, lease_owner, lease_until)"},
		// Kept by the payments' trigger (0002), which runs as the role that changes a payment.
		{Table: "payment_usage", Privileges: "SELECT, INSERT, UPDATE (minor_units)"},
	}
}

// schema is the payments' part of the PostgreSQL toolkit (internal/pgdb).
func schema() pgdb.Schema {
	return pgdb.Schema{Migrations: migrationFiles, Dir: "migrations", RuntimeGrants: RuntimeGrants()}
}

// Migrate is the migration step of a payments database (payments --migrate), run
// by the role that owns its tables: it applies the migrations the database lacks,
// under the migrators' advisory lock, and then, if runtimeRole is not empty,
// grants that role RuntimeGrants and nothing else on the tables. It returns the
// schema version.
func Migrate(ctx context.Context, url, runtimeRole string, opts ...Option) (int, error) {
	v, err := pgdb.Migrate(ctx, url, runtimeRole, schema(), opts...)
	if err != nil {
		return v, fmt.Errorf("payments pgstore: %w", err)
	}
	return v, nil
}

// Open connects to the PostgreSQL database that url names (a postgres:// URL or a
// key=value connection string; TLS, client certificates and a password come from
// it or from the standard PG* environment variables and files) and applies the
// schema migrations it lacks, under the migrators' advisory lock, so that replicas
// starting together migrate once; WithoutMigrations checks the schema instead.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	db, err := pgdb.Open(ctx, url, schema(), pgdb.Pool{Default: 16, Min: 1}, opts...)
	if err != nil {
		return nil, fmt.Errorf("payments pgstore: %w", err)
	}
	return &Store{pool: db.Pool, version: db.Version, privileged: db.Privileged}, nil
}

// CanChangeSchema reports whether the role the store connects as could alter or
// drop its tables (a superuser, the tables' owner, or a role that may create in
// the schema): a service should not serve as one. See Migrate and RuntimeGrants
// for the runtime role.
func (s *Store) CanChangeSchema() bool { return s.privileged }

// SchemaVersion returns the schema version the database is at.
func (s *Store) SchemaVersion() int { return s.version }

// Close refuses new writes with payments.ErrClosed and closes the pool, waiting
// for the connections in use to be returned.
func (s *Store) Close() error {
	if s.closed.CompareAndSwap(false, true) {
		s.pool.Close()
	}
	return nil
}

// Ping checks that the database answers a query (a readiness check).
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.pool.QueryRow(ctx, `SELECT 1 FROM schema_history LIMIT 1`).Scan(&one); err != nil {
		return fmt.Errorf("payments database: %w", err)
	}
	return nil
}

// Update runs fn in a READ COMMITTED transaction of its own and commits it if fn
// returns nil. Each statement sees what was committed before it started, so a
// transaction that waited for a lock (an advisory lock, a row lock) then reads
// what the holder committed.
func (s *Store) Update(ctx context.Context, fn func(payments.Tx) error) error {
	if s.closed.Load() {
		return payments.ErrClosed
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted, AccessMode: pgx.ReadWrite})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(&txn{tx: tx}); err != nil {
		if rbErr := tx.Rollback(context.Background()); rbErr != nil && !errors.Is(rbErr, pgx.ErrTxClosed) {
			return fmt.Errorf("rollback after %v: %w", err, rbErr)
		}
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Get returns the payment with the id, or payments.ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (payments.Payment, error) {
	p, ok, err := found(payments.ScanPayment(s.pool.QueryRow(ctx, `SELECT `+payments.Columns+` FROM payments WHERE id = $1`, id)))
	switch {
	case err != nil:
		return payments.Payment{}, fmt.Errorf("get payment %q: %w", id, err)
	case !ok:
		return payments.Payment{}, fmt.Errorf("get payment %q: %w", id, payments.ErrNotFound)
	}
	return p, nil
}

// List returns the payments q selects, in creation order.
func (s *Store) List(ctx context.Context, q payments.Query) ([]payments.Payment, error) {
	if q.Limit <= 0 {
		return nil, fmt.Errorf("list payments: limit %d must be positive", q.Limit)
	}
	// One statement per combination of filters, so that each plan can use its
	// index (the partial index of PENDING payments for recovery).
	where, args := "seq > $1", []any{q.AfterSeq}
	if q.CreatedBy != "" {
		args = append(args, q.CreatedBy)
		where += fmt.Sprintf(" AND created_by = $%d", len(args))
	}
	if q.Status != "" {
		args = append(args, string(q.Status))
		where += fmt.Sprintf(" AND status = $%d", len(args))
	}
	args = append(args, q.Limit)
	rows, err := s.pool.Query(ctx, `SELECT `+payments.Columns+` FROM payments WHERE `+where+
		fmt.Sprintf(` ORDER BY seq LIMIT $%d`, len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("list payments: %w", err)
	}
	defer rows.Close()
	out, err := payments.ScanPayments(rows)
	if err != nil {
		return nil, fmt.Errorf("list payments: %w", err)
	}
	return out, nil
}
