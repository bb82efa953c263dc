package paymentstest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mtlsbank/internal/payments"
)

// testLeases walks one payment through the lease rules with the clock in hand:
// only its holder (or anyone once it expired) may claim it, only the holder
// releases it, and a finished payment is no one's.
func (su suite) testLeases(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	o := su.newOrders(t, clock.Now)
	a := payments.Lease{Owner: "replica-a", Duration: 10 * time.Second}
	b := payments.Lease{Owner: "replica-b", Duration: 10 * time.Second}

	p, created, err := o.Create(ctx, NewPayment("pay_1", alice, "k1"), payments.CreateOptions{Lease: a})
	if err != nil || !created {
		t.Fatalf("Create: %v", err)
	}
	if p.LeaseOwner != a.Owner || !p.LeaseUntil.Equal(clock.Now().Add(a.Duration)) {
		t.Fatalf("new payment's lease: %q until %s, want %q until %s", p.LeaseOwner, p.LeaseUntil, a.Owner, clock.Now().Add(a.Duration))
	}
	steps := []struct {
		name    string
		advance time.Duration
		do      func() (payments.Payment, bool, error)
		claimed bool
		owner   string // the lease's holder afterwards
	}{
		{name: "another replica may not take a live lease", do: func() (payments.Payment, bool, error) { return o.Claim(ctx, "pay_1", b) },
			owner: a.Owner},
		{name: "its holder renews it", advance: 9 * time.Second, do: func() (payments.Payment, bool, error) { return o.Claim(ctx, "pay_1", a) },
			claimed: true, owner: a.Owner},
		{name: "still not another's a second before it expires", advance: 9 * time.Second,
			do: func() (payments.Payment, bool, error) { return o.Claim(ctx, "pay_1", b) }, owner: a.Owner},
		{name: "anyone's once expired", advance: time.Second, do: func() (payments.Payment, bool, error) { return o.Claim(ctx, "pay_1", b) },
			claimed: true, owner: b.Owner},
		{name: "a former holder cannot release it", do: func() (payments.Payment, bool, error) {
			return noClaim(o.Release(ctx, "pay_1", a.Owner), o, "pay_1")
		}, owner: b.Owner},
		{name: "its holder releases it", do: func() (payments.Payment, bool, error) {
			return noClaim(o.Release(ctx, "pay_1", b.Owner), o, "pay_1")
		}},
		{name: "a released lease is anyone's", do: func() (payments.Payment, bool, error) { return o.Claim(ctx, "pay_1", a) },
			claimed: true, owner: a.Owner},
		{name: "a finished payment has no lease", do: func() (payments.Payment, bool, error) {
			pending, err := o.Get(ctx, "pay_1")
			if err != nil {
				return pending, false, err
			}
			p, err := o.Complete(ctx, pending, "txn_1")
			return p, false, err
		}},
		{name: "and is not claimed", do: func() (payments.Payment, bool, error) { return o.Claim(ctx, "pay_1", b) }},
	}
	for _, st := range steps {
		clock.advance(st.advance)
		p, claimed, err := st.do()
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if claimed != st.claimed || p.LeaseOwner != st.owner {
			t.Fatalf("%s: claimed %v, held by %q; want %v, %q", st.name, claimed, p.LeaseOwner, st.claimed, st.owner)
		}
		if stored, err := o.Get(ctx, "pay_1"); err != nil || stored.LeaseOwner != st.owner {
			t.Fatalf("%s: stored lease %q (%v), want %q", st.name, stored.LeaseOwner, err, st.owner)
		}
	}
	if _, _, err := o.Claim(ctx, "pay_nope", a); !errors.Is(err, payments.ErrNotFound) {
		t.Fatalf("Claim of an unknown payment: %v, want ErrNotFound", err)
	}
	if _, _, err := o.Claim(ctx, "pay_1", payments.Lease{Duration: time.Second}); err == nil {
		t.Fatal("Claim without an owner: no error")
	}
	// An order the rolling limit refuses is FAILED at once: no lease.
	limit := payments.RollingLimit{MinorUnits: 0, Window: time.Hour}
	refused, _, err := o.Create(ctx, NewPayment("pay_2", alice, "k2"), payments.CreateOptions{Limit: &limit, Lease: a})
	if err != nil || refused.Status != payments.StatusFailed || refused.LeaseOwner != "" {
		t.Fatalf("refused order: %s leased by %q (%v), want FAILED without a lease", refused.Status, refused.LeaseOwner, err)
	}
}

// noClaim reads the payment after an operation that claims nothing.
func noClaim(err error, o *payments.Orders, id string) (payments.Payment, bool, error) {
	if err != nil {
		return payments.Payment{}, false, err
	}
	p, err := o.Get(context.Background(), id)
	return p, false, err
}

// testClaimAcrossReplicas: forty claimants on four stores of one database race
// for one payment's lease: exactly one gets it.
func (su suite) testClaimAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	stores := su.stores.Replicas(t, 4)
	if _, _, err := payments.NewOrders(stores[0], nil).Create(ctx, NewPayment("pay_1", alice, "k1"), payments.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const n = 40
	var won atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		o := payments.NewOrders(stores[i%len(stores)], nil)
		wg.Go(func() {
			<-start
			_, claimed, err := o.Claim(ctx, "pay_1", payments.Lease{Owner: fmt.Sprintf("claimant-%d", i), Duration: time.Hour})
			if err != nil {
				t.Errorf("Claim %d: %v", i, err)
			}
			if claimed {
				won.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d claimants got the lease, want exactly 1", won.Load())
	}
}

// testRecoveryAcrossReplicas: two payments processes on one database recover the
// same PENDING payments at the same time (after accounts was down, say). Each
// payment is carried out by one of them: exactly one Transfer call reaches
// accounts per payment, and every payment is COMPLETED once.
func (su suite) testRecoveryAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	stores := su.stores.Replicas(t, 2)
	acc := newFakeAccounts(map[string]int64{"acc_a": 1_000_00})
	services := []*payments.Service{serviceOn(stores[0], acc), serviceOn(stores[1], acc)}
	const n = 30
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("pay_%02d", i)
		// Recorded by a process that died before carrying them out and whose
		// leases are gone (or never taken): they wait for recovery.
		if _, _, err := payments.NewOrders(stores[i%2], nil).Create(ctx, NewPayment(ids[i], alice, ids[i]), payments.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 2 { // the second round finds nothing left to do
		finished := make([]int, 2*len(services))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range finished {
			svc := services[i%len(services)] // two passes per process at once, too
			wg.Go(func() {
				<-start
				var err error
				if finished[i], err = svc.Recover(ctx); err != nil {
					t.Errorf("Recover: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		total := 0
		for _, f := range finished {
			total += f
		}
		if want := map[int]int{0: n, 1: 0}[round]; total != want {
			t.Fatalf("round %d: the passes finished %d payments together (%v), want %d", round, total, finished, want)
		}
	}
	for _, id := range ids {
		p, err := stores[0].Get(ctx, id)
		if err != nil || p.Status != payments.StatusCompleted || p.LeaseOwner != "" {
			t.Fatalf("%s: %+v, %v; want COMPLETED without a lease", id, p, err)
		}
		if calls := acc.reachedFor(id); calls != 1 {
			t.Errorf("%s: %d transfer calls reached accounts, want exactly 1", id, calls)
		}
	}
}

// testRecoveryAfterALeaseExpires: a payment whose recording process died while
// carrying it out keeps that process's lease: another process's recovery leaves it
// alone until the lease expires, then finishes it.
func (su suite) testRecoveryAfterALeaseExpires(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: t0}
	stores := su.stores.Replicas(t, 2)
	dead := payments.Lease{Owner: "dead-replica", Duration: 30 * time.Second}
	if _, _, err := payments.NewOrders(stores[0], clock.Now).Create(ctx, NewPayment("pay_1", alice, "k1"), payments.CreateOptions{Lease: dead}); err != nil {
		t.Fatal(err)
	}
	acc := newFakeAccounts(map[string]int64{"acc_a": 100_00})
	svc := serviceOn(stores[1], acc, payments.WithClock(clock.Now))
	for _, step := range []struct {
		after    time.Duration // since the lease was taken
		finished int
	}{
		{0, 0},
		{30*time.Second - 1, 0},
		{30 * time.Second, 1}, // expired
	} {
		clock.set(t0.Add(step.after))
		n, err := svc.Recover(ctx)
		if err != nil || n != step.finished {
			t.Fatalf("Recover %s after the lease was taken: finished %d (%v), want %d", step.after, n, err, step.finished)
		}
	}
	p, err := stores[0].Get(ctx, "pay_1")
	if err != nil || p.Status != payments.StatusCompleted || acc.reachedFor("pay_1") != 1 {
		t.Fatalf("pay_1: %+v, %v, %d calls; want COMPLETED by one call", p, err, acc.reachedFor("pay_1"))
	}
}
