package pgstore_test

// The ninth fresh attacker's tests of Finish without read-back (commit 6cf4db6) on
// PostgreSQL: two replicas racing to finish each payment with different outcomes, a
// lease taken over between Create and Complete, and payment_usage after failures.

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"mtlsbank/internal/payments"
	"mtlsbank/internal/pgtest"
)

var a9IDs atomic.Int64

func a9Payment(creator, key string, units int64) payments.Payment {
	id := fmt.Sprintf("pay_a9%024d", a9IDs.Add(1))
	return payments.Payment{
		ID: id, CreatedBy: creator, IdempotencyKey: key, Fingerprint: "fp-" + key,
		FromAccountID: "acc_from", ToAccountID: "acc_to", Currency: "EUR", MinorUnits: units,
		Memo: "memo € " + key, TransferKey: "tk_" + id,
		CreatorSerial: "0a1b", CreatorIssuer: []byte{0x30, 0x00},
		CreatorCAs: []payments.CertRef{{Serial: "ff", Issuer: []byte{0x30, 0x01, 0x02}}},
	}
}

func a9Same(tb testing.TB, s payments.Store, what string, got payments.Payment) {
	tb.Helper()
	stored, err := s.Get(context.Background(), got.ID)
	if err != nil {
		tb.Errorf("%s: get %s: %v", what, got.ID, err)
		return
	}
	if !reflect.DeepEqual(got, stored) {
		tb.Errorf("%s: answered\n  %+v\nstored\n  %+v", what, got, stored)
	}
}

func TestAttack9PGRaceAndTakeover(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s1, s2 := open(t, url), open(t, url)
	var ns atomic.Int64
	ns.Store(time.Date(2026, 12, 3, 18, 0, 0, 987654321, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, ns.Load()) }
	o1, o2 := payments.NewOrders(s1, now), payments.NewOrders(s2, now)
	limit := &payments.RollingLimit{MinorUnits: 1 << 40, Window: time.Hour}

	// Takeover: a's Create copy finishes after b claimed; then b's Claim copy.
	la := payments.Lease{Owner: "a", Duration: time.Second}
	lb := payments.Lease{Owner: "b", Duration: time.Minute}
	created, _, err := o1.Create(ctx, a9Payment("u", "take", 10), payments.CreateOptions{Lease: la, Limit: limit})
	if err != nil {
		t.Fatal(err)
	}
	a9Same(t, s1, "create", created)
	ns.Add(int64(2 * time.Second))
	claimed, ok, err := o2.Claim(ctx, created.ID, lb)
	if err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	done, err := o1.Fail(ctx, created, "FAILED_PRECONDITION", "a first")
	if err != nil {
		t.Fatal(err)
	}
	a9Same(t, s1, "fail with the pre-takeover copy", done)
	late, err := o2.Complete(ctx, claimed, "txn_b")
	if err != nil || late.Status != payments.StatusFailed || late.FailureReason != "a first" {
		t.Errorf("late complete: %+v %v, want the FAILED first outcome", late, err)
	}
	a9Same(t, s2, "late complete", late)

	// Race: 40 payments, each finished at once by both replicas with different outcomes.
	var pend []payments.Payment
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := []*payments.Orders{o1, o2}[i%2]
			key := fmt.Sprintf("k%d", i%30) // 10 duplicate keys
			p, created, err := o.Create(ctx, a9Payment(fmt.Sprintf("u%d", i%3*0), key, int64(i+1)),
				payments.CreateOptions{Lease: la, Limit: limit})
			if err != nil {
				t.Errorf("create: %v", err)
				return
			}
			a9Same(t, s1, "create "+key, p)
			if created {
				mu.Lock()
				pend = append(pend, p)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(pend) != 30 {
		t.Errorf("%d created, want 30", len(pend))
	}
	answers := make([][2]payments.Payment, len(pend))
	for i, p := range pend {
		for d := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var got payments.Payment
				var err error
				if d == 0 {
					got, err = o1.Complete(ctx, p, "txn_"+p.ID)
				} else {
					got, err = o2.Fail(ctx, p, "FAILED_PRECONDITION", "race")
				}
				if err != nil {
					t.Errorf("finish: %v", err)
				}
				answers[i][d] = got
			}()
		}
	}
	wg.Wait()
	for _, a := range answers {
		if !reflect.DeepEqual(a[0], a[1]) {
			t.Errorf("two replicas answered differently:\n  %+v\n  %+v", a[0], a[1])
		}
		a9Same(t, s1, "race", a[0])
	}

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `
		SELECT COALESCE(u.created_by, p.created_by), COALESCE(u.minute, p.minute), COALESCE(u.minor_units, 0), COALESCE(p.s, 0)
		FROM payment_usage u FULL JOIN (
			SELECT created_by, currency, create_time / 60000000000 AS minute, SUM(minor_units)::BIGINT AS s
			FROM payments WHERE status <> 'FAILED' GROUP BY 1, 2, 3) p
		ON u.created_by = p.created_by AND u.currency = p.currency AND u.minute = p.minute
		WHERE COALESCE(u.minor_units, 0) <> COALESCE(p.s, 0)`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var c string
		var m, u, s int64
		if err := rows.Scan(&c, &m, &u, &s); err != nil {
			t.Fatal(err)
		}
		t.Errorf("payment_usage of %s minute %d: %d, payments not FAILED sum to %d", c, m, u, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}
