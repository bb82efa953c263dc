package payments

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// recoveryBatch is how many pending payments one store query reads.
const recoveryBatch = 100

// Recover drives every PENDING payment to COMPLETED or FAILED by retrying its
// transfer, with its own key, on behalf of its creator. It stops at the first
// payment whose outcome stays unknown (the accounts service is most likely down,
// and every further call would wait for the same timeout) and returns how many
// payments it finished.
//
// Several processes may recover at once on one database: a payment is carried
// out only under its lease (Orders.Claim), so each PENDING payment is driven by
// one process at a time, and a payment whose lease another process holds (it is
// carrying it out, or it died doing so) is skipped until the lease expires.
// Payments this process's request path is driving are skipped too, and so is a
// payment of a revoked creator whose void the accounts service refused without
// answering about the key: it stays PENDING (and is logged) without holding up
// the others.
func (s *Service) Recover(ctx context.Context) (finished int, err error) {
	var after int64
	var next time.Time // the earliest expiry of a lease skipped
	defer func() { s.nextExpiry.Store(Nanos(next)) }()
	for {
		batch, err := s.orders.List(ctx, Query{Status: StatusPending, AfterSeq: after, Limit: recoveryBatch})
		if err != nil {
			return finished, fmt.Errorf("recover: %w", err)
		}
		for _, p := range batch {
			after = p.Seq
			if s.leasedElsewhere(p) {
				next = earliest(next, p.LeaseUntil)
				continue // without a write: the lease says it all
			}
			unlock, _ := s.locks.try(p.ID)
			if unlock == nil {
				continue // the request path is driving it right now
			}
			out, carried, err := s.recoverOne(ctx, p.ID)
			unlock()
			switch {
			case !carried && out.LeaseOwner != "":
				next = earliest(next, out.LeaseUntil) // leased since the list was read
				continue
			case errors.Is(err, errVoidUnanswered):
				continue // accounts is up; this payment must not hold up the others
			case err != nil:
				return finished, fmt.Errorf("recover: %w", err)
			}
			if carried && out.Status != StatusPending {
				finished++
			}
		}
		if len(batch) < recoveryBatch {
			return finished, nil
		}
	}
}

// recoverOne claims the payment with the id and, if it is still PENDING and no
// other process holds its lease, carries it out. carried reports that it did:
// otherwise out is the payment as another process left it (finished, or leased).
func (s *Service) recoverOne(ctx context.Context, id string) (out Payment, carried bool, err error) {
	p, claimed, err := s.orders.Claim(ctx, id, s.lease)
	if err != nil || !claimed {
		return p, false, err
	}
	out, err = s.transfer(ctx, p)
	return out, true, err
}

// leasedElsewhere reports whether another process holds p's lease now.
func (s *Service) leasedElsewhere(p Payment) bool {
	return p.LeaseOwner != "" && p.LeaseOwner != s.lease.Owner && p.LeaseUntil.After(s.o.clock())
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// minRecoveryWait bounds how soon a pass follows the previous one when it waits
// for a lease to expire.
const minRecoveryWait = 100 * time.Millisecond

// RunRecovery calls Recover at once and then every recovery interval until ctx is
// done, logging what each pass did. When a pass skipped a payment because another
// process's lease held it (that process may have died carrying it out), the next
// pass comes as soon as that lease expires, if that is sooner.
func (s *Service) RunRecovery(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := s.Recover(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.o.logger.WarnContext(ctx, "payment recovery pass stopped", "finished", n, "err", err)
		case n > 0:
			s.o.logger.InfoContext(ctx, "payment recovery pass", "finished", n)
		}
		wait := s.o.recoveryInterval
		if next := s.nextExpiry.Load(); next != 0 {
			wait = min(wait, max(FromNanos(next).Sub(s.o.clock()), minRecoveryWait))
		}
		t.Reset(wait)
	}
}

// newLeaseOwner names this process in the leases it takes: host, pid and a random
// part, so that two processes never share a name, also across restarts.
func newLeaseOwner() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return host + "/" + strconv.Itoa(os.Getpid()) + "/" + rand.Text()[:8]
}
