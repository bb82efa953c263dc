package payments

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// recoveryBatch is how many pending payments one store query reads.
const recoveryBatch = 100

// Recover drives every PENDING payment to COMPLETED or FAILED by retrying its
// transfer, with its own key, on behalf of its creator. It stops at the first
// payment whose outcome stays unknown (the accounts service is most likely down,
// and every further call would wait for the same timeout) and returns how many
// payments it finished. Payments another driver holds are skipped, and so is a
// payment of a revoked creator whose void the accounts service refused without
// answering about the key: it stays PENDING (and is logged) without holding up
// the others.
func (s *Service) Recover(ctx context.Context) (finished int, err error) {
	var after int64
	for {
		batch, err := s.store.List(ctx, Query{Status: StatusPending, AfterSeq: after, Limit: recoveryBatch})
		if err != nil {
			return finished, fmt.Errorf("recover: %w", err)
		}
		for _, p := range batch {
			after = p.Seq
			unlock, _ := s.locks.try(p.ID)
			if unlock == nil {
				continue // the request path is driving it right now
			}
			out, err := s.drive(ctx, p.ID)
			unlock()
			if errors.Is(err, errVoidUnanswered) {
				continue // accounts is up; this payment must not hold up the others
			}
			if err != nil {
				return finished, fmt.Errorf("recover: %w", err)
			}
			if out.Status != StatusPending {
				finished++
			}
		}
		if len(batch) < recoveryBatch {
			return finished, nil
		}
	}
}

// RunRecovery calls Recover at once and then every recovery interval until ctx is
// done, logging what each pass did.
func (s *Service) RunRecovery(ctx context.Context) {
	t := time.NewTicker(s.o.recoveryInterval)
	defer t.Stop()
	for {
		n, err := s.Recover(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.o.logger.WarnContext(ctx, "payment recovery pass stopped", "finished", n, "err", err)
		case n > 0:
			s.o.logger.InfoContext(ctx, "payment recovery pass", "finished", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
