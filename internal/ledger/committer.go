package ledger

import (
	"context"
	"errors"
	"fmt"

	"mtlsbank/internal/groupcommit"
)

// result is a write request's outcome.
type result struct {
	txn     Transaction
	account Account
	err     error
	// wrote reports new entries.
	wrote bool
}

// maxConflictRuns bounds how often a batch runs when its commit keeps finding
// rows that other transactions committed first (ErrConflict).
const maxConflictRuns = 3

// rerunningConflicts runs a batch again, in a new transaction, when its commit
// found a row that another transaction committed first (ErrConflict: a store
// that defers its writes to the commit learns of a duplicate key only then).
// Nothing of the failed run was written, and the new run's reads see the row
// that won: a request whose idempotency key it was now returns that key's
// outcome.
//
// A write refused before the commit with nobody to blame (ErrNotWritten) is
// marked for the committer to run the batch again in halves
// (groupcommit.ErrSplit), so that the request whose write it was fails alone.
func rerunningConflicts(update groupcommit.Run[Tx]) groupcommit.Run[Tx] {
	return func(ctx context.Context, batch func(Tx) error) error {
		var err error
		for range maxConflictRuns {
			if err = update(ctx, batch); !errors.Is(err, ErrConflict) {
				break
			}
		}
		if errors.Is(err, ErrNotWritten) {
			return fmt.Errorf("%w: %w", groupcommit.ErrSplit, err)
		}
		return err
	}
}

// newCommitter returns the group committer of the ledger's writes: it runs
// them in update transactions (the store's Update), many requests each, and wakes
// the watchers after every commit (a wake-up without new entries is harmless).
func newCommitter(update groupcommit.Run[Tx], cfg config, w *watchers) (*groupcommit.Committer[Tx, result], error) {
	c, err := groupcommit.New[Tx, result](rerunningConflicts(update),
		groupcommit.WithMaxBatch(cfg.maxBatch),
		groupcommit.WithQueueSize(cfg.queueSize),
		groupcommit.WithAfterCommit(w.notify),
		groupcommit.WithObserver(cfg.observe))
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	return c, nil
}

// submit queues run for the committer and waits until the transaction that
// ran it committed. run's error is an infrastructure failure (it aborts the
// transaction, and only this request fails); the request's own outcome,
// success or refusal, is in its result. If ctx ends after the request was
// queued, the request may still commit; retrying with the same idempotency key
// returns its outcome.
func (l *Ledger) submit(ctx context.Context, run func(context.Context, Tx) (result, error)) (result, error) {
	r, err := l.committer.Do(ctx, run)
	switch {
	case errors.Is(err, groupcommit.ErrClosed):
		return result{}, ErrClosed
	case err != nil && err == ctx.Err():
		return result{}, err
	case err != nil:
		return result{}, fmt.Errorf("ledger: %w", err)
	}
	return r, r.err
}
