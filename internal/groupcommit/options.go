package groupcommit

import (
	"fmt"
	"time"
)

// Option configures New.
type Option func(*config)

type config struct {
	maxBatch    int
	queueSize   int
	queueSet    bool // queueSize was given; otherwise 4 × maxBatch
	maxDelay    time.Duration
	afterCommit func()
	observe     Observer
}

// defaults is the one place where option defaults are set.
func defaults() config {
	return config{maxBatch: 128}
}

func (c *config) validate() error {
	switch {
	case c.maxBatch < 1:
		return fmt.Errorf("groupcommit: max batch %d is not positive", c.maxBatch)
	case c.queueSize < 0:
		return fmt.Errorf("groupcommit: queue size %d is negative", c.queueSize)
	case c.maxDelay < 0:
		return fmt.Errorf("groupcommit: max delay %s is negative", c.maxDelay)
	}
	if !c.queueSet {
		c.queueSize = 4 * c.maxBatch
	}
	return nil
}

// WithMaxBatch bounds how many requests share one transaction (default 128; 1
// turns grouping off: one transaction per request).
func WithMaxBatch(n int) Option { return func(c *config) { c.maxBatch = n } }

// WithQueueSize sets how many requests may wait for the committer before Do and
// Submit block (default 4 × the max batch; 0 hands each request over directly).
func WithQueueSize(n int) Option {
	return func(c *config) { c.queueSize, c.queueSet = n, true }
}

// WithMaxDelay lets a batch of fire-and-forget requests (Submit) wait up to d,
// from when its first request was queued, for more requests before it runs, so
// that a trickle of them shares fsyncs. A request whose caller waits (Do) ends the
// wait at once; so does a full batch or Close. The default, 0, never waits: a batch
// is what was queued while the previous one ran.
func WithMaxDelay(d time.Duration) Option { return func(c *config) { c.maxDelay = d } }

// WithAfterCommit calls fn after every transaction that committed, before its
// callers are answered, on the committer's goroutine (to wake readers of what was
// written, say). It must be quick and must not call the committer.
func WithAfterCommit(fn func()) Option { return func(c *config) { c.afterCommit = fn } }

// An Observer is told of a batch that ran: how many requests it had and how long it took
// (WithObserver).
type Observer func(requests int, took time.Duration)

// WithObserver calls fn after every batch that ran (a transaction was begun for it),
// once its requests are answered, on the committer's goroutine: how many requests it
// had, and how long from the start of its transaction to the last answer, retries of
// a failed request's companions and the commit's fsync included. It is what a caller
// of Do waited for once the committer took its request; a service exports it (the
// bank_commit_* metrics), since on a shared or slow disk it is what moves first. It
// must be quick and must not call the committer.
func WithObserver(fn Observer) Option {
	return func(c *config) { c.observe = fn }
}
