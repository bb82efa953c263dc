package payments

import (
	"context"
	"errors"
	"fmt"

	"mtlsbank/internal/groupcommit"
)

// Group commit: the store's writes (recording a payment, recording its outcome)
// are queued to one goroutine (package groupcommit), which runs whatever is
// waiting in one transaction and one fsync, and answers each caller only after
// that commit.

// runBatch runs one batch of writes in a transaction on the writer connection.
func (s *Store) runBatch(ctx context.Context, batch func(*writeTx) error) error {
	tx, err := s.w.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := batch(&writeTx{tx: tx, stmts: s.ws}); err != nil {
		_ = tx.Rollback() // the request's error is the one that matters
		return err
	}
	if err := tx.Commit(); err != nil {
		// SQLite may leave a transaction open after a failed COMMIT; the next
		// batch must not run inside it. (An error here means none was open.)
		_, _ = s.w.ExecContext(context.Background(), "ROLLBACK")
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// write queues op for the committer and waits until the transaction that ran it
// committed (the write is then durable) or failed. If ctx ends after the request
// was queued the write may still commit: a PENDING payment recorded that way is
// finished by recovery, and a retry with the same idempotency key finds it.
func (s *Store) write(ctx context.Context, op writeOp) (writeResult, error) {
	r, err := s.committer.Do(ctx, op)
	if errors.Is(err, groupcommit.ErrClosed) {
		return writeResult{}, ErrClosed
	}
	return r, err
}
