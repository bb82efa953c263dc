package payments

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"mtlsbank/internal/money"
)

// Orders records payment orders and their outcomes in a Store, with the rules that
// do not depend on the engine: one payment per creator and idempotency key, the
// rolling customer limit decided in the recording transaction, the first outcome
// wins, and the lease that lets one payments process at a time carry out a PENDING
// payment. It is safe for concurrent use, also by several processes on one database.
type Orders struct {
	store Store
	now   func() time.Time
}

// NewOrders returns Orders over store, reading the time from now (nil: time.Now).
func NewOrders(store Store, now func() time.Time) *Orders {
	if now == nil {
		now = time.Now
	}
	return &Orders{store: store, now: now}
}

// RollingLimit caps what one creator may order in one currency over a sliding
// window: the sum of its orders created less than Window ago that are not FAILED
// (PENDING and COMPLETED ones), the new order included.
type RollingLimit struct {
	// MinorUnits is the cap, in minor units of the order's currency.
	MinorUnits int64
	// Window is how far back orders count.
	Window time.Duration
}

// CodeLimitExceeded is the FailureCode of an order refused by a RollingLimit.
const CodeLimitExceeded = "RESOURCE_EXHAUSTED"

// Lease names the payments process that carries out a payment and for how long it
// may before another one takes over.
type Lease struct {
	// Owner is the process's name; empty for no lease.
	Owner string
	// Duration is how long the lease lasts from when it is taken.
	Duration time.Duration
}

// CreateOptions are the optional parts of Create.
type CreateOptions struct {
	// Limit, if not nil, is the rolling limit the order must fit. The sum is taken
	// in the transaction that records the order, after Tx.LockCreator, so that
	// concurrent orders, in any process on the database, cannot all see the same
	// room. An order that does not fit is recorded FAILED with CodeLimitExceeded,
	// the limit and what remained of it (created is true), so that its idempotency
	// key keeps refusing it even once the window has room again; it never counts
	// against the limit.
	Limit *RollingLimit
	// Lease, if its Owner is set, is taken on the new PENDING payment: its creator
	// carries it out at once, and no other process's recovery may meanwhile.
	Lease Lease
}

// Create records p as PENDING (or FAILED, see CreateOptions.Limit), unless its
// creator already recorded a payment under the same idempotency key: then it
// returns that payment and created is false, whatever its content (comparing
// fingerprints is the caller's business). Create assigns Seq, Status, the outcome
// and limit fields, the lease and the timestamps; every other field comes from p.
// It returns once the record is durable.
func (o *Orders) Create(ctx context.Context, p Payment, opts CreateOptions) (_ Payment, created bool, err error) {
	if l := opts.Limit; l != nil && (l.MinorUnits < 0 || l.Window <= 0) {
		return Payment{}, false, fmt.Errorf("record payment: rolling limit %d per %s is not a limit", l.MinorUnits, l.Window)
	}
	var out Payment
	err = o.store.Update(ctx, func(tx Tx) error {
		out, created = Payment{}, false
		rec := o.newRecord(p, opts.Lease)
		if opts.Limit != nil {
			if err := applyLimit(ctx, tx, &rec, *opts.Limit); err != nil {
				return err
			}
		}
		seq, inserted, err := tx.Insert(ctx, rec)
		if err != nil {
			return err
		}
		if inserted {
			rec.Seq = seq
			out, created = rec, true
			return nil
		}
		stored, found, err := tx.ByKey(ctx, rec.CreatedBy, rec.IdempotencyKey)
		switch {
		case err != nil:
			return fmt.Errorf("read back: %w", err)
		case !found:
			return fmt.Errorf("read back: no payment under the key that refused the insert")
		}
		out = stored
		return nil
	})
	if err != nil {
		return Payment{}, false, fmt.Errorf("record payment: %w", err)
	}
	return out, created, nil
}

// newRecord is p as Create records it: PENDING, now, with the lease.
func (o *Orders) newRecord(p Payment, lease Lease) Payment {
	now := FromNanos(o.now().UnixNano()) // as it reads back
	p.Seq = 0
	p.Status = StatusPending
	p.TransactionID, p.FailureCode, p.FailureReason, p.FailureErrorReason = "", "", "", ""
	p.LimitMinorUnits, p.LimitRemaining = 0, 0
	p.CreateTime, p.UpdateTime = now, now
	p.LeaseOwner, p.LeaseUntil = "", time.Time{}
	if lease.Owner != "" {
		p.LeaseOwner, p.LeaseUntil = lease.Owner, now.Add(lease.Duration)
	}
	if len(p.CreatorIssuer) == 0 {
		p.CreatorIssuer = nil
	}
	return p
}

// applyLimit makes rec a FAILED refusal if it does not fit in what limit leaves of
// its creator's recent orders, summed under the creator's lock.
func applyLimit(ctx context.Context, tx Tx, rec *Payment, limit RollingLimit) error {
	if err := tx.LockCreator(ctx, rec.CreatedBy, rec.Currency); err != nil {
		return fmt.Errorf("lock the rolling limit: %w", err)
	}
	used, err := tx.Usage(ctx, rec.CreatedBy, rec.Currency, rec.CreateTime.Add(-limit.Window))
	if err != nil {
		return fmt.Errorf("sum the rolling limit: %w", err)
	}
	remaining := max(limit.MinorUnits-used, 0)
	if rec.MinorUnits <= remaining {
		return nil
	}
	rec.Status = StatusFailed
	rec.FailureCode = CodeLimitExceeded
	rec.LimitMinorUnits, rec.LimitRemaining = limit.MinorUnits, remaining
	rec.FailureReason = fmt.Sprintf("customer limit of %s per %s exceeded: %s of it remains, the payment is %s",
		money.Format(limit.MinorUnits, rec.Currency), formatWindow(limit.Window),
		money.Format(remaining, rec.Currency), money.Format(rec.MinorUnits, rec.Currency))
	rec.LeaseOwner, rec.LeaseUntil = "", time.Time{}
	return nil
}

// formatWindow writes a window the way people say it: "24h", "90m", "1h30m".
func formatWindow(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// Get returns the payment with the id, or ErrNotFound.
func (o *Orders) Get(ctx context.Context, id string) (Payment, error) {
	return o.store.Get(ctx, id)
}

// List returns the payments q selects, in creation order.
func (o *Orders) List(ctx context.Context, q Query) ([]Payment, error) {
	if q.Limit <= 0 {
		return nil, fmt.Errorf("list payments: limit %d must be positive", q.Limit)
	}
	return o.store.List(ctx, q)
}

// Complete marks pending, a PENDING payment as Create or Claim returned it,
// COMPLETED with the ledger transaction that carried it out. It returns the payment
// as stored afterwards: a payment that was no longer PENDING is returned as it is,
// so the first outcome recorded wins. It returns once the outcome is durable.
func (o *Orders) Complete(ctx context.Context, pending Payment, transactionID string) (Payment, error) {
	if transactionID == "" {
		return Payment{}, fmt.Errorf("complete payment %q: empty transaction id", pending.ID)
	}
	return o.finish(ctx, pending, Outcome{Status: StatusCompleted, TransactionID: transactionID})
}

// Fail marks pending (see Complete) FAILED with the gRPC code name the ledger
// refused it with and a reason for people. Like Complete, it never changes a
// payment that is no longer PENDING.
func (o *Orders) Fail(ctx context.Context, pending Payment, code, reason string) (Payment, error) {
	return o.FailWithErrorReason(ctx, pending, code, "", reason)
}

// FailWithErrorReason is Fail that also records errorReason, the google.rpc.ErrorInfo
// reason (package refusal) the ledger refused the payment with, or "" for none.
func (o *Orders) FailWithErrorReason(ctx context.Context, pending Payment, code, errorReason, reason string) (Payment, error) {
	if code == "" {
		return Payment{}, fmt.Errorf("fail payment %q: empty failure code", pending.ID)
	}
	return o.finish(ctx, pending, Outcome{Status: StatusFailed, FailureCode: code, FailureReason: reason, FailureErrorReason: errorReason})
}

// finish records out on pending. The payment it changed is pending with out
// recorded (finished): the store reads nothing back. One it did not change (no
// longer PENDING: another driver finished it) is read as stored.
func (o *Orders) finish(ctx context.Context, pending Payment, out Outcome) (Payment, error) {
	id := pending.ID
	if pending.Status != StatusPending || pending.Seq == 0 {
		return Payment{}, fmt.Errorf("finish payment %q: given as %s (seq %d), want a PENDING payment as stored", id, pending.Status, pending.Seq)
	}
	var p Payment
	err := o.store.Update(ctx, func(tx Tx) error {
		out.At = FromNanos(Nanos(o.now())) // as it reads back
		changed, err := tx.Finish(ctx, id, out)
		switch {
		case err != nil:
			return err
		case changed:
			p = pending.finished(out)
			return nil
		}
		p, err = byID(ctx, tx, id)
		return err
	})
	if err != nil {
		return Payment{}, fmt.Errorf("finish payment %q: %w", id, err)
	}
	if p.ID == "" {
		return Payment{}, fmt.Errorf("finish payment %q: %w", id, ErrNotFound)
	}
	return p, nil
}

// finished is p as Tx.Finish leaves it when it records out: the outcome, its time,
// no lease. Insert writes every other column once, and nothing changes them.
func (p Payment) finished(out Outcome) Payment {
	p.Status, p.TransactionID = out.Status, out.TransactionID
	p.FailureCode, p.FailureReason, p.FailureErrorReason = out.FailureCode, out.FailureReason, out.FailureErrorReason
	p.UpdateTime = out.At
	p.LeaseOwner, p.LeaseUntil = "", time.Time{}
	return p
}

// byID is the payment with the id, or the zero Payment if there is none: a
// request's outcome, which must not abort the transaction.
func byID(ctx context.Context, tx Tx, id string) (Payment, error) {
	p, found, err := tx.ByID(ctx, id)
	if err != nil || !found {
		return Payment{}, err
	}
	return p, nil
}

// ErrLeased means another payments process holds the lease of the payment: it is
// carrying it out, or did until it died and its lease has not expired yet.
var ErrLeased = errors.New("payment leased by another payments process")

// Claim takes the lease of the PENDING payment with the id for lease.Owner, if no
// other process holds it (an expired lease is no one's), and returns the payment
// as it is afterwards: with the lease, or, if claimed is false, not PENDING any
// more or leased by another process (p.LeaseOwner, p.LeaseUntil say which and
// until when). ErrNotFound if there is no such payment.
func (o *Orders) Claim(ctx context.Context, id string, lease Lease) (p Payment, claimed bool, err error) {
	if lease.Owner == "" || lease.Duration <= 0 {
		return Payment{}, false, fmt.Errorf("claim payment %q: lease %+v has no owner or duration", id, lease)
	}
	err = o.store.Update(ctx, func(tx Tx) error {
		now := o.now()
		var err error
		if p, claimed, err = tx.Lease(ctx, id, lease.Owner, now.Add(lease.Duration), now); err != nil || claimed {
			return err
		}
		p, err = byID(ctx, tx, id)
		return err
	})
	if err != nil {
		return Payment{}, false, fmt.Errorf("claim payment %q: %w", id, err)
	}
	if p.ID == "" {
		return Payment{}, false, fmt.Errorf("claim payment %q: %w", id, ErrNotFound)
	}
	return p, claimed, nil
}

// Release gives up owner's lease of the payment with the id, so that any process
// may carry it out at once (its owner tried and the outcome stayed unknown). A
// lease owner no longer holds is left alone.
func (o *Orders) Release(ctx context.Context, id, owner string) error {
	if err := o.store.Update(ctx, func(tx Tx) error { return tx.Release(ctx, id, owner) }); err != nil {
		return fmt.Errorf("release payment %q: %w", id, err)
	}
	return nil
}
