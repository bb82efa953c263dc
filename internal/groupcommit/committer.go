package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"time"
)

// ErrClosed is the answer to a request queued after Close.
var ErrClosed = errors.New("groupcommit: closed")

// ErrPanic wraps the error a request gets when it, or the transaction function
// while running its batch, panicked. A panic is a bug; it fails the request (or
// the batch) instead of the process, and the committer keeps serving.
var ErrPanic = errors.New("panic")

// ErrSplit marks what a Run returns when the transaction failed before it committed
// and no request was to blame (a store that sends the batch's writes only at its
// commit learns there that one of them is refused): nothing of the batch was written.
// The committer then runs the batch again as two halves, each in its own transaction,
// and so on, so that the request whose write fails ends up failing alone and the
// others commit. A Run must not mark a failure after which the transaction may have
// committed (a COMMIT that failed, a lost connection).
var ErrSplit = errors.New("groupcommit: the batch failed before its commit, with no request to blame")

// Run runs batch in one transaction on tx and commits it if batch returns nil.
// If batch returns an error, Run rolls the transaction back and returns an error
// (batch's, wrapped or not). A nil return means the transaction is durable.
//
// Run may call batch more than once, each time in a new transaction (to retry a
// serialization failure, say); only the last call counts. Run must not return nil
// without having called batch, nor after batch returned an error.
type Run[T any] func(ctx context.Context, batch func(tx T) error) error

// Request is one caller's work inside the batch transaction. Its error is an
// infrastructure failure that aborts the transaction: the committer rolls it
// back, answers this request with the error and runs the others again in a new
// transaction. A request's own outcome, a refusal included, belongs in R: a
// request that refuses must leave the transaction usable (roll back what it
// wrote, in a savepoint for example) and return its refusal with a nil error.
//
// ctx carries the values of the caller's context but not its cancellation: a
// caller that gives up must not abort its neighbours' transaction.
type Request[T, R any] func(ctx context.Context, tx T) (R, error)

// Committer groups requests into transactions. It is safe for concurrent use.
type Committer[T, R any] struct {
	run Run[T]
	cfg config

	queue   chan *request[T, R]
	mu      sync.RWMutex // held for reading while queueing; Close takes it to refuse
	closed  bool
	closing chan struct{} // closed by Close
	stopped chan struct{} // closed when the loop answered everything and returned
}

// request is one queued request and how to answer it.
type request[T, R any] struct {
	ctx context.Context
	fn  Request[T, R]
	// answer is called exactly once, on the committer's goroutine.
	answer func(R, error)
	// wait: a caller waits for this answer, so a linger ends when it arrives.
	wait bool
	// queued is when the request was queued (only when lingering).
	queued time.Time
}

// New returns a committer that runs batches with run and starts its goroutine.
// Close it to stop that goroutine.
func New[T, R any](run Run[T], opts ...Option) (*Committer[T, R], error) {
	if run == nil {
		return nil, errors.New("groupcommit: nil transaction function")
	}
	cfg := defaults()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Committer[T, R]{
		run:     run,
		cfg:     cfg,
		queue:   make(chan *request[T, R], cfg.queueSize),
		closing: make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go c.loop()
	return c, nil
}

// Do queues fn and waits until the transaction that ran it committed, then
// returns fn's result; or returns fn's error, the transaction's error if it could
// not begin or commit, ErrClosed after Close, or ctx's error.
//
// If ctx ends before fn's batch runs, fn never runs. If it ends later, Do returns
// ctx's error at once but fn may still commit: make the request idempotent (a key)
// so that a retry finds its outcome. A Do whose fn does nothing returns once every
// request queued before it is committed (or failed): a flush.
func (c *Committer[T, R]) Do(ctx context.Context, fn Request[T, R]) (R, error) {
	type answer struct {
		r   R
		err error
	}
	done := make(chan answer, 1) // the committer never waits for a caller that has gone
	req := &request[T, R]{ctx: ctx, fn: fn, wait: true,
		answer: func(r R, err error) { done <- answer{r, err} }}
	if err := c.enqueue(ctx, req); err != nil {
		var zero R
		return zero, err
	}
	select {
	case a := <-done:
		return a.r, a.err
	case <-ctx.Done():
		var zero R
		return zero, ctx.Err()
	}
}

// Submit queues fn and returns without waiting for it: fire and forget. done, if
// not nil, is called with fn's outcome once it is known (after the commit, or the
// failure), on the committer's goroutine: it must be quick and must not block,
// nor call the committer. The error is ErrClosed after Close, or ctx's error if
// ctx had ended or ended while the queue was full; then fn never runs and done is
// not called.
//
// As with Do, a request whose ctx has ended when its batch is taken does not run
// (done gets ctx's error): submit with context.WithoutCancel(ctx) a request that
// must run whatever becomes of its caller. With WithMaxDelay, submitted requests
// wait up to that long for company before their batch runs.
func (c *Committer[T, R]) Submit(ctx context.Context, fn Request[T, R], done func(R, error)) error {
	if done == nil {
		done = func(R, error) {}
	}
	return c.enqueue(ctx, &request[T, R]{ctx: ctx, fn: fn, answer: done})
}

// enqueue queues req unless the committer is closed. Holding mu for reading
// while sending means that Close, which takes it for writing, waits until every
// request that passed the check is in the queue, where the loop's drain finds it:
// nothing queued is ever left unanswered.
func (c *Committer[T, R]) enqueue(ctx context.Context, req *request[T, R]) error {
	if c.cfg.maxDelay > 0 {
		req.queued = time.Now()
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case c.queue <- req:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close refuses new requests with ErrClosed, runs those already queued, and
// returns once every one of them is answered. Calling it again waits likewise.
// It must not be called from a request or a done function.
func (c *Committer[T, R]) Close() {
	c.mu.Lock()
	first := !c.closed
	c.closed = true
	c.mu.Unlock()
	if first {
		close(c.closing)
	}
	<-c.stopped
}

// loop is the only caller of run. It takes what is queued, up to the maximum
// batch, and runs it in one transaction.
func (c *Committer[T, R]) loop() {
	defer close(c.stopped)
	batch := make([]*request[T, R], 0, c.cfg.maxBatch)
	for {
		select {
		case req := <-c.queue:
			batch = append(batch, req)
		case <-c.closing:
			c.drain(batch)
			return
		}
		batch = c.linger(c.fill(batch))
		c.commit(batch)
		clear(batch)
		batch = batch[:0]
	}
}

// fill adds what is queued now, up to the maximum batch, without waiting.
func (c *Committer[T, R]) fill(batch []*request[T, R]) []*request[T, R] {
	for len(batch) < c.cfg.maxBatch {
		select {
		case req := <-c.queue:
			batch = append(batch, req)
		default:
			return batch
		}
	}
	return batch
}

// maxYields bounds how often gather yields the processor before a batch runs.
const maxYields = 8

// linger waits for more requests to join the batch. A batch with a caller that
// waits is gathered (see gather); with a maximum delay set, a batch that only
// fire-and-forget requests make waits until the first of them has waited the
// maximum delay, the batch is full, a request whose caller waits arrives, or the
// committer closes.
func (c *Committer[T, R]) linger(batch []*request[T, R]) []*request[T, R] {
	if len(batch) >= c.cfg.maxBatch {
		return batch
	}
	if slices.ContainsFunc(batch, func(r *request[T, R]) bool { return r.wait }) {
		return c.gather(batch)
	}
	if c.cfg.maxDelay <= 0 {
		return batch
	}
	wait := time.Until(batch[0].queued.Add(c.cfg.maxDelay))
	if wait <= 0 {
		return batch
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for len(batch) < c.cfg.maxBatch {
		select {
		case req := <-c.queue:
			batch = append(batch, req)
			if req.wait {
				return c.fill(batch)
			}
		case <-t.C:
			return batch
		case <-c.closing:
			return c.fill(batch)
		}
	}
	return batch
}

// gather lets the goroutines that are ready to run queue their requests before a
// batch with a waiting caller runs, without a timer: it yields the processor and
// takes what was queued meanwhile, again while a yield brings more (at most
// maxYields times). Callers often arrive together, woken by the same event (the
// commit of another committer's batch, say, whose callers each now hand their
// audit record over), and the first of them would otherwise wake the committer
// into a batch of one while the others queue for the next: two commits and two
// fsyncs where one does. A lone caller costs one yield that finds nothing.
func (c *Committer[T, R]) gather(batch []*request[T, R]) []*request[T, R] {
	for range maxYields {
		n := len(batch)
		runtime.Gosched()
		if batch = c.fill(batch); len(batch) == n || len(batch) >= c.cfg.maxBatch {
			return batch
		}
	}
	return batch
}

// drain runs what is still queued once Close was called. Close no longer lets
// anything in, so the queue only empties.
func (c *Committer[T, R]) drain(batch []*request[T, R]) {
	for {
		batch = c.fill(batch)
		if len(batch) == 0 {
			return
		}
		c.commit(batch)
		clear(batch)
		batch = batch[:0]
	}
}

// commit runs a batch and answers every request of it, each after the commit
// that made it durable. A request whose caller's ctx has ended is answered with
// that error and not run. A request that fails (or panics) aborts the
// transaction: it gets the error alone, and the others run again in a new
// transaction. A transaction that fails before its commit with nobody to blame
// (ErrSplit) runs again as two halves. A transaction that fails otherwise to
// begin or commit fails every request that was in it: none of them took effect.
func (c *Committer[T, R]) commit(batch []*request[T, R]) {
	var zero R
	live := make([]*request[T, R], 0, len(batch))
	for _, req := range batch {
		if err := req.ctx.Err(); err != nil {
			req.answer(zero, err)
			continue
		}
		live = append(live, req)
	}
	if len(live) > 0 && c.cfg.observe != nil {
		defer func(n int, start time.Time) { c.cfg.observe(n, time.Since(start)) }(len(live), time.Now())
	}
	c.settle(live)
}

// settle runs live, the requests of one batch, to their answers: in one transaction,
// again without a request that failed, or, when the transaction failed with nobody to
// blame (ErrSplit), as two halves.
func (c *Committer[T, R]) settle(live []*request[T, R]) {
	var zero R
	results := make([]R, len(live))
	for len(live) > 0 {
		failed, err := c.runBatch(live, results)
		switch {
		case err == nil:
			if c.cfg.afterCommit != nil {
				c.cfg.afterCommit()
			}
			for i, req := range live {
				req.answer(results[i], nil)
			}
			return
		case failed < 0 && len(live) > 1 && errors.Is(err, ErrSplit):
			half := len(live) / 2
			c.settle(live[:half])
			c.settle(live[half:])
			return
		case failed < 0:
			for _, req := range live {
				req.answer(zero, err)
			}
			return
		default:
			live[failed].answer(zero, err)
			live = slices.Delete(live, failed, failed+1)
			results = results[:len(live)]
			clear(results)
		}
	}
}

// runBatch runs live in one transaction, filling results. On error, failed is
// the index of the request that failed, or -1 if the transaction as a whole did
// (begin, commit, or the transaction function itself).
func (c *Committer[T, R]) runBatch(live []*request[T, R], results []R) (failed int, err error) {
	failed = -1
	ran := false
	defer func() {
		if p := recover(); p != nil {
			failed, err = -1, panicError(p)
		}
	}()
	err = c.run(context.Background(), func(tx T) error {
		ran = true
		failed = -1
		for i, req := range live {
			r, err := req.safeRun(tx)
			if err != nil {
				failed = i
				return err
			}
			results[i] = r
		}
		return nil
	})
	switch {
	case err == nil && !ran:
		return -1, errors.New("groupcommit: the transaction function returned without running the batch")
	case err == nil:
		return -1, nil
	}
	return failed, err
}

// safeRun runs the request, turning a panic into an error for this request
// alone, so that the transaction is rolled back rather than left open and the
// committer keeps serving the others.
func (r *request[T, R]) safeRun(tx T) (res R, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = panicError(p)
		}
	}()
	return r.fn(context.WithoutCancel(r.ctx), tx)
}

func panicError(p any) error {
	return fmt.Errorf("%w: %v\n%s", ErrPanic, p, debug.Stack())
}
