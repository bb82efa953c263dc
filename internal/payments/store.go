package payments

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors of the stores.
var (
	// ErrNotFound means no payment has the id.
	ErrNotFound = errors.New("payment not found")
	// ErrClosed means the store was closed.
	ErrClosed = errors.New("payments store closed")
)

// Store is the transactional storage of payment orders. The rules live above it
// (Orders); a Store only stores and retrieves, so that SQLite (package sqlitestore)
// and PostgreSQL (package pgstore) behave alike. The conformance suite in package
// paymentstest is what a Store promises.
type Store interface {
	// Update runs fn in a read-write transaction and commits it if fn returns nil;
	// otherwise it rolls back and returns fn's error. The commit is durable when
	// Update returns nil. fn may run more than once (a store that groups
	// transactions runs it again when a neighbour's failure rolled the group back),
	// so it sets its results afresh each time. Its own outcome (a payment not
	// found, say) is a result, not an error: an error means the transaction failed.
	Update(ctx context.Context, fn func(Tx) error) error
	// Get returns the payment with the id, or ErrNotFound.
	Get(ctx context.Context, id string) (Payment, error)
	// List returns the payments q selects, in creation (Seq) order.
	List(ctx context.Context, q Query) ([]Payment, error)
	// Ping checks that the database answers a query (a readiness check).
	Ping(ctx context.Context) error
	// Close refuses new writes with ErrClosed, finishes those under way and
	// releases the database. Calling it again returns the first call's result.
	Close() error
}

// Tx reads and writes payments within a transaction. Lookups report a missing row
// with found == false, not with an error.
type Tx interface {
	// LockCreator holds, until the transaction ends, a lock that every transaction
	// recording an order of creator in currency under a RollingLimit takes first, in
	// every process that shares the database: the sum of the creator's orders and
	// the insert it allows are then one step. An engine whose write transactions
	// are serialised already (SQLite) does nothing.
	LockCreator(ctx context.Context, creator, currency string) error
	// Usage sums MinorUnits of creator's payments in currency that are not FAILED
	// and were created after since.
	Usage(ctx context.Context, creator, currency string, since time.Time) (int64, error)
	// Insert records p with every field as given but Seq, unless p.CreatedBy
	// already recorded a payment under p.IdempotencyKey: then it inserts nothing
	// and inserted is false. Any other violated constraint is an error.
	Insert(ctx context.Context, p Payment) (seq int64, inserted bool, err error)
	// ByKey returns the payment creator recorded under key.
	ByKey(ctx context.Context, creator, key string) (p Payment, found bool, err error)
	// ByID returns the payment with the id.
	ByID(ctx context.Context, id string) (p Payment, found bool, err error)
	// Finish records o on the payment with the id if it is PENDING (o.At its update
	// time) and clears its lease; changed is false (and nothing written) if it is
	// not PENDING or not there. It reads nothing back: the payment as changed is the
	// one that was PENDING with o recorded (Payment.finished), since no other column
	// of a payment ever changes after Insert.
	Finish(ctx context.Context, id string, o Outcome) (changed bool, err error)
	// Lease gives the lease of the PENDING payment with the id to owner until
	// until, if its lease has expired at now (or is owner's already), and returns
	// it as changed; changed is false (and nothing written) otherwise.
	Lease(ctx context.Context, id, owner string, until, now time.Time) (p Payment, changed bool, err error)
	// Release clears the lease of the payment with the id if owner holds it.
	Release(ctx context.Context, id, owner string) error
}

// Outcome is how a payment finished.
type Outcome struct {
	// Status is StatusCompleted or StatusFailed.
	Status Status
	// TransactionID is the ledger transaction of a COMPLETED payment.
	TransactionID string
	// FailureCode, FailureReason and FailureErrorReason say why a FAILED payment
	// failed (see Payment).
	FailureCode, FailureReason, FailureErrorReason string
	// At is when it finished: the payment's UpdateTime.
	At time.Time
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
