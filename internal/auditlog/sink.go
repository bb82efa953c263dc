package auditlog

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"mtlsbank/internal/groupcommit"
	"mtlsbank/internal/pki"
)

// Errors of Sink.Admit and Sink.Write.
var (
	// ErrBusy: the writer is behind by more than three quarters of the queue; the call
	// is refused before it runs, so nothing happens that is not recorded.
	ErrBusy = errors.New("audit: queue full")
	// ErrBroken: writing or syncing the audit file failed; no record is accepted until
	// the service restarts (after the disk is fixed).
	ErrBroken = errors.New("audit: trail broken")
	// ErrClosed: the sink was closed.
	ErrClosed = errors.New("audit: closed")
	// ErrBehindCheckpoint: at Open, the audit file ends before the record the checkpoint
	// file names: its tail was cut off, or it is not the file the checkpoint is of.
	ErrBehindCheckpoint = errors.New("audit: the audit file ends before its checkpoint")
)

// Sink is the audit trail of one service: an append-only file of chained JSON lines
// written by one goroutine in group commits. It is safe for concurrent use.
type Sink struct {
	service string
	key     crypto.Signer
	keyID   string
	cfg     config
	path    string
	lock    *os.File
	commit  *groupcommit.Committer[*batch, struct{}]

	// The writer's state: touched by Open, then only by run (the committer's goroutine)
	// and by Close once the committer has stopped.
	file            *os.File
	size            int64
	firstSeq        uint64 // seq of the current file's first line (0: empty file)
	seq             uint64 // last line written
	head            [hashSize]byte
	sinceCheckpoint int
	batch           batch

	pending atomic.Int64 // records handed over and not yet written
	// room is closed (and replaced) each time the writer has written a batch: Admit
	// waits on it when the queue is three quarters full.
	roomMu        sync.Mutex
	room          chan struct{}
	written       atomic.Uint64
	refused       atomic.Uint64
	queueWaits    atomic.Uint64
	failures      atomic.Uint64
	checkpointSeq atomic.Uint64
	brokenErr     atomic.Pointer[error]
	closed        atomic.Bool

	stopTicker chan struct{}
	tickerDone chan struct{}
	closeOnce  sync.Once
	closeErr   error
}

// batch is the group-commit transaction: the lines of one write, chained from the
// sink's state.
type batch struct {
	buf        []byte
	seq        uint64
	head       [hashSize]byte
	records    int
	checkpoint bool // a checkpoint was asked for
	s          *Sink
}

// add formats r as the next line of the batch.
func (b *batch) add(r *Record) {
	start := len(b.buf)
	b.seq++
	b.buf = appendCall(b.buf, r, b.s.service, b.seq, &b.head)
	b.head = lineHash(b.buf[start:])
	b.buf = append(b.buf, '\n')
	b.records++
}

// Open opens (or creates) the audit file at path for service, signing checkpoints with
// key (Ed25519 or ECDSA P-256, LoadSigningKey). It recovers the chain from the file's
// tail, or from the newest rotated file when the file is empty: a torn last line (a
// crash in the middle of a write) is cut off, the cut is logged, and the chain goes on
// from the last complete line. It refuses a file another process has open for writing,
// a last line that is not a record, and a file that ends before the checkpoint file's
// record (ErrBehindCheckpoint).
func Open(path, service string, key crypto.Signer, opts ...Option) (_ *Sink, err error) {
	cfg := defaults()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if key == nil {
		return nil, errors.New("audit: no signing key")
	}
	if err := checkKeyType(key.Public()); err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	if cfg.checkpointPath == "" {
		cfg.checkpointPath = CheckpointPath(path)
	}
	s := &Sink{service: service, key: key, cfg: cfg, path: path,
		stopTicker: make(chan struct{}), tickerDone: make(chan struct{})}
	s.batch.s = s
	if s.keyID, err = KeyID(key.Public()); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if s.lock, err = lockFile(path + ".lock"); err != nil {
		return nil, fmt.Errorf("audit file %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			s.closeFiles()
		}
	}()
	if err := s.recover(); err != nil {
		return nil, fmt.Errorf("audit file %s: %w", path, err)
	}
	s.commit, err = groupcommit.New[*batch, struct{}](s.run,
		groupcommit.WithMaxBatch(maxBatch),
		groupcommit.WithQueueSize(cfg.queueSize),
		groupcommit.WithMaxDelay(cfg.flushInterval),
		groupcommit.WithObserver(cfg.observe))
	if err != nil {
		return nil, err
	}
	go s.tick()
	return s, nil
}

// CheckpointPath is the default checkpoint file of the audit file path: its name with
// .checkpoint in place of its extension.
func CheckpointPath(path string) string {
	return trimExt(path) + ".checkpoint"
}

func trimExt(path string) string { return path[:len(path)-len(filepath.Ext(path))] }

// Admit says whether a new call may start: nil, or ErrBusy when the writer is behind
// (counted in Stats.Refused), ErrBroken or ErrClosed. A call refused here must not run:
// the record of a call that ran is never dropped.
func (s *Sink) Admit() error {
	if err := s.broken(); err != nil {
		s.refused.Add(1)
		return err
	}
	if s.closed.Load() {
		return ErrClosed
	}
	if s.pending.Load() >= int64(s.cfg.queueSize)*3/4 {
		return s.admitWhenRoom()
	}
	return nil
}

// admitWhenRoom waits, at most admitWait, until the writer has brought the queue below
// three quarters; a call that still finds no room is refused (ErrBusy).
func (s *Sink) admitWhenRoom() error {
	limit := int64(s.cfg.queueSize) * 3 / 4
	timer := time.NewTimer(s.cfg.admitWait)
	defer timer.Stop()
	for {
		room := s.roomSignal()
		if s.pending.Load() < limit {
			return nil
		}
		if err := s.broken(); err != nil {
			s.refused.Add(1)
			return err
		}
		if s.closed.Load() {
			return ErrClosed
		}
		select {
		case <-room:
		case <-timer.C:
			s.refused.Add(1)
			return ErrBusy
		}
	}
}

// roomSignal returns the channel the writer closes after its next batch.
func (s *Sink) roomSignal() <-chan struct{} {
	s.roomMu.Lock()
	defer s.roomMu.Unlock()
	if s.room == nil {
		s.room = make(chan struct{})
	}
	return s.room
}

// signalRoom wakes the calls waiting in Admit.
func (s *Sink) signalRoom() {
	s.roomMu.Lock()
	defer s.roomMu.Unlock()
	if s.room != nil {
		close(s.room)
		s.room = nil
	}
}

// Write hands r to the writer; the sink owns r from then on. A denial, or an allowed
// call of a method with side effects (WithReadOnly), returns once r is durable: written
// and synced. Any other record is durable within the flush interval and Write returns at
// once. When the queue is full Write waits for room (Stats.QueueWaits): it never drops
// a record. The error is ErrBroken (r may not be durable) or ErrClosed.
func (s *Sink) Write(r *Record) error {
	if err := s.broken(); err != nil {
		return err
	}
	if s.pending.Add(1) > int64(s.cfg.queueSize) {
		s.queueWaits.Add(1)
	}
	fn := func(_ context.Context, b *batch) (struct{}, error) {
		b.add(r)
		return struct{}{}, nil
	}
	// context.Background: the record is written whatever becomes of the caller.
	var err error
	if !r.Allowed || !s.cfg.readOnly(r.Method) {
		_, err = s.commit.Do(context.Background(), fn)
	} else {
		err = s.commit.Submit(context.Background(), fn, nil)
	}
	if errors.Is(err, groupcommit.ErrClosed) {
		s.pending.Add(-1)
		return ErrClosed
	}
	return err
}

// Flush returns once every record handed over before it is durable.
func (s *Sink) Flush() error {
	_, err := s.commit.Do(context.Background(), func(context.Context, *batch) (struct{}, error) { return struct{}{}, nil })
	return err
}

// Checkpoint signs a checkpoint now if records were written since the last one, and
// returns once it is durable and published.
func (s *Sink) Checkpoint() error {
	_, err := s.commit.Do(context.Background(), func(_ context.Context, b *batch) (struct{}, error) {
		b.checkpoint = true
		return struct{}{}, nil
	})
	return err
}

// Stats are the sink's counters, for metrics.
type Stats struct {
	Written       uint64 // records written and synced
	Pending       int64  // records handed over, not yet written
	Refused       uint64 // calls refused by Admit (writer behind, or trail broken)
	QueueWaits    uint64 // Writes that found the queue full and waited
	Failures      uint64 // failed writes or syncs of the audit file
	CheckpointSeq uint64 // position of the latest checkpoint
}

// Stats returns the counters.
func (s *Sink) Stats() Stats {
	return Stats{
		Written: s.written.Load(), Pending: s.pending.Load(), Refused: s.refused.Load(),
		QueueWaits: s.queueWaits.Load(), Failures: s.failures.Load(), CheckpointSeq: s.checkpointSeq.Load(),
	}
}

// Close writes what is queued, signs a last checkpoint, and closes the file. Records
// handed over after Close get ErrClosed.
func (s *Sink) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.signalRoom()
		close(s.stopTicker)
		<-s.tickerDone
		err := s.Checkpoint()
		s.commit.Close()
		if errors.Is(err, groupcommit.ErrClosed) {
			err = nil
		}
		s.closeErr = errors.Join(err, s.closeFiles())
	})
	return s.closeErr
}

func (s *Sink) closeFiles() error {
	var errs []error
	if s.file != nil {
		errs = append(errs, s.file.Close())
		s.file = nil
	}
	if s.lock != nil {
		errs = append(errs, unlockFile(s.lock))
		s.lock = nil
	}
	return errors.Join(errs...)
}

// tick asks for a checkpoint every interval; run signs one only if records came.
func (s *Sink) tick() {
	defer close(s.tickerDone)
	t := time.NewTicker(s.cfg.checkpointInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = s.commit.Submit(context.Background(), func(_ context.Context, b *batch) (struct{}, error) {
				b.checkpoint = true
				return struct{}{}, nil
			}, nil)
		case <-s.stopTicker:
			return
		}
	}
}

func (s *Sink) broken() error {
	if p := s.brokenErr.Load(); p != nil {
		return *p
	}
	return nil
}

// run is the group-commit transaction: it formats the batch, appends it with one write
// and makes it durable with one sync, rotating the file first if it is full.
func (s *Sink) run(_ context.Context, fn func(*batch) error) error {
	if err := s.broken(); err != nil {
		return err
	}
	b := &s.batch
	b.buf, b.seq, b.head, b.records, b.checkpoint = b.buf[:0], s.seq, s.head, 0, false
	if err := fn(b); err != nil {
		return err
	}
	records := b.records
	var checkpoint []byte
	if s.sinceCheckpoint+records > 0 && (b.checkpoint || s.sinceCheckpoint+records >= s.cfg.checkpointRecords) {
		start := len(b.buf)
		if err := s.appendCheckpoint(b); err != nil {
			return s.fail(err, b.buf)
		}
		checkpoint = b.buf[start : len(b.buf)-1]
	}
	if len(b.buf) == 0 {
		return nil
	}
	if s.size >= s.cfg.maxFileSize {
		if err := s.rotate(); err != nil {
			return s.fail(err, b.buf)
		}
	}
	n, err := s.file.Write(b.buf)
	s.size += int64(n)
	if err != nil {
		return s.fail(err, b.buf)
	}
	if err := s.cfg.sync(s.file); err != nil {
		return s.fail(fmt.Errorf("sync: %w", err), b.buf)
	}
	if s.firstSeq == 0 {
		s.firstSeq = s.seq + 1
	}
	s.seq, s.head = b.seq, b.head
	s.sinceCheckpoint += records
	s.pending.Add(-int64(records))
	s.written.Add(uint64(records))
	s.signalRoom()
	if checkpoint != nil {
		s.sinceCheckpoint = 0
		s.publish(checkpoint, b.seq)
	}
	return nil
}

// appendCheckpoint appends a signed checkpoint to the batch.
func (s *Sink) appendCheckpoint(b *batch) error {
	seq, now := b.seq+1, s.cfg.now().UTC()
	var ts, prev []byte
	ts = now.AppendFormat(ts, time.RFC3339Nano)
	prev = appendHex(prev, b.head[:])
	sig, err := sign(s.key, checkpointMessage(s.service, seq, string(ts), string(prev)))
	if err != nil {
		return fmt.Errorf("sign checkpoint: %w", err)
	}
	start := len(b.buf)
	b.buf = appendCheckpoint(b.buf, s.service, seq, now, s.keyID, sig, &b.head)
	b.seq, b.head = seq, lineHash(b.buf[start:])
	b.buf = append(b.buf, '\n')
	return nil
}

// publish keeps the checkpoint line, durable in the audit file, outside it too: in the
// checkpoint file, replaced atomically, and in the service log. A failure here is
// logged: the trail itself is intact.
func (s *Sink) publish(line []byte, seq uint64) {
	s.checkpointSeq.Store(seq)
	data := append(append([]byte(nil), line...), '\n')
	if err := pki.WriteFileAtomic(s.cfg.checkpointPath, data, 0o600); err != nil {
		s.cfg.logger.Error("audit checkpoint file not written", "file", s.cfg.checkpointPath, "err", err)
	}
	s.cfg.logger.Info("audit checkpoint", "seq", seq, "file", s.path, "checkpoint", string(line))
}

// fail marks the trail broken: every waiting caller, and every later one, gets the
// error. The lines that were not written go to the log, so that nothing is lost
// silently; after a restart the chain goes on from the last complete line.
func (s *Sink) fail(err error, lines []byte) error {
	err = fmt.Errorf("%w: %s: %w", ErrBroken, s.path, err)
	s.brokenErr.CompareAndSwap(nil, &err)
	s.failures.Add(1)
	s.cfg.logger.Error("audit records not durable", "err", err, "records", string(lines))
	s.signalRoom() // calls waiting in Admit learn it now
	return err
}

// rotate renames the full audit file after the seq of its first line and starts a new
// one; the chain goes on across files.
func (s *Sink) rotate() error {
	if err := s.file.Close(); err != nil {
		return err
	}
	s.file = nil
	rotated := RotatedPath(s.path, s.firstSeq)
	if _, err := os.Lstat(rotated); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("rotate: %s exists already", rotated)
	}
	if err := os.Rename(s.path, rotated); err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		f.Close()
		return fmt.Errorf("rotate: %w", err)
	}
	s.file, s.size, s.firstSeq = f, 0, 0
	s.cfg.logger.Info("audit file rotated", "file", s.path, "rotated", rotated, "next_seq", s.seq+1)
	return nil
}

// RotatedPath is the name a full audit file gets: its name with the seq of its first
// line before the extension (data/accounts.audit.000000000001.jsonl), so that the
// files sort in chain order.
func RotatedPath(path string, firstSeq uint64) string {
	return fmt.Sprintf("%s.%012d%s", trimExt(path), firstSeq, filepath.Ext(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func appendHex(b, src []byte) []byte {
	for _, c := range src {
		b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return b
}
