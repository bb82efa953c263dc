package ledger

import (
	"context"
	"fmt"
	"sync"
)

// watchers holds a wake-up channel per running Watch. The committer never
// sends entries to a watcher, only a signal that there are new ones; each
// watcher reads them from the store at its own pace.
type watchers struct {
	mu  sync.Mutex
	set map[chan struct{}]struct{}
}

func (w *watchers) add() chan struct{} {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	w.set[ch] = struct{}{}
	w.mu.Unlock()
	return ch
}

func (w *watchers) remove(ch chan struct{}) {
	w.mu.Lock()
	delete(w.set, ch)
	w.mu.Unlock()
}

// notify wakes every watcher without ever blocking: a watcher that has not
// taken the previous signal already has one pending.
func (w *watchers) notify() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.set {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Watch calls fn with every entry whose sequence is greater than
// afterSequence, in sequence order, first those already committed and then
// new ones as they commit, until ctx ends (it returns ctx.Err()), the ledger
// closes (ErrClosed) or fn returns an error (which it returns). Entries are
// read from the store a page at a time, so a slow fn holds no more than a
// page in memory and never delays a writer.
func (l *Ledger) Watch(ctx context.Context, afterSequence int64, fn func(Entry) error) error {
	if afterSequence < 0 {
		return fieldError("after_sequence", ErrInvalidSequence, "%d", afterSequence)
	}
	// Subscribe before the first read, so that no commit falls between the
	// read and the wait.
	wake := l.watchers.add()
	defer l.watchers.remove(wake)

	last := afterSequence
	for {
		var page []Entry
		err := l.viewRead(ctx, func(tx ReadTx) error {
			var err error
			page, err = tx.EntriesAfter(ctx, last, l.cfg.watchPage)
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			select {
			case <-l.closing: // the store may be closing too
				return ErrClosed
			default:
			}
			return fmt.Errorf("ledger: watch after %d: %w", last, err)
		}
		// fn runs after the read transaction ended, so a slow consumer does
		// not pin a snapshot.
		for _, e := range page {
			if err := fn(e); err != nil {
				return err
			}
			last = e.Sequence
		}
		if len(page) == l.cfg.watchPage {
			if err := ctx.Err(); err != nil {
				return err
			}
			continue
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		case <-l.closing:
			return ErrClosed
		}
	}
}
