package auditlog

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"mtlsbank/internal/groupcommit"
)

// Defaults of Open, also the defaults of the services' flags.
const (
	// DefaultFlushInterval bounds how long a record that does not wait (an allowed call
	// without side effects) may stay in memory before its batch is written and synced:
	// what a crash can lose.
	DefaultFlushInterval = 100 * time.Millisecond
	// DefaultCheckpointInterval is how often a checkpoint is signed while records come.
	DefaultCheckpointInterval = 5 * time.Second
	// DefaultCheckpointRecords signs a checkpoint after that many records, sooner than
	// the interval under load.
	DefaultCheckpointRecords = 10000
	// DefaultMaxFileSize is the size past which the audit file is rotated.
	DefaultMaxFileSize = 64 << 20
	// DefaultQueueSize is how many records may wait for the writer. Past three quarters
	// of it, new calls are refused (Admit); the rest is room for the calls already
	// admitted.
	DefaultQueueSize = 8192
	// DefaultAdmitWait is how long a new call waits for the writer to catch up when the
	// queue is three quarters full, before it is refused: a short burst (or a writer
	// starved of CPU by the callers themselves) slows calls down rather than failing them.
	DefaultAdmitWait = time.Second
	// maxBatch bounds the records of one write and fsync.
	maxBatch = 1024
)

// Option configures Open.
type Option func(*config)

type config struct {
	flushInterval      time.Duration
	checkpointInterval time.Duration
	checkpointRecords  int
	maxFileSize        int64
	queueSize          int
	admitWait          time.Duration
	checkpointPath     string
	logger             *slog.Logger
	sync               func(*os.File) error
	readOnly           func(method string) bool
	now                func() time.Time
	observe            groupcommit.Observer
}

// defaults is the one place where option defaults are set.
func defaults() config {
	return config{
		flushInterval:      DefaultFlushInterval,
		checkpointInterval: DefaultCheckpointInterval,
		checkpointRecords:  DefaultCheckpointRecords,
		maxFileSize:        DefaultMaxFileSize,
		queueSize:          DefaultQueueSize,
		admitWait:          DefaultAdmitWait,
		logger:             slog.New(slog.DiscardHandler),
		sync:               (*os.File).Sync,
		readOnly:           NoSideEffects,
		now:                time.Now,
	}
}

func (c *config) validate() error {
	switch {
	case c.flushInterval < 0:
		return fmt.Errorf("audit flush interval %s is negative", c.flushInterval)
	case c.checkpointInterval <= 0:
		return fmt.Errorf("audit checkpoint interval %s is not positive", c.checkpointInterval)
	case c.checkpointRecords < 1:
		return fmt.Errorf("audit checkpoint records %d is not positive", c.checkpointRecords)
	case c.maxFileSize < 1<<10:
		return fmt.Errorf("audit max file size %d is below 1KiB", c.maxFileSize)
	case c.queueSize < 4:
		return fmt.Errorf("audit queue size %d is below 4", c.queueSize)
	}
	return nil
}

// WithFlushInterval bounds how long a record that does not wait for durability stays
// in memory (default DefaultFlushInterval; 0 writes each batch at once).
func WithFlushInterval(d time.Duration) Option { return func(c *config) { c.flushInterval = d } }

// WithCheckpoints signs a checkpoint every interval while records come, and after n
// records (defaults DefaultCheckpointInterval, DefaultCheckpointRecords). Close signs a
// last one.
func WithCheckpoints(interval time.Duration, n int) Option {
	return func(c *config) { c.checkpointInterval, c.checkpointRecords = interval, n }
}

// WithMaxFileSize rotates the audit file once it holds n bytes (default
// DefaultMaxFileSize); the chain continues in the next file.
func WithMaxFileSize(n int64) Option { return func(c *config) { c.maxFileSize = n } }

// WithAdmitWait sets how long Admit waits for room before it refuses a call (default
// DefaultAdmitWait; 0: refuse at once).
func WithAdmitWait(d time.Duration) Option { return func(c *config) { c.admitWait = d } }

// WithQueueSize sets how many records may wait for the writer (default DefaultQueueSize).
func WithQueueSize(n int) Option { return func(c *config) { c.queueSize = n } }

// WithCheckpointFile sets where the latest checkpoint is kept outside the audit file
// (default: the audit file's name with .checkpoint instead of .jsonl).
func WithCheckpointFile(path string) Option { return func(c *config) { c.checkpointPath = path } }

// WithLogger logs what the sink does besides writing records: the chain recovered at
// Open (a torn last line cut off), each checkpoint, failures.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithSyncer replaces the fsync of the audit file (tests: a syncer that blocks shows
// that an answer waits for it).
func WithSyncer(fn func(*os.File) error) Option { return func(c *config) { c.sync = fn } }

// WithReadOnly replaces the classifier of methods whose allowed calls do not wait for
// their record to be durable (default NoSideEffects).
func WithReadOnly(fn func(method string) bool) Option { return func(c *config) { c.readOnly = fn } }

// WithClock replaces time.Now for checkpoint times and intervals.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithCommitObserver has fn told, after each batch of records was written and synced,
// how many records it had and how long formatting, writing and syncing them took
// (groupcommit.WithObserver). fn runs on the writer's goroutine and must be quick.
func WithCommitObserver(fn groupcommit.Observer) Option {
	return func(c *config) { c.observe = fn }
}
