package paymentstest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	typev1 "mtlsbank/gen/bank/type/v1"
	"mtlsbank/internal/payments"
	"mtlsbank/internal/pki/pkitest"
)

const (
	accPoor   = "acc_0000000000000000000000000c" // alice's, empty
	accBobs   = "acc_0000000000000000000000000d" // bob's
	accAlice2 = "acc_0000000000000000000000000e" // alice's, USD
)

func limits(tb testing.TB, text string) payments.Limits {
	tb.Helper()
	l, err := payments.ParseLimits(text)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

func pay(from string, minor int64, key string) *paymentsv1.CreatePaymentRequest {
	return &paymentsv1.CreatePaymentRequest{
		FromAccountId: from, ToAccountId: accBob, IdempotencyKey: key,
		Amount: &typev1.Money{CurrencyCode: "EUR", MinorUnits: minor},
	}
}

// errorInfo returns the ErrorInfo detail of err, or nil.
func errorInfo(err error) *errdetails.ErrorInfo {
	for _, d := range status.Convert(err).Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			return ei
		}
	}
	return nil
}

// wantDailyRefusal checks that err is the daily limit's refusal with remaining left.
func wantDailyRefusal(tb testing.TB, err error, remaining string) {
	tb.Helper()
	if status.Code(err) != codes.ResourceExhausted {
		tb.Fatalf("got %v, want ResourceExhausted", err)
	}
	msg := status.Convert(err).Message()
	if !strings.Contains(msg, "customer limit of 500.00 EUR per 24h exceeded: "+remaining+" EUR of it remains") {
		tb.Fatalf("message %q does not say which limit and what remains (%s)", msg, remaining)
	}
	ei := errorInfo(err)
	if ei == nil || ei.GetReason() != payments.ReasonDailyLimit || ei.GetDomain() != "bank.local" ||
		ei.GetMetadata()["remaining"] != remaining || ei.GetMetadata()["max"] != "500.00" ||
		ei.GetMetadata()["currency"] != "EUR" || ei.GetMetadata()["window"] != "24h" {
		tb.Fatalf("ErrorInfo = %v, want %s with remaining %s of 500.00 EUR per 24h", ei, payments.ReasonDailyLimit, remaining)
	}
}

// usedBy sums what the rolling limit counts for creator: its PENDING and COMPLETED
// payments in currency.
func usedBy(tb testing.TB, store Lister, creator, currency string) (sum int64, n int) {
	tb.Helper()
	ps, err := store.List(context.Background(), payments.Query{CreatedBy: creator, Limit: 1000})
	if err != nil {
		tb.Fatal(err)
	}
	for _, p := range ps {
		if p.Status != payments.StatusFailed && p.Currency == currency {
			sum += p.MinorUnits
			n++
		}
	}
	return sum, n
}

// testDailyLimitHoldsUnderConcurrency sends 20 payments of 100.00 EUR from alice at
// once against a daily limit of 500.00 EUR: exactly five fit, the others are
// refused with the limit and what remains, whether the committer groups the writes
// or not and whether the transfers complete or stay PENDING. Bob's payments, sent
// at the same time, are his own business.
func (su suite) testDailyLimitHoldsUnderConcurrency(t *testing.T) {
	p := pkitest.New(t)
	aliceLeaf, bobLeaf := p.Client(t, alice), p.Client(t, bob)
	type test struct {
		name string
		open func(testing.TB) payments.Store
		down bool
	}
	var tests []test
	for _, v := range su.variants() {
		tests = append(tests, test{name: v.name + ", accounts up", open: v.open}, test{name: v.name + ", accounts down", open: v.open, down: true})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acc := newFakeAccounts(map[string]int64{accAlice: 10_000_00, accBobs: 10_000_00})
			acc.setDown(tt.down)
			store := tt.open(t)
			svc := serviceOn(store, acc, payments.WithCustomerDailyLimits(limits(t, "EUR:500.00")))
			const n = 20
			errs := make([]error, n)
			bobErrs := make([]error, 4)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					_, errs[i] = svc.CreatePayment(caller(t, aliceLeaf, true), pay(accAlice, 100_00, fmt.Sprintf("a-%d", i)))
				})
			}
			for i := range bobErrs {
				wg.Go(func() {
					<-start
					_, bobErrs[i] = svc.CreatePayment(caller(t, bobLeaf, true), pay(accBobs, 100_00, fmt.Sprintf("b-%d", i)))
				})
			}
			close(start)
			wg.Wait()

			accepted := codes.OK
			if tt.down {
				accepted = codes.Unavailable // recorded PENDING, counted all the same
			}
			var ok, refused int
			for i, err := range errs {
				switch status.Code(err) {
				case accepted:
					ok++
				case codes.ResourceExhausted:
					refused++
					wantDailyRefusal(t, err, "0.00")
				default:
					t.Fatalf("payment %d: %v", i, err)
				}
			}
			sum, count := usedBy(t, store, alice, "EUR")
			if sum > 500_00 || ok != 5 || refused != n-5 || count != 5 || sum != 500_00 {
				t.Fatalf("%d accepted, %d refused; alice's PENDING+COMPLETED: %d payments, %d minor units; want 5 accepted making 50000",
					ok, refused, count, sum)
			}
			for i, err := range bobErrs {
				if status.Code(err) != accepted {
					t.Fatalf("bob's payment %d: %v; alice's limit is not his", i, err)
				}
			}
			if !tt.down && len(acc.moved) != 5+len(bobErrs) {
				t.Fatalf("%d transfers moved money, want %d", len(acc.moved), 5+len(bobErrs))
			}
		})
	}
}

// fakeClock is the service's clock, moved by the test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testDailyLimitWindow walks one customer through a day and a bit with the service's
// clock: failed payments do not count, pending ones do, the window slides at exactly
// 24 hours, a refused key stays refused after it slid, tellers and other currencies
// have their own rules.
func (su suite) testDailyLimitWindow(t *testing.T) {
	p := pkitest.New(t)
	aliceLeaf, tellerLeaf := p.Client(t, alice), p.Client(t, "spiffe://bank.local/teller/tina")
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: t0}
	acc := newFakeAccounts(map[string]int64{accAlice: 10_000_00, accPoor: 0, accAlice2: 10_000_00})
	svc, store := su.newService(t, acc, payments.WithClock(clock.Now),
		payments.WithCustomerLimits(limits(t, "EUR:1000.00,USD:1000.00,CHF:1000.00")),
		payments.WithCustomerDailyLimits(limits(t, "EUR:500.00,USD:50.00")))
	asAlice := caller(t, aliceLeaf, true)

	steps := []struct {
		name   string
		at     time.Duration // after t0
		ctx    context.Context
		req    *paymentsv1.CreatePaymentRequest
		down   bool
		want   codes.Code
		remain string // for ResourceExhausted
	}{
		{name: "300.00 completes", at: 0, req: pay(accAlice, 300_00, "k1"), want: codes.OK},
		{name: "a payment the ledger refuses fails", at: time.Minute, req: pay(accPoor, 150_00, "k2"), want: codes.FailedPrecondition},
		{name: "a pending one is accepted", at: 2 * time.Minute, req: pay(accAlice, 100_00, "k3"), down: true, want: codes.Unavailable},
		{name: "the failed one left room for 100.00", at: 3 * time.Minute, req: pay(accAlice, 100_00, "k4"), want: codes.OK},
		{name: "the pending one counts: 0.01 is refused", at: 4 * time.Minute, req: pay(accAlice, 1, "k5"), want: codes.ResourceExhausted, remain: "0.00"},
		{name: "a teller is not limited", at: 5 * time.Minute, ctx: caller(t, tellerLeaf, false), req: pay(accAlice, 900_00, "t1"), want: codes.OK},
		{
			name: "another currency has its own limit", at: 6 * time.Minute, want: codes.ResourceExhausted,
			req: &paymentsv1.CreatePaymentRequest{FromAccountId: accAlice2, ToAccountId: accBob, IdempotencyKey: "u1",
				Amount: &typev1.Money{CurrencyCode: "USD", MinorUnits: 50_01}},
		},
		{
			name: "a currency without a daily limit is refused", at: 7 * time.Minute, want: codes.PermissionDenied,
			req: &paymentsv1.CreatePaymentRequest{FromAccountId: accAlice2, ToAccountId: accBob, IdempotencyKey: "c1",
				Amount: &typev1.Money{CurrencyCode: "CHF", MinorUnits: 1}},
		},
		{name: "a nanosecond before the first one leaves the window", at: 24*time.Hour - 1, req: pay(accAlice, 1, "k6"), want: codes.ResourceExhausted, remain: "0.00"},
		{name: "then 300.00 fits again", at: 24 * time.Hour, req: pay(accAlice, 300_00, "k7"), want: codes.OK},
		{name: "and not a cent more", at: 24 * time.Hour, req: pay(accAlice, 1, "k8"), want: codes.ResourceExhausted, remain: "0.00"},
		{name: "a refused key stays refused once the window slid", at: 25 * time.Hour, req: pay(accAlice, 1, "k5"), want: codes.ResourceExhausted, remain: "0.00"},
		{name: "a new key for the same order fits", at: 25 * time.Hour, req: pay(accAlice, 1, "k9"), down: true, want: codes.Unavailable},
		{name: "the first hour's payments left the window too: over what remains", at: 25 * time.Hour, req: pay(accAlice, 200_00, "k10"), want: codes.ResourceExhausted, remain: "199.99"},
	}
	for _, st := range steps {
		clock.set(t0.Add(st.at))
		acc.setDown(st.down)
		ctx := st.ctx
		if ctx == nil {
			ctx = asAlice
		}
		_, err := svc.CreatePayment(ctx, st.req)
		if status.Code(err) != st.want {
			t.Fatalf("%s: %v, want %s", st.name, err, st.want)
		}
		if st.remain != "" && st.req.GetAmount().GetCurrencyCode() == "EUR" {
			wantDailyRefusal(t, err, st.remain)
		}
	}
	if sum, _ := usedBy(t, store, alice, "EUR"); sum != 300_00+100_00+100_00+300_00+1 {
		t.Fatalf("alice's counted EUR = %d", sum)
	}
}

// testPerPaymentLimitDetail: the per-payment limit, decided before anything is
// recorded, says which limit in the same words and detail.
func (su suite) testPerPaymentLimitDetail(t *testing.T) {
	p := pkitest.New(t)
	acc := newFakeAccounts(map[string]int64{accAlice: 10_000_00})
	svc, store := su.newService(t, acc)
	_, err := svc.CreatePayment(caller(t, p.Client(t, alice), true), pay(accAlice, 1000_01, "big"))
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), "per-payment limit of 1000.00 EUR") {
		t.Fatalf("got %v, want PermissionDenied naming the per-payment limit", err)
	}
	if ei := errorInfo(err); ei == nil || ei.GetReason() != payments.ReasonPaymentLimit || ei.GetMetadata()["max"] != "1000.00" {
		t.Fatalf("ErrorInfo = %v", ei)
	}
	if ids := ListIDs(t, store, payments.Query{Limit: 10}); len(ids) != 0 {
		t.Fatalf("a payment over the per-payment limit was recorded: %v", ids)
	}
}

// testRollingLimitAcrossReplicas is the attack on the rolling limit with several
// payments processes on one database: one customer sends many orders at once,
// spread over four stores (each with its own connections, as four processes
// would have). The sum is decided inside each recording transaction, after the
// creator's lock (PostgreSQL: an advisory lock; SQLite: the write lock every
// transaction holds), so together they stay at the limit: without the lock, two
// transactions would each see the same room and both insert.
func (su suite) testRollingLimitAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	stores := su.stores.Replicas(t, 4)
	orders := make([]*payments.Orders, len(stores))
	for i, st := range stores {
		orders[i] = payments.NewOrders(st, nil)
	}
	limit := payments.RollingLimit{MinorUnits: 7_00, Window: 24 * time.Hour}
	for round := range 3 {
		creator := fmt.Sprintf("spiffe://bank.local/customer/c%d", round)
		const n = 40
		created := make([]payments.Payment, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				p := NewPayment(fmt.Sprintf("pay_%d_%d", round, i), creator, fmt.Sprintf("k%d", i))
				created[i], _, errs[i] = orders[i%len(orders)].Create(ctx, p, payments.CreateOptions{Limit: &limit})
			})
		}
		close(start)
		wg.Wait()
		var accepted int
		for i, err := range errs {
			if err != nil {
				t.Fatalf("Create %d: %v", i, err)
			}
			switch created[i].Status {
			case payments.StatusPending:
				accepted++
			case payments.StatusFailed:
				if created[i].FailureCode != payments.CodeLimitExceeded || created[i].LimitMinorUnits != 7_00 || created[i].LimitRemaining != 0 {
					t.Fatalf("refusal %d: %+v", i, created[i])
				}
			}
		}
		if sum, count := usedBy(t, stores[0], creator, "EUR"); accepted != 7 || count != 7 || sum != 7_00 {
			t.Fatalf("round %d: %d accepted; stored %d counted payments making %d; want 7 making 7.00 (the limit)", round, accepted, count, sum)
		}
	}

	for _, bad := range []payments.RollingLimit{{MinorUnits: -1, Window: time.Hour}, {MinorUnits: 1, Window: 0}} {
		if _, _, err := orders[0].Create(ctx, NewPayment("pay_bad", alice, "bad"), payments.CreateOptions{Limit: &bad}); err == nil {
			t.Fatalf("Create with limit %+v: no error", bad)
		}
	}
	if _, err := stores[0].Get(ctx, "pay_bad"); err == nil {
		t.Fatal("a refused limit recorded a payment")
	}
}

// testDailyLimitAcrossReplicas is the attack with two payments processes: alice
// sends 30 payments of 100.00 EUR at once, half to each process, against a daily
// limit of 500.00 EUR. Together the processes accept five; the others are refused
// with the limit and what remains.
func (su suite) testDailyLimitAcrossReplicas(t *testing.T) {
	p := pkitest.New(t)
	aliceLeaf := p.Client(t, alice)
	acc := newFakeAccounts(map[string]int64{accAlice: 10_000_00})
	stores := su.stores.Replicas(t, 2)
	services := make([]*payments.Service, len(stores))
	for i, st := range stores {
		services[i] = serviceOn(st, acc, payments.WithCustomerDailyLimits(limits(t, "EUR:500.00")))
	}
	const n = 30
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = services[i%2].CreatePayment(caller(t, aliceLeaf, true), pay(accAlice, 100_00, fmt.Sprintf("a-%d", i)))
		})
	}
	close(start)
	wg.Wait()
	var ok int
	for i, err := range errs {
		switch status.Code(err) {
		case codes.OK:
			ok++
		case codes.ResourceExhausted:
			wantDailyRefusal(t, err, "0.00")
		default:
			t.Fatalf("payment %d: %v", i, err)
		}
	}
	if sum, count := usedBy(t, stores[1], alice, "EUR"); ok != 5 || count != 5 || sum != 500_00 || len(acc.moved) != 5 {
		t.Fatalf("%d accepted, %d moved; alice's PENDING+COMPLETED: %d payments making %d; want 5 making 50000",
			ok, len(acc.moved), count, sum)
	}
}
