package sqlitestore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"mtlsbank/internal/groupcommit"
	"mtlsbank/internal/migrate"
	"mtlsbank/internal/payments"
	"mtlsbank/internal/sqlitedb"
)

// ErrSchemaTooNew means the database was written by a newer version of the service.
var ErrSchemaTooNew = migrate.ErrSchemaTooNew

// migrationFiles are the schema versions, NNNN_what.sql numbered from 0001
// without gaps, applied by migrate.Run when a store is opened. Append only:
// the runner refuses a database whose applied migrations were edited.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// legacyTable is where the payments runner before the shared runner kept its
// versions; a file it migrated is adopted on first open.
const legacyTable = "schema_migrations"

// Store keeps payment orders in a SQLite database. It is safe for concurrent use.
//
// All writes go through one connection, so that concurrent writers never compete
// for SQLite's write lock (a loser would sleep in the busy handler), and through
// one group committer, which runs whatever Update calls are waiting in one
// transaction and one fsync. Reads use a separate pool and, thanks to WAL, never
// wait for the writer.
type Store struct {
	w, r   *sql.DB
	ws, rs []*sql.Stmt // prepared on w and on r
	cfg    config
	// version is the schema version the database is at.
	version int

	committer *groupcommit.Committer[*writeTx, struct{}]
	closeOnce sync.Once
	closeErr  error
}

var _ payments.Store = (*Store)(nil)

// Option configures Open.
type Option func(*config)

type config struct {
	now       func() time.Time
	readConns int
	maxBatch  int
	observe   groupcommit.Observer
}

// defaults is the one place where the defaults of Option are set.
func defaults() config {
	return config{now: time.Now, readConns: 4, maxBatch: 128}
}

// WithClock makes the migrations record their time from now (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now != nil {
			c.now = now
		}
	}
}

// WithReadConns sets the size of the read connection pool (default 4). Values
// below 1 keep the default.
func WithReadConns(n int) Option {
	return func(c *config) {
		if n >= 1 {
			c.readConns = n
		}
	}
}

// WithMaxBatch bounds how many writes share one transaction and one fsync
// (default 128; 1 turns group commit off). Values below 1 keep the default.
func WithMaxBatch(n int) Option {
	return func(c *config) {
		if n >= 1 {
			c.maxBatch = n
		}
	}
}

// WithCommitObserver has fn told, after each batch of writes ran in one transaction,
// how many it had and how long the transaction took, commit and fsync included
// (groupcommit.WithObserver). fn runs on the committer's goroutine and must be quick.
func WithCommitObserver(fn groupcommit.Observer) Option {
	return func(c *config) { c.observe = fn }
}

// Open opens (creating it and its directory if needed) the SQLite database at
// path and brings its schema up to date. The database runs in WAL mode with
// synchronous=FULL, so a payment acknowledged as recorded survives a crash.
// Close the store to stop its committer.
func Open(ctx context.Context, path string, opts ...Option) (_ *Store, err error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open payments database %q: path must be non-empty and contain no '?' or '#'", path)
	}
	s := &Store{cfg: defaults()}
	for _, o := range opts {
		o(&s.cfg)
	}
	defer func() {
		if err != nil {
			s.closeDB()
			err = fmt.Errorf("open payments database %s: %w", path, err)
		}
	}()

	if s.w, s.r, err = sqlitedb.Open(ctx, path, s.cfg.readConns, 5*time.Second); err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		return nil, err
	}
	if s.ws, err = prepareAll(ctx, s.w, writeSQL[:]); err != nil {
		return nil, err
	}
	if s.rs, err = prepareAll(ctx, s.r, readSQL[:]); err != nil {
		return nil, err
	}
	if s.committer, err = groupcommit.New[*writeTx, struct{}](s.runBatch,
		groupcommit.WithMaxBatch(s.cfg.maxBatch), groupcommit.WithObserver(s.cfg.observe)); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrate.Load(migrationFiles, "migrations")
	if err != nil {
		return err
	}
	s.version, err = migrate.Run(ctx, s.w, migrate.SQLite{}, ms,
		migrate.WithLegacyTable(legacyTable), migrate.WithClock(s.cfg.now))
	return err
}

// SchemaVersion returns the schema version the database is at.
func (s *Store) SchemaVersion() int { return s.version }

// Ping checks that the database answers a query (a readiness check).
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.rs[stmtPing].QueryRowContext(ctx).Scan(&one); err != nil {
		return fmt.Errorf("payments database: %w", err)
	}
	return nil
}

// Close refuses new writes with payments.ErrClosed, commits the writes already
// queued, waits for the committer to stop and closes the database. Calling it
// again returns the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.committer.Close()
		s.closeErr = s.closeDB()
	})
	return s.closeErr
}

// closeDB closes what Open opened, also half-way.
func (s *Store) closeDB() error {
	errs := []error{closeAll(s.ws), closeAll(s.rs)}
	for _, db := range []*sql.DB{s.r, s.w} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close payments database: %w", err)
	}
	return nil
}

// Update runs fn through the group committer: in a transaction shared with the
// writes queued at the same time, answered after its commit. If ctx ends after
// the write was queued it may still commit.
func (s *Store) Update(ctx context.Context, fn func(payments.Tx) error) error {
	_, err := s.committer.Do(ctx, func(ctx context.Context, tx *writeTx) (struct{}, error) {
		return struct{}{}, fn(tx)
	})
	if errors.Is(err, groupcommit.ErrClosed) {
		return payments.ErrClosed
	}
	return err
}

// runBatch runs one batch of writes in a transaction on the writer connection.
func (s *Store) runBatch(ctx context.Context, batch func(*writeTx) error) error {
	tx, err := s.w.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := batch(&writeTx{tx: tx, stmts: s.ws}); err != nil {
		_ = tx.Rollback() // the request's error is the one that matters
		return err
	}
	if err := tx.Commit(); err != nil {
		// SQLite may leave a transaction open after a failed COMMIT; the next
		// batch must not run inside it. (An error here means none was open.)
		_, _ = s.w.ExecContext(context.Background(), "ROLLBACK")
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Get returns the payment with the id, or payments.ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (payments.Payment, error) {
	p, err := payments.ScanPayment(s.rs[stmtByID].QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return payments.Payment{}, fmt.Errorf("get payment %q: %w", id, payments.ErrNotFound)
	}
	if err != nil {
		return payments.Payment{}, fmt.Errorf("get payment %q: %w", id, err)
	}
	return p, nil
}

// List returns the payments q selects, in creation order.
func (s *Store) List(ctx context.Context, q payments.Query) ([]payments.Payment, error) {
	if q.Limit <= 0 {
		return nil, fmt.Errorf("list payments: limit %d must be positive", q.Limit)
	}
	var rows *sql.Rows
	var err error
	switch {
	case q.CreatedBy != "" && q.Status != "":
		rows, err = s.rs[stmtListCreatorStatus].QueryContext(ctx, q.AfterSeq, q.CreatedBy, string(q.Status), q.Limit)
	case q.CreatedBy != "":
		rows, err = s.rs[stmtListCreator].QueryContext(ctx, q.AfterSeq, q.CreatedBy, q.Limit)
	case q.Status != "":
		rows, err = s.rs[stmtListStatus].QueryContext(ctx, q.AfterSeq, string(q.Status), q.Limit)
	default:
		rows, err = s.rs[stmtList].QueryContext(ctx, q.AfterSeq, q.Limit)
	}
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
