package ledger

import (
	"context"
	"errors"
	"iter"
	"time"
)

// Store is the transactional storage the ledger runs on. The ledger's rules
// live above it; an implementation only stores and retrieves, so that SQLite
// (package sqlitestore) and a future PostgreSQL store behave alike.
//
// The ledger sends all writes through one goroutine and groups them: Update
// runs many requests in one transaction, each in its own Savepoint.
type Store interface {
	// Update runs fn in a read-write transaction and commits it if fn returns
	// nil; otherwise it rolls back and returns fn's error. The commit is
	// durable when Update returns nil. A store that defers writes to the
	// commit (see Tx) returns an error that wraps ErrConflict when the commit
	// found a row that another transaction committed first; then nothing of
	// fn was written. It returns an error that wraps ErrNotWritten when the
	// database refused a write it sent at the commit, before committing: nothing
	// of fn was written either, and the ledger finds the request to blame by
	// running the batch again in halves.
	Update(ctx context.Context, fn func(Tx) error) error
	// View runs fn in a read-only transaction that sees one committed
	// snapshot. Views run concurrently with each other and with Update.
	View(ctx context.Context, fn func(ReadTx) error) error
}

// ErrDuplicateKey is what a Store returns when an insert violates a
// uniqueness constraint, whatever the engine's own error is.
var ErrDuplicateKey = errors.New("duplicate key")

// ErrConflict wraps what Update returns when a store that defers its writes
// found, only at commit, a row that another transaction had committed first (a
// duplicate key, so the error wraps ErrDuplicateKey too). The transaction is
// rolled back, nothing of it was written, and running fn again, whose reads
// now see that row, decides afresh: the ledger does so.
var ErrConflict = errors.New("conflict at commit")

// ErrNotWritten wraps what Update returns when the database refused a write that a
// store deferring its writes sent at the commit (a constraint or trigger the store
// does not check itself, say): the transaction was rolled back and nothing of it was
// written, but no request of the batch can be blamed. It is never returned when the
// commit itself may have taken effect.
var ErrNotWritten = errors.New("a deferred write was refused before the commit")

// ReadTx reads within a transaction. Lookups report a missing row with
// found == false, not with an error.
type ReadTx interface {
	// Account returns the account with the id, customer or system.
	Account(ctx context.Context, id AccountID) (a Account, found bool, err error)
	// SystemAccount returns the system account of the currency.
	SystemAccount(ctx context.Context, currency string) (a Account, found bool, err error)
	// Accounts returns the accounts that match q, ordered by id.
	Accounts(ctx context.Context, q AccountQuery) ([]Account, error)
	// Transaction returns the transaction with its entries.
	Transaction(ctx context.Context, id TransactionID) (t Transaction, found bool, err error)
	// EntriesAfter returns at most limit entries with a sequence greater
	// than after, in sequence order.
	EntriesAfter(ctx context.Context, after int64, limit int) ([]Entry, error)
	// TransactionsAfter returns at most limit transactions whose entries have
	// sequences greater than after, in sequence order, each with its entries
	// and the idempotency key it was recorded under.
	TransactionsAfter(ctx context.Context, after int64, limit int) ([]KeyedTransaction, error)
	// Idempotency returns the record of key in principal's scope.
	Idempotency(ctx context.Context, principal, key string) (r IdempotencyRecord, found bool, err error)
}

// Tx writes within a transaction. An engine that allows concurrent writers
// must lock what Account and SystemAccount return until the transaction ends
// (SELECT ... FOR UPDATE), because the ledger writes balances it read.
//
// A store may defer writes and send them to its database later in the
// transaction (all at the commit, say), answering the transaction's own reads
// from what it wrote. A write must then still refuse at once what the
// transaction itself contradicts (a key it already inserted:
// ErrDuplicateKey); a conflict with a row that another transaction committed
// may surface only from Update (ErrConflict).
type Tx interface {
	ReadTx
	// CreateAccount inserts a new account.
	CreateAccount(ctx context.Context, a Account) error
	// SetBalance sets an account's balance.
	SetBalance(ctx context.Context, id AccountID, balance int64) error
	// AllocateSequences reserves n consecutive entry sequence numbers and
	// returns the first. Sequences are gap-free: they are taken inside the
	// transaction (from a counter row), so a rollback returns them, and an
	// engine with concurrent writers must make the next allocation wait for
	// the commit of the previous one so that entries commit in order.
	AllocateSequences(ctx context.Context, n int) (first int64, err error)
	// CreateTransaction inserts a transaction and its entries, whose
	// sequences are consecutive (one AllocateSequences call).
	CreateTransaction(ctx context.Context, t Transaction) error
	// CreateIdempotency inserts a record; ErrDuplicateKey if the key exists.
	CreateIdempotency(ctx context.Context, r IdempotencyRecord) error
	// Savepoint runs fn inside a savepoint: if fn returns an error, what it
	// wrote is undone and the error returned, and the enclosing transaction
	// carries on.
	Savepoint(ctx context.Context, fn func(Tx) error) error
}

// Prefetcher is implemented by a Tx whose every read costs a round trip to a
// database server. Before a money-moving request the ledger offers what the
// request reads first, and then what the requests queued behind it will (most
// of them run in the same transaction); the Tx may fetch it all in one round
// trip, and the reads that follow are answered from what it fetched. It is a
// hint: the reads return the same with or without it.
type Prefetcher interface {
	// Prefetch takes from reads as many as it wants, the running request's
	// first; it must not block while it iterates.
	Prefetch(ctx context.Context, reads iter.Seq[Prefetch]) error
}

// Prefetch is what a request reads first.
type Prefetch struct {
	// Principal and Key name an idempotency record (ReadTx.Idempotency).
	Principal, Key string
	// Accounts are read as ReadTx.Account reads them (locked in a Tx).
	Accounts []AccountID
	// SystemCurrency, if not empty, names a system account
	// (ReadTx.SystemAccount).
	SystemCurrency string
}

// AccountQuery selects accounts for ReadTx.Accounts.
type AccountQuery struct {
	// Owner keeps only accounts of this owner, if not empty.
	Owner string
	// After keeps only ids greater than this one, if not empty.
	After AccountID
	// Limit is the maximum number of accounts returned; it must be positive.
	Limit int
	// System selects system accounts instead of customer accounts.
	System bool
}

// IdempotencyRecord is the stored outcome of a money-moving request, scoped
// to the principal that sent it. Exactly one of TransactionID and
// RefusalCode is set.
type IdempotencyRecord struct {
	// Principal is the SPIFFE ID of the caller; with Key, the record's key.
	Principal string
	// Key is the caller's idempotency key.
	Key string
	// Fingerprint is a hash of the operation and all its request fields.
	Fingerprint []byte
	// TransactionID is the transaction the request committed.
	TransactionID TransactionID
	// RefusalCode is the stable code of the refusal the request got.
	RefusalCode string
	// RefusalField is the field the refusal named.
	RefusalField string
	// RefusalDetail is the refusal's detail.
	RefusalDetail string
	// CreatedAt is when the request was decided.
	CreatedAt time.Time
}

// SingleReader is implemented by a Store on which a View that makes a single
// read costs more than the read itself: a PostgreSQL transaction costs two
// more round trips (BEGIN, ROLLBACK) than its one statement, and one statement
// sees one committed snapshot without it.
type SingleReader interface {
	// ViewRead runs fn, which makes one read (a second one is refused with an
	// error), on the newest committed data.
	ViewRead(ctx context.Context, fn func(ReadTx) error) error
}

// SoleWriter is implemented by a Store that can tell whether it is the only writer of
// its database, every write going through it (an SQLite file it holds an exclusive lock
// on). Only then may a Ledger cache accounts (WithAccountCache): a write by anyone else
// would leave the cache stale.
type SoleWriter interface {
	SoleWriter() bool
}

// CommitFeed is implemented by a Store that several processes share (the
// replicas of a service on one PostgreSQL database): it tells this process
// when any process may have committed entries, so that Watch on every replica
// delivers every entry without polling. The ledger only re-reads entries by
// sequence when woken; a spurious or coalesced wake-up is harmless, a missing
// one is not.
type CommitFeed interface {
	// FollowCommits calls wake after entries may have been committed, by any
	// process, until ctx ends; then it returns. It calls wake once as soon as
	// it follows (and again after any reconnection), since commits may have
	// been missed while it was not following. It handles its own reconnects;
	// wake must not block.
	FollowCommits(ctx context.Context, wake func())
}
