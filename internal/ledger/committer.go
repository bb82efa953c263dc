package ledger

import (
	"context"
	"fmt"
	"runtime/debug"
	"slices"
)

// job is one write request waiting for the committer.
type job struct {
	ctx context.Context
	// run decides the request inside the batch transaction. An error is an
	// infrastructure failure; the request's own outcome goes in the result.
	run func(ctx context.Context, tx Tx) (result, error)
	// done receives exactly one result; its capacity of 1 means the
	// committer never waits for a caller that has gone.
	done chan result
}

// result is a write request's outcome.
type result struct {
	txn     Transaction
	account Account
	err     error
	// wrote reports new entries, which watchers must hear about.
	wrote bool
}

// safeRun runs the job, turning a panic (a bug) into an error for this
// request alone, so that the transaction is rolled back rather than left
// open and the committer keeps serving the others.
func (j *job) safeRun(ctx context.Context, tx Tx) (r result, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return j.run(ctx, tx)
}

// submit queues run for the committer and waits for its outcome. If ctx ends
// after the request was queued, the request may still commit; retrying with
// the same idempotency key returns its outcome.
func (l *Ledger) submit(ctx context.Context, run func(context.Context, Tx) (result, error)) (result, error) {
	j := &job{ctx: ctx, run: run, done: make(chan result, 1)}
	select {
	case <-l.closing:
		return result{}, ErrClosed
	default:
	}
	select {
	case l.queue <- j:
	case <-ctx.Done():
		return result{}, ctx.Err()
	case <-l.closing:
		return result{}, ErrClosed
	}
	select {
	case r := <-j.done:
		return r, r.err
	case <-ctx.Done():
		return result{}, ctx.Err()
	case <-l.stopped:
		// The committer answers every job it took before it stops, so a
		// job without an answer now was queued too late to run.
		select {
		case r := <-j.done:
			return r, r.err
		default:
			return result{}, ErrClosed
		}
	}
}

// commitLoop is the only writer. It takes whatever is queued, up to
// maxBatch, and commits it as one transaction: one fsync for the group.
func (l *Ledger) commitLoop() {
	defer close(l.stopped)
	batch := make([]*job, 0, l.cfg.maxBatch)
	for {
		select {
		case j := <-l.queue:
			batch = append(batch, j)
		case <-l.closing:
			l.drain(batch)
			return
		}
	fill:
		for len(batch) < l.cfg.maxBatch {
			select {
			case j := <-l.queue:
				batch = append(batch, j)
			default:
				break fill
			}
		}
		l.commit(batch)
		clear(batch)
		batch = batch[:0]
	}
}

// drain commits what is still queued when the ledger closes.
func (l *Ledger) drain(batch []*job) {
	for {
		select {
		case j := <-l.queue:
			batch = append(batch, j)
			if len(batch) < l.cfg.maxBatch {
				continue
			}
		default:
		}
		if len(batch) == 0 {
			return
		}
		l.commit(batch)
		clear(batch)
		batch = batch[:0]
	}
}

// commit runs a batch in one transaction, each request in its own
// savepoint, and answers every caller only after the commit. A refused
// request rolls back alone. An infrastructure error in one request aborts
// the transaction (an engine may already have rolled it back, so nothing
// else may run in it); that request gets the error and the others run again
// in a new transaction.
func (l *Ledger) commit(batch []*job) {
	ctx := context.Background()
	live := make([]*job, 0, len(batch))
	for _, j := range batch {
		if err := j.ctx.Err(); err != nil {
			j.done <- result{err: err}
			continue
		}
		live = append(live, j)
	}
	results := make([]result, len(live))
	for len(live) > 0 {
		failed := -1
		wrote := false
		err := l.store.Update(ctx, func(tx Tx) error {
			failed, wrote = -1, false
			for i, j := range live {
				r, err := j.safeRun(ctx, tx)
				if err != nil {
					failed = i
					return err
				}
				results[i] = r
				wrote = wrote || r.wrote
			}
			return nil
		})
		switch {
		case err == nil:
			for i, j := range live {
				j.done <- results[i]
			}
			if wrote {
				l.watchers.notify()
			}
			return
		case failed < 0:
			// Begin or commit failed: no request of the batch took effect.
			for _, j := range live {
				j.done <- result{err: fmt.Errorf("ledger: commit: %w", err)}
			}
			return
		default:
			live[failed].done <- result{err: fmt.Errorf("ledger: %w", err)}
			live = slices.Delete(live, failed, failed+1)
			results = results[:len(live)]
		}
	}
}
