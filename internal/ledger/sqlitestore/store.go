package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"mtlsbank/internal/ledger"
	"mtlsbank/internal/ledger/writeset"
	"mtlsbank/internal/sqlitedb"
)

// Store is a ledger.Store on one SQLite file. All writes go through a single
// connection; reads use a separate pool and, thanks to WAL, never wait for
// the writer.
type Store struct {
	path    string
	version int
	w, r    *sql.DB
	ws, rs  statements
	sized   sizedStatements
	// unlock releases the exclusive lock of WithExclusive; nil without it.
	unlock func() error
}

var _ ledger.Store = (*Store)(nil)

// Option configures Open.
type Option func(*config)

type config struct {
	readConns   int
	busyTimeout time.Duration
	now         func() time.Time
	exclusive   bool
}

// defaults is the one place where option defaults are set.
func defaults() config {
	return config{readConns: 4, busyTimeout: 5 * time.Second, now: time.Now}
}

// WithReadConns sets the size of the read connection pool. The default is 4.
func WithReadConns(n int) Option { return func(c *config) { c.readConns = n } }

// WithExclusive makes the store the only one of any process on its file: Open takes an
// exclusive lock (sqlitedb.LockExclusive) and fails with sqlitedb.ErrLocked if another
// store holds it; Close releases it. The ledger's account cache needs it
// (SoleWriter): with it, every write of the file goes through this store.
func WithExclusive() Option { return func(c *config) { c.exclusive = true } }

// WithBusyTimeout sets how long a connection waits for a lock held by
// another process before failing. The default is 5s.
func WithBusyTimeout(d time.Duration) Option { return func(c *config) { c.busyTimeout = d } }

// Open opens or creates the database file at path (and its directory),
// checks that it runs in WAL mode with synchronous=FULL and foreign keys on,
// and applies the schema migrations it lacks.
//
// synchronous=FULL syncs the WAL on every commit, so a commit acknowledged
// by Update survives an operating-system crash or power loss as well as a
// killed process; in WAL mode NORMAL could lose the last commits on power
// loss.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	cfg := defaults()
	for _, o := range opts {
		o(&cfg)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: database path %s: %w", path, err)
	}
	s := &Store{path: abs}
	if s.w, s.r, err = sqlitedb.Open(ctx, abs, cfg.readConns, cfg.busyTimeout); err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = s.Close()
		}
	}()
	if cfg.exclusive {
		// Before the migrations: a second process must not change the schema either.
		if s.unlock, err = sqlitedb.LockExclusive(abs); err != nil {
			return nil, fmt.Errorf("sqlitestore: %w", err)
		}
	}
	if s.version, err = migrateSchema(ctx, s.w, cfg.now()); err != nil {
		return nil, fmt.Errorf("sqlitestore: %s: %w", abs, err)
	}

	if err := s.sized.prepare(ctx, s.w); err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}
	if err := s.ws.prepare(ctx, s.w, true); err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}
	if err := s.rs.prepare(ctx, s.r, false); err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}
	ok = true
	return s, nil
}

// Path returns the absolute path of the database file.
func (s *Store) Path() string { return s.path }

// SoleWriter reports whether this store holds its file's exclusive lock (WithExclusive):
// then no other store writes the file.
func (s *Store) SoleWriter() bool { return s.unlock != nil }

// SchemaVersion returns the schema version the database is at.
func (s *Store) SchemaVersion() int { return s.version }

// Close closes both connection pools. Close the ledger first.
func (s *Store) Close() error {
	var errs []error
	for _, st := range []*statements{&s.ws, &s.rs} {
		errs = append(errs, st.close())
	}
	errs = append(errs, s.sized.close())
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	if s.unlock != nil {
		// Last: only once no connection of this store can write.
		errs = append(errs, s.unlock())
		s.unlock = nil
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlitestore: close %s: %w", s.path, err)
	}
	return nil
}

// Update runs fn in a write transaction (BEGIN IMMEDIATE) on the writer connection
// and, if fn returns nil, sends the writes it kept (writeset.Tx, see backend), moves
// the sequence counter past its allocations and commits.
func (s *Store) Update(ctx context.Context, fn func(ledger.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlitestore: begin: %w", err)
	}
	done := false
	defer func() {
		if !done { // fn panicked: never leave the writer connection inside a transaction
			_ = tx.Rollback()
		}
	}()
	b := &backend{txn: txn{tx: tx, stmts: &s.ws, cache: new(stmtCache)}, sized: &s.sized}
	counter, err := b.counter(ctx)
	if err == nil {
		wt := writeset.New(b, counter)
		if err = fn(wt); err == nil {
			err = b.commit(ctx, wt)
		}
	}
	done = true
	if err != nil {
		if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
			return fmt.Errorf("sqlitestore: rollback after %v: %w", err, rbErr)
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlitestore: commit: %w", err)
	}
	return nil
}

// View runs fn in a read transaction on the read pool.
func (s *Store) View(ctx context.Context, fn func(ledger.ReadTx) error) error {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("sqlitestore: begin read: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	return fn(&txn{tx: tx, stmts: &s.rs, cache: new(stmtCache)})
}
