package pgstore

import (
	"context"
	"embed"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"mtlsbank/internal/ledger"
	"mtlsbank/internal/ledger/writeset"
	"mtlsbank/internal/migrate"
	"mtlsbank/internal/pgdb"
)

// migrationFiles are the schema versions of the PostgreSQL store, named
// NNNN_what.sql from 0001 without gaps. A released file is never edited.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// ErrSchemaTooNew means the database was migrated by a newer build.
var ErrSchemaTooNew = pgdb.ErrSchemaTooNew

// ErrSchemaBehind means the database lacks migrations of this build and Open
// was told not to migrate (WithoutMigrations): run Migrate first.
var ErrSchemaBehind = pgdb.ErrSchemaBehind

// ErrBadURL means the database URL does not parse. The URL is never part of
// the message: it may hold a password.
var ErrBadURL = pgdb.ErrBadURL

// Store is a ledger.Store on a PostgreSQL database, through one pgx pool.
type Store struct {
	pool    *pgxpool.Pool
	version int
	// privileged: the role may change the schema (see CanChangeSchema).
	privileged bool
	// listen is the configuration of the connection FollowCommits listens on,
	// outside the pool so that it never holds a pool connection.
	listen *pgx.ConnConfig
}

var (
	_ ledger.Store      = (*Store)(nil)
	_ ledger.CommitFeed = (*Store)(nil)
)

// Option configures Open and Migrate.
type Option = pgdb.Option

// WithMaxConns sets the size of the connection pool. The default is 8: the
// ledger has one writer (its committer) and the rest serve reads and watches;
// at least 2. A pool_max_conns parameter in the URL is overridden.
func WithMaxConns(n int32) Option { return pgdb.WithMaxConns(n) }

// WithClock makes the migrations record their time from now (default time.Now).
func WithClock(now func() time.Time) Option { return pgdb.WithClock(now) }

// WithoutMigrations makes Open check the schema instead of migrating it: a
// database the migration step (Migrate) has not brought to this build's schema
// is refused with ErrSchemaBehind, and nothing is ever created or altered. This
// is how a service runs as its runtime role, which may not change the schema.
func WithoutMigrations() Option { return pgdb.WithoutMigrations() }

// RuntimeGrants is what the runtime role of a ledger database may do, table by
// table (Migrate grants it): read everything; add accounts, transactions,
// entries and idempotency records; change only a balance and the sequence
// counter. No DELETE, no UPDATE of a transaction, an entry, an idempotency
// record or an account's owner, no TRUNCATE, no DDL.
func RuntimeGrants() []migrate.TableGrant {
	return []migrate.TableGrant{
		{Table: "accounts", Privileges: "SELECT, INSERT, UPDATE (balance)"},
		{Table: "transactions", Privileges: "SELECT, INSERT"},
		{Table: "entries", Privileges: "SELECT, INSERT"},
		{Table: "entry_sequence", Privileges: "SELECT, UPDATE (last_sequence)"},
		{Table: "idempotency", Privileges: "SELECT, INSERT"},
	}
}

// schema is the ledger's part of the PostgreSQL toolkit (internal/pgdb).
func schema() pgdb.Schema {
	return pgdb.Schema{Migrations: migrationFiles, Dir: "migrations", RuntimeGrants: RuntimeGrants()}
}

// Migrate is the migration step of a ledger database, run by the role that owns
// its tables (the schema owner): it applies the migrations the database lacks,
// under the migrators' advisory lock, and then, if runtimeRole is not empty,
// grants that role RuntimeGrants and nothing else on the tables. It returns the
// schema version.
func Migrate(ctx context.Context, url, runtimeRole string, opts ...Option) (int, error) {
	v, err := pgdb.Migrate(ctx, url, runtimeRole, schema(), opts...)
	if err != nil {
		return v, fmt.Errorf("pgstore: %w", err)
	}
	return v, nil
}

// Open connects to the PostgreSQL database that url names (a postgres:// URL
// or a key=value connection string; TLS, client certificates and a password
// come from it or from the standard PG* environment variables and files) and
// applies the schema migrations it lacks, under the migrators' advisory lock,
// so that replicas starting together migrate once; WithoutMigrations checks the
// schema instead.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	db, err := pgdb.Open(ctx, url, schema(), pgdb.Pool{Default: 8, Min: 2}, opts...)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	return &Store{pool: db.Pool, version: db.Version, privileged: db.Privileged, listen: db.Pool.Config().ConnConfig.Copy()}, nil
}

// CanChangeSchema reports whether the role the store connects as could alter
// or drop its tables (a superuser, the tables' owner, or a role that may create
// in the schema): a service should not serve as one. See Migrate and
// RuntimeGrants for the runtime role.
func (s *Store) CanChangeSchema() bool { return s.privileged }

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
//
// The transaction keeps its writes in memory and sends them with the COMMIT
// (see backend): BEGIN and the lock take one round trip, each request's reads
// one, and the commit one. A write that collides with a row another
// transaction committed fails the commit with ledger.ErrConflict.
func (s *Store) Update(ctx context.Context, fn func(ledger.Tx) error) (err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: begin: %w", err)
	}
	defer func() {
		// Also when fn panics: never hand the pool a connection inside a
		// transaction (the pool would close it).
		if pc := conn.Conn().PgConn(); !pc.IsClosed() && pc.TxStatus() != 'I' {
			if _, rbErr := conn.Exec(context.Background(), "ROLLBACK"); rbErr != nil && err != nil {
				err = fmt.Errorf("%w (and the rollback failed: %v)", err, rbErr)
			}
		}
		conn.Release()
	}()
	counter, err := begin(ctx, conn)
	if err != nil {
		return err
	}
	tx := writeset.New(newBackend(conn), counter)
	if err := fn(tx); err != nil {
		return err
	}
	if err := commit(ctx, conn, tx); err != nil {
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
	return fn(reader{q: tx})
}

// ViewRead implements ledger.SingleReader: fn's one read is one statement on a
// connection of the pool, outside any transaction, in one round trip (a View
// takes three: BEGIN, the statement, ROLLBACK). A statement sees one committed
// snapshot by itself. (Transaction and TransactionsAfter read transactions and
// then their entries, in two statements; entries commit with their transaction
// and never change, so the second statement finds them whatever its snapshot.)
func (s *Store) ViewRead(ctx context.Context, fn func(ledger.ReadTx) error) error {
	return fn(&oneRead{r: reader{q: s.pool}})
}
