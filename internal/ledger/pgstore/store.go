package pgstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"mtlsbank/internal/ledger"
	"mtlsbank/internal/migrate"
	"mtlsbank/internal/pgdb"
)

// migrationFiles are the schema versions of the PostgreSQL store, named
// NNNN_what.sql from 0001 without gaps. A released file is never edited.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// ErrSchemaTooNew means the database was migrated by a newer build.
var ErrSchemaTooNew = migrate.ErrSchemaTooNew

// ErrBadURL means the database URL does not parse. The URL is never part of
// the message: it may hold a password.
var ErrBadURL = pgdb.ErrBadURL

// Store is a ledger.Store on a PostgreSQL database, through one pgx pool.
type Store struct {
	pool    *pgxpool.Pool
	version int
	// listen is the configuration of the connection FollowCommits listens on,
	// outside the pool so that it never holds a pool connection.
	listen *pgx.ConnConfig
}

var (
	_ ledger.Store      = (*Store)(nil)
	_ ledger.CommitFeed = (*Store)(nil)
)

// Option configures Open.
type Option = pgdb.Option

// WithMaxConns sets the size of the connection pool. The default is 8: the
// ledger has one writer (its committer) and the rest serve reads and watches;
// at least 2. A pool_max_conns parameter in the URL is overridden.
func WithMaxConns(n int32) Option { return pgdb.WithMaxConns(n) }

// WithClock makes the migrations record their time from now (default time.Now).
func WithClock(now func() time.Time) Option { return pgdb.WithClock(now) }

// Open connects to the PostgreSQL database that url names (a postgres:// URL
// or a key=value connection string; TLS, client certificates and a password
// come from it or from the standard PG* environment variables and files) and
// applies the schema migrations it lacks, under the migrators' advisory lock,
// so that replicas starting together migrate once.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	pool, version, err := pgdb.Open(ctx, url, migrationFiles, "migrations", pgdb.Pool{Default: 8, Min: 2}, opts...)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	return &Store{pool: pool, version: version, listen: pool.Config().ConnConfig.Copy()}, nil
}

// SchemaVersion returns the schema version the database is at.
func (s *Store) SchemaVersion() int { return s.version }

// Close closes the connection pool. Close the ledger first.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Update runs fn in a READ COMMITTED transaction that first locks the
// sequence counter row, and commits it if fn returns nil.
//
// The lock comes first so that every writer of every replica takes its locks
// in one order (counter row, then account rows): no deadlock, and a writer
// sees, after the lock, everything committed before it (READ COMMITTED reads
// the newest committed rows at each statement; REPEATABLE READ would keep the
// snapshot from before the wait). Writers commit one at a time; the ledger's
// group commit makes each of those commits a batch.
func (s *Store) Update(ctx context.Context, fn func(ledger.Tx) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted, AccessMode: pgx.ReadWrite})
	if err != nil {
		return fmt.Errorf("pgstore: begin: %w", err)
	}
	if _, err := tx.Exec(ctx, `SELECT last_sequence FROM entry_sequence WHERE id = 1 FOR UPDATE`); err != nil {
		_ = tx.Rollback(context.Background())
		return fmt.Errorf("pgstore: lock the sequence counter: %w", err)
	}
	t := &txn{tx: tx, write: true, wrote: new(bool)}
	if err := fn(t); err != nil {
		if rbErr := tx.Rollback(context.Background()); rbErr != nil && !errors.Is(rbErr, pgx.ErrTxClosed) {
			return fmt.Errorf("pgstore: rollback after %v: %w", err, rbErr)
		}
		return err
	}
	if *t.wrote {
		// Delivered to the listeners at commit, and only if it commits.
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, commitChannel); err != nil {
			_ = tx.Rollback(context.Background())
			return fmt.Errorf("pgstore: notify: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgstore: commit: %w", err)
	}
	return nil
}

// View runs fn in a REPEATABLE READ READ ONLY transaction: one snapshot for
// all its reads, and no locks.
func (s *Store) View(ctx context.Context, fn func(ledger.ReadTx) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("pgstore: begin read: %w", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	return fn(&txn{tx: tx})
}
