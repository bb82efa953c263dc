package payments

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
	"mtlsbank/internal/money"
	"mtlsbank/internal/sqlitedb"
)

// Sentinel errors of the store.
var (
	// ErrNotFound means no payment has the id.
	ErrNotFound = errors.New("payment not found")
	// ErrSchemaTooNew means the database was written by a newer version of the service.
	ErrSchemaTooNew = migrate.ErrSchemaTooNew
	// ErrClosed means the store was closed.
	ErrClosed = errors.New("payments store closed")
)

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
// for SQLite's write lock (a loser would sleep in the busy handler); reads use a
// separate pool and, thanks to WAL, never wait for the writer.
type Store struct {
	w, r   *sql.DB
	ws, rs []*sql.Stmt // prepared on w and on r
	cfg    storeConfig

	committer *groupcommit.Committer[*writeTx, writeResult]
	closeOnce sync.Once
	closeErr  error
}

// StoreOption configures OpenStore.
type StoreOption func(*storeConfig)

type storeConfig struct {
	now       func() time.Time
	readConns int
	maxBatch  int
}

// storeDefaults is the one place where the defaults of StoreOption are set.
func storeDefaults() storeConfig {
	return storeConfig{now: time.Now, readConns: 4, maxBatch: 128}
}

// WithStoreClock makes the store read the time from now (default time.Now).
func WithStoreClock(now func() time.Time) StoreOption {
	return func(c *storeConfig) { c.now = now }
}

// WithReadConns sets the size of the read connection pool (default 4). Values
// below 1 keep the default.
func WithReadConns(n int) StoreOption {
	return func(c *storeConfig) {
		if n >= 1 {
			c.readConns = n
		}
	}
}

// WithMaxBatch bounds how many writes share one transaction and one fsync
// (default 128; 1 turns group commit off). Values below 1 keep the default.
func WithMaxBatch(n int) StoreOption {
	return func(c *storeConfig) {
		if n >= 1 {
			c.maxBatch = n
		}
	}
}

// OpenStore opens (creating it and its directory if needed) the SQLite database at
// path and brings its schema up to date. The database runs in WAL mode with
// synchronous=FULL, so a payment acknowledged as recorded survives a crash.
// Concurrent writes are committed in groups, one transaction and one fsync for
// each group; Close the store to stop its committer.
func OpenStore(ctx context.Context, path string, opts ...StoreOption) (_ *Store, err error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open payments database %q: path must be non-empty and contain no '?' or '#'", path)
	}
	s := &Store{cfg: storeDefaults()}
	for _, o := range opts {
		o(&s.cfg)
	}
	if s.cfg.now == nil {
		return nil, fmt.Errorf("open payments database %s: nil clock", path)
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
	if s.committer, err = groupcommit.New[*writeTx, writeResult](s.runBatch, groupcommit.WithMaxBatch(s.cfg.maxBatch)); err != nil {
		return nil, err
	}
	return s, nil
}

// Ping checks that the database answers a query (a readiness check).
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.rs[stmtPing].QueryRowContext(ctx).Scan(&one); err != nil {
		return fmt.Errorf("payments database: %w", err)
	}
	return nil
}

// Close refuses new writes with ErrClosed, commits the writes already queued,
// waits for the committer to stop and closes the database. Calling it again
// returns the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.committer.Close()
		s.closeErr = s.closeDB()
	})
	return s.closeErr
}

// closeDB closes what OpenStore opened, also half-way.
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

func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrate.Load(migrationFiles, "migrations")
	if err != nil {
		return err
	}
	_, err = migrate.Run(ctx, s.w, migrate.SQLite{}, ms,
		migrate.WithLegacyTable(legacyTable), migrate.WithClock(s.cfg.now))
	return err
}

type scanner interface{ Scan(dest ...any) error }

func scanPayment(row scanner) (Payment, error) {
	var p Payment
	var created, updated int64
	var cas string
	err := row.Scan(&p.Seq, &p.ID, &p.CreatedBy, &p.IdempotencyKey, &p.Fingerprint, &p.Status,
		&p.FromAccountID, &p.ToAccountID, &p.Currency, &p.MinorUnits, &p.Memo,
		&p.TransactionID, &p.FailureCode, &p.FailureReason, &p.TransferKey, &created, &updated,
		&p.CreatorSerial, &p.CreatorIssuer, &p.LimitMinorUnits, &p.LimitRemaining, &cas, &p.FailureErrorReason)
	if err != nil {
		return Payment{}, err
	}
	if p.CreatorCAs, err = decodeCertRefs(cas); err != nil {
		return Payment{}, fmt.Errorf("payment %s: creator_cas: %w", p.ID, err)
	}
	if len(p.CreatorIssuer) == 0 {
		p.CreatorIssuer = nil // one spelling of "none", whatever the driver returns
	}
	p.CreateTime = time.Unix(0, created).UTC()
	p.UpdateTime = time.Unix(0, updated).UTC()
	return p, nil
}

// Create records p as PENDING, unless its creator already recorded a payment
// under the same idempotency key: then it returns that payment and created is
// false, whatever its content (comparing fingerprints is the caller's business).
// Create assigns Seq, Status and the timestamps; every other field comes from p.
// It returns once the record is durable.
func (s *Store) Create(ctx context.Context, p Payment) (_ Payment, created bool, err error) {
	return s.create(ctx, p, nil)
}

// RollingLimit caps what one creator may order in one currency over a sliding
// window: the sum of its orders created less than Window ago that are not FAILED
// (PENDING and COMPLETED ones), the new order included.
type RollingLimit struct {
	// MinorUnits is the cap, in minor units of the order's currency.
	MinorUnits int64
	// Window is how far back orders count.
	Window time.Duration
}

// CodeLimitExceeded is the FailureCode of an order refused by a RollingLimit.
const CodeLimitExceeded = "RESOURCE_EXHAUSTED"

// CreateUnderLimit is Create for a creator bound by limit. The sum is taken in
// the transaction that records the order, on the one writer, so that concurrent
// orders cannot all see the same room. An order that does not fit is recorded
// FAILED with CodeLimitExceeded, the limit and what remained of it (created is
// true), so that its idempotency key keeps refusing it even once the window has
// room again; it never counts against the limit.
func (s *Store) CreateUnderLimit(ctx context.Context, p Payment, limit RollingLimit) (_ Payment, created bool, err error) {
	if limit.MinorUnits < 0 || limit.Window <= 0 {
		return Payment{}, false, fmt.Errorf("record payment: rolling limit %d per %s is not a limit", limit.MinorUnits, limit.Window)
	}
	return s.create(ctx, p, &limit)
}

func (s *Store) create(ctx context.Context, p Payment, limit *RollingLimit) (Payment, bool, error) {
	r, err := s.write(ctx, s.createOp(p, limit))
	if err != nil {
		return Payment{}, false, fmt.Errorf("record payment: %w", err)
	}
	return r.p, r.created, nil
}

// createOp is Create inside a write transaction. The common case, a new key,
// takes one statement (two under a limit): the insert returns the sequence it
// assigned.
func (s *Store) createOp(p Payment, limit *RollingLimit) writeOp {
	return func(_ context.Context, tx *writeTx) (writeResult, error) {
		now := s.cfg.now()
		p.Status = StatusPending
		p.TransactionID, p.FailureCode, p.FailureReason = "", "", ""
		p.LimitMinorUnits, p.LimitRemaining = 0, 0
		if len(p.CreatorIssuer) == 0 {
			p.CreatorIssuer = nil
		}
		refused := false
		if limit != nil {
			var used int64
			since := now.Add(-limit.Window).UnixNano()
			if err := tx.stmt(stmtUsage).QueryRow(p.CreatedBy, p.Currency, since).Scan(&used); err != nil {
				return writeResult{}, fmt.Errorf("sum the rolling limit: %w", err)
			}
			remaining := max(limit.MinorUnits-used, 0)
			if p.MinorUnits > remaining {
				refused = true
				p.Status = StatusFailed
				p.FailureCode = CodeLimitExceeded
				p.LimitMinorUnits, p.LimitRemaining = limit.MinorUnits, remaining
				p.FailureReason = fmt.Sprintf("customer limit of %s per %s exceeded: %s of it remains, the payment is %s",
					money.Format(limit.MinorUnits, p.Currency), formatWindow(limit.Window),
					money.Format(remaining, p.Currency), money.Format(p.MinorUnits, p.Currency))
			}
		}
		issuer := p.CreatorIssuer
		if issuer == nil {
			issuer = []byte{} // the column is NOT NULL
		}
		cas, err := encodeCertRefs(p.CreatorCAs)
		if err != nil {
			return writeResult{}, err
		}
		args := []any{p.ID, p.CreatedBy, p.IdempotencyKey, p.Fingerprint,
			p.FromAccountID, p.ToAccountID, p.Currency, p.MinorUnits, p.Memo, p.TransferKey, now.UnixNano(), now.UnixNano(),
			p.CreatorSerial, issuer, cas}
		insert := stmtInsert
		if refused {
			insert = stmtInsertRefused
			args = append(args, p.FailureCode, p.FailureReason, p.LimitMinorUnits, p.LimitRemaining)
		}
		err = tx.stmt(insert).QueryRow(args...).Scan(&p.Seq)
		switch {
		case err == nil:
			p.CreateTime = time.Unix(0, now.UnixNano()).UTC()
			p.UpdateTime = p.CreateTime
			return writeResult{p: p, created: true}, nil
		case !errors.Is(err, sql.ErrNoRows):
			return writeResult{}, err
		}
		stored, err := scanPayment(tx.stmt(stmtByKey).QueryRow(p.CreatedBy, p.IdempotencyKey))
		if err != nil {
			return writeResult{}, fmt.Errorf("read back: %w", err)
		}
		return writeResult{p: stored}, nil
	}
}

// formatWindow writes a window the way people say it: "24h", "90m", "1h30m".
func formatWindow(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// Get returns the payment with the id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (Payment, error) {
	p, err := scanPayment(s.rs[stmtByID].QueryRowContext(ctx, id))
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
// It returns once the outcome is durable.
func (s *Store) Complete(ctx context.Context, id, transactionID string) (Payment, error) {
	if transactionID == "" {
		return Payment{}, fmt.Errorf("complete payment %q: empty transaction id", id)
	}
	return s.finish(ctx, id, s.completeOp(id, transactionID))
}

// Fail marks a PENDING payment FAILED with the gRPC code name the ledger refused
// it with and a reason for people. Like Complete, it never changes a payment that
// is no longer PENDING.
func (s *Store) Fail(ctx context.Context, id, code, reason string) (Payment, error) {
	return s.FailWithErrorReason(ctx, id, code, "", reason)
}

// FailWithErrorReason is Fail that also records errorReason, the google.rpc.ErrorInfo
// reason (package refusal) the ledger refused the payment with, or "" for none.
func (s *Store) FailWithErrorReason(ctx context.Context, id, code, errorReason, reason string) (Payment, error) {
	if code == "" {
		return Payment{}, fmt.Errorf("fail payment %q: empty failure code", id)
	}
	return s.finish(ctx, id, s.failOp(id, code, errorReason, reason))
}

func (s *Store) finish(ctx context.Context, id string, op writeOp) (Payment, error) {
	r, err := s.write(ctx, op)
	if err == nil {
		err = r.err
	}
	if err != nil {
		return Payment{}, fmt.Errorf("finish payment %q: %w", id, err)
	}
	return r.p, nil
}

func (s *Store) completeOp(id, transactionID string) writeOp {
	return func(_ context.Context, tx *writeTx) (writeResult, error) {
		return finishOp(tx, id, tx.stmt(stmtComplete).QueryRow(transactionID, s.cfg.now().UnixNano(), id))
	}
}

func (s *Store) failOp(id, code, errorReason, reason string) writeOp {
	return func(_ context.Context, tx *writeTx) (writeResult, error) {
		return finishOp(tx, id, tx.stmt(stmtFail).QueryRow(code, reason, errorReason, s.cfg.now().UnixNano(), id))
	}
}

// finishOp reads the row of a conditional UPDATE ... RETURNING and, when the
// update changed nothing because the payment was no longer PENDING, the payment
// as it is.
func finishOp(tx *writeTx, id string, updated *sql.Row) (writeResult, error) {
	p, err := scanPayment(updated)
	if !errors.Is(err, sql.ErrNoRows) {
		return writeResult{p: p}, err
	}
	p, err = scanPayment(tx.stmt(stmtByIDWrite).QueryRow(id))
	if errors.Is(err, sql.ErrNoRows) {
		return writeResult{err: ErrNotFound}, nil // the request's outcome; the transaction is intact
	}
	return writeResult{p: p}, err
}

// writeResult is the outcome of one write request.
type writeResult struct {
	p       Payment
	created bool
	// err is the request's own failure (ErrNotFound); the transaction is intact.
	err error
}

// writeOp runs one write request inside a write transaction. An error means a
// statement failed and the transaction may be unusable.
type writeOp = groupcommit.Request[*writeTx, writeResult]
