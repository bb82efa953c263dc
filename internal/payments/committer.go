package payments

import (
	"context"
	"fmt"
	"runtime/debug"
	"slices"
)

// Group commit: the store's writes (recording a payment, recording its outcome)
// are queued to one goroutine, which runs whatever is waiting in one transaction
// and one fsync, and answers each caller only after that commit. The model is
// internal/ledger's committer.

// writeReq is one write request waiting for the committer.
type writeReq struct {
	ctx context.Context
	// op runs the request inside the batch transaction; the request's own
	// outcome (ErrNotFound) goes in its result.
	op writeOp
	// done receives exactly one answer; its capacity of 1 means the committer
	// never waits for a caller that has gone.
	done chan writeAnswer
}

type writeAnswer struct {
	r   writeResult
	err error
}

// safeOp runs the request, turning a panic (a bug) into an error for this
// request alone, so that the transaction is rolled back rather than left open
// and the committer keeps serving the others.
func (w *writeReq) safeOp(tx *writeTx) (r writeResult, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return w.op(tx)
}

// write queues op for the committer and waits until the transaction that ran it
// committed (the write is then durable) or failed. If ctx ends after the request
// was queued the write may still commit: a PENDING payment recorded that way is
// finished by recovery, and a retry with the same idempotency key finds it.
func (s *Store) write(ctx context.Context, op writeOp) (writeResult, error) {
	req := &writeReq{ctx: ctx, op: op, done: make(chan writeAnswer, 1)}
	select {
	case <-s.closing:
		return writeResult{}, ErrClosed
	default:
	}
	select {
	case s.queue <- req:
	case <-ctx.Done():
		return writeResult{}, ctx.Err()
	case <-s.closing:
		return writeResult{}, ErrClosed
	}
	select {
	case a := <-req.done:
		return a.r, a.err
	case <-ctx.Done():
		return writeResult{}, ctx.Err()
	case <-s.stopped:
		// The committer answers every request it took before it stops, so a
		// request without an answer now was queued too late to run.
		select {
		case a := <-req.done:
			return a.r, a.err
		default:
			return writeResult{}, ErrClosed
		}
	}
}

// commitLoop is the only writer. It takes whatever is queued, up to maxBatch,
// and commits it as one transaction.
func (s *Store) commitLoop() {
	defer close(s.stopped)
	batch := make([]*writeReq, 0, s.cfg.maxBatch)
	for {
		select {
		case req := <-s.queue:
			batch = append(batch, req)
		case <-s.closing:
			s.drain(batch)
			return
		}
		batch = s.fill(batch)
		s.commit(batch)
		clear(batch)
		batch = batch[:0]
	}
}

// fill adds what is queued now to batch, up to maxBatch, without waiting.
func (s *Store) fill(batch []*writeReq) []*writeReq {
	for len(batch) < s.cfg.maxBatch {
		select {
		case req := <-s.queue:
			batch = append(batch, req)
		default:
			return batch
		}
	}
	return batch
}

// drain commits what is still queued when the store closes.
func (s *Store) drain(batch []*writeReq) {
	for {
		batch = s.fill(batch)
		if len(batch) == 0 {
			return
		}
		s.commit(batch)
		clear(batch)
		batch = batch[:0]
	}
}

// commit runs a batch in one transaction and answers every caller after the
// commit. A request whose statement fails gets the error alone: the transaction
// is rolled back (SQLite may have rolled it back already, so nothing else may
// run in it) and the others run again in a new one. A failed begin or commit
// fails every request of the batch: none of them took effect.
func (s *Store) commit(batch []*writeReq) {
	live := make([]*writeReq, 0, len(batch))
	for _, req := range batch {
		if err := req.ctx.Err(); err != nil {
			req.done <- writeAnswer{err: err} // the caller gave up before anything was written
			continue
		}
		live = append(live, req)
	}
	results := make([]writeResult, len(live))
	for len(live) > 0 {
		failed, err := s.runBatch(live, results)
		switch {
		case err == nil:
			for i, req := range live {
				req.done <- writeAnswer{r: results[i]}
			}
			return
		case failed < 0:
			for _, req := range live {
				req.done <- writeAnswer{err: err}
			}
			return
		default:
			live[failed].done <- writeAnswer{err: err}
			live = slices.Delete(live, failed, failed+1)
			results = results[:len(live)]
		}
	}
}

// runBatch runs live in one transaction, filling results. On error, failed is
// the index of the request whose statement failed, or -1 if begin or commit did.
func (s *Store) runBatch(live []*writeReq, results []writeResult) (failed int, err error) {
	tx, err := s.w.BeginTx(context.Background(), nil) // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		return -1, fmt.Errorf("begin: %w", err)
	}
	wtx := &writeTx{tx: tx, stmts: s.ws}
	for i, req := range live {
		r, err := req.safeOp(wtx)
		if err != nil {
			_ = tx.Rollback() // the request's error is the one that matters
			return i, err
		}
		results[i] = r
	}
	if err := tx.Commit(); err != nil {
		// SQLite may leave a transaction open after a failed COMMIT; the next
		// batch must not run inside it. (An error here means none was open.)
		_, _ = s.w.ExecContext(context.Background(), "ROLLBACK")
		return -1, fmt.Errorf("commit: %w", err)
	}
	return -1, nil
}
