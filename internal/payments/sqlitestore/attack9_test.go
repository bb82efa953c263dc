package sqlitestore_test

// The ninth fresh attacker's tests of Insert without RETURNING and Finish without
// read-back (commits 79e3a9e, 6cf4db6): every payment Orders answers with must be the
// payment as stored, under group commit, two processes on one file, leases taken
// over, stale copies, refused inserts and the payment_usage triggers.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"mtlsbank/internal/payments"
	"mtlsbank/internal/payments/sqlitestore"
)

// a9Clock is a settable clock shared by the Orders of a test.
type a9Clock struct{ ns atomic.Int64 }

func (c *a9Clock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *a9Clock) add(d time.Duration) { c.ns.Add(int64(d)) }
func newA9Clock() *a9Clock {
	c := &a9Clock{}
	c.ns.Store(time.Date(2026, 12, 3, 18, 0, 0, 123456789, time.UTC).UnixNano())
	return c
}

func a9Open(tb testing.TB, path string, opts ...sqlitestore.Option) *sqlitestore.Store {
	tb.Helper()
	s, err := sqlitestore.Open(context.Background(), path, opts...)
	if err != nil {
		tb.Fatalf("open %s: %v", path, err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

var a9IDs atomic.Int64

func a9Payment(creator, key string, units int64) payments.Payment {
	n := a9IDs.Add(1)
	id := fmt.Sprintf("pay_a9%024d", n)
	return payments.Payment{
		ID: id, CreatedBy: creator, IdempotencyKey: key, Fingerprint: "fp-" + key,
		FromAccountID: "acc_from", ToAccountID: "acc_to", Currency: "EUR", MinorUnits: units,
		Memo: "memo " + key, TransferKey: "tk_" + id,
		CreatorSerial: "0a1b", CreatorIssuer: []byte{0x30, 0x00},
		CreatorCAs: []payments.CertRef{{Serial: "ff", Issuer: []byte{0x30, 0x01, 0x02}}},
	}
}

// a9Same fails unless got is the payment as stored now.
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

// TestAttack9AnswerIsStored: Create, Complete, Fail and the refused duplicate answer
// with the payment as stored, for awkward field values (memo with NUL, invalid UTF-8,
// an empty issuer, no CAs, a lease), also after the trigger's insert into
// payment_usage and a refused insert in between.
func TestAttack9AnswerIsStored(t *testing.T) {
	ctx := context.Background()
	s := a9Open(t, filepath.Join(t.TempDir(), "p.db"))
	clk := newA9Clock()
	o := payments.NewOrders(s, clk.now)
	lease := payments.Lease{Owner: "proc-a", Duration: time.Minute}
	limit := &payments.RollingLimit{MinorUnits: 1_000_000, Window: 24 * time.Hour}

	variants := []func(*payments.Payment){
		func(p *payments.Payment) {},
		func(p *payments.Payment) { p.Memo = "nul\x00inside" },
		func(p *payments.Payment) { p.Memo = "bad utf8 \xff\xfe" },
		func(p *payments.Payment) { p.CreatorIssuer = []byte{} },
		func(p *payments.Payment) { p.CreatorCAs = nil; p.CreatorSerial = "" },
		func(p *payments.Payment) { p.Memo = "€ ünïcode 𝄞" },
	}
	for i, v := range variants {
		for _, outcome := range []string{"complete", "fail", "fail-reason"} {
			p := a9Payment("spiffe://bank.local/user/a", fmt.Sprintf("k%d-%s", i, outcome), 100)
			v(&p)
			opts := payments.CreateOptions{Lease: lease}
			if i%2 == 0 {
				opts.Limit = limit
			}
			got, created, err := o.Create(ctx, p, opts)
			if err != nil || !created {
				t.Fatalf("create %d: %v created=%v", i, err, created)
			}
			a9Same(t, s, "create "+p.IdempotencyKey, got)
			// A refused insert under the same key: seq and all as stored.
			dup, created, err := o.Create(ctx, a9Payment(p.CreatedBy, p.IdempotencyKey, 5), opts)
			if err != nil || created || dup.ID != got.ID || dup.Seq != got.Seq {
				t.Fatalf("duplicate %s: %+v created=%v err=%v, want %s seq %d", p.IdempotencyKey, dup, created, err, got.ID, got.Seq)
			}
			clk.add(time.Second + 7)
			var done payments.Payment
			switch outcome {
			case "complete":
				done, err = o.Complete(ctx, got, "txn_"+got.ID)
			case "fail":
				done, err = o.Fail(ctx, got, "FAILED_PRECONDITION", "no money")
			default:
				done, err = o.FailWithErrorReason(ctx, got, "NOT_FOUND", "ACCOUNT_NOT_FOUND", "no account")
			}
			if err != nil {
				t.Fatalf("%s %s: %v", outcome, got.ID, err)
			}
			a9Same(t, s, outcome+" "+p.IdempotencyKey, done)
			// The payment created by the trigger-firing insert right after: its seq too.
			next, _, err := o.Create(ctx, a9Payment(p.CreatedBy, p.IdempotencyKey+"-next", 1), opts)
			if err != nil {
				t.Fatal(err)
			}
			if next.Seq <= got.Seq {
				t.Errorf("seq %d after %d", next.Seq, got.Seq)
			}
			a9Same(t, s, "next", next)
		}
	}
}

// TestAttack9FinishStaleAndForeign: a copy from Create after another process claimed
// the payment (lease taken over), a copy from Claim after the first driver finished,
// a second outcome on a finished payment, a payment that is not there, and a copy
// that is not PENDING.
func TestAttack9FinishStaleAndForeign(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "p.db")
	s1, s2 := a9Open(t, path), a9Open(t, path) // two processes on one file
	clk := newA9Clock()
	o1, o2 := payments.NewOrders(s1, clk.now), payments.NewOrders(s2, clk.now)
	la := payments.Lease{Owner: "proc-a", Duration: time.Second}
	lb := payments.Lease{Owner: "proc-b", Duration: time.Minute}

	created, _, err := o1.Create(ctx, a9Payment("u", "stale", 10), payments.CreateOptions{Lease: la})
	if err != nil {
		t.Fatal(err)
	}
	clk.add(2 * time.Second) // a's lease expires
	claimed, ok, err := o2.Claim(ctx, created.ID, lb)
	if err != nil || !ok || claimed.LeaseOwner != "proc-b" {
		t.Fatalf("claim: %+v %v %v", claimed, ok, err)
	}
	a9Same(t, s2, "claim", claimed)
	// a still finishes with its Create copy (its transfer answered late): the answer is
	// the payment as stored, b's lease cleared.
	done, err := o1.Complete(ctx, created, "txn_a")
	if err != nil {
		t.Fatal(err)
	}
	a9Same(t, s1, "complete with the copy from before the takeover", done)
	if done.LeaseOwner != "" || done.Status != payments.StatusCompleted || done.TransactionID != "txn_a" {
		t.Errorf("complete: %+v", done)
	}
	// b then fails it with its Claim copy: first outcome wins, answered as stored.
	second, err := o2.Fail(ctx, claimed, "FAILED_PRECONDITION", "late")
	if err != nil {
		t.Fatal(err)
	}
	if second.Status != payments.StatusCompleted || second.TransactionID != "txn_a" || second.FailureCode != "" {
		t.Errorf("second outcome: %+v, want the first (COMPLETED txn_a)", second)
	}
	a9Same(t, s2, "second outcome", second)
	// Again with a third copy, through the other store: still the first.
	third, err := o1.Complete(ctx, claimed, "txn_other")
	if err != nil || third.TransactionID != "txn_a" {
		t.Errorf("third: %+v %v", third, err)
	}
	// Not there.
	ghost := created
	ghost.ID = "pay_ghost"
	if _, err := o1.Complete(ctx, ghost, "txn"); !errors.Is(err, payments.ErrNotFound) {
		t.Errorf("finish a payment that is not there: %v, want ErrNotFound", err)
	}
	// Not PENDING as given; no seq.
	if _, err := o1.Complete(ctx, done, "txn"); err == nil {
		t.Errorf("finish a copy given as COMPLETED: no error")
	}
	noSeq := created
	noSeq.Seq = 0
	if _, err := o1.Complete(ctx, noSeq, "txn"); err == nil {
		t.Errorf("finish a copy without seq: no error")
	}
}

// TestAttack9ConcurrentDrivers: many creates in group-commit batches (duplicates
// included) on two stores of one file, then each payment finished at once by two
// drivers with different outcomes. Each answer must be the stored payment, exactly
// one outcome recorded, and payment_usage must equal the sum of the payments that
// are not FAILED, per creator and minute.
func TestAttack9ConcurrentDrivers(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "p.db")
	var maxBatch atomic.Int64
	observe := sqlitestore.WithCommitObserver(func(n int, _ time.Duration) {
		for m := maxBatch.Load(); int64(n) > m && !maxBatch.CompareAndSwap(m, int64(n)); m = maxBatch.Load() {
		}
	})
	s1, s2 := a9Open(t, path, observe), a9Open(t, path, observe)
	clk := newA9Clock()
	o1, o2 := payments.NewOrders(s1, clk.now), payments.NewOrders(s2, clk.now)
	limit := &payments.RollingLimit{MinorUnits: 1 << 40, Window: time.Hour}
	defer func() {
		t.Logf("largest batch: %d", maxBatch.Load())
		if maxBatch.Load() < 2 {
			t.Errorf("no batch of more than one write: group commit not exercised")
		}
	}()

	const n = 120
	type res struct {
		p       payments.Payment
		created bool
	}
	results := make([]res, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := o1
			if i%2 == 1 {
				o = o2
			}
			creator := fmt.Sprintf("u%d", i%5)
			key := fmt.Sprintf("k%d", i/2) // pairs share creator? no: i%5 differs; dupes below
			if i%3 == 0 {
				key = fmt.Sprintf("dup%d", i%15) // same creator (i%5) and key: duplicates
			}
			opts := payments.CreateOptions{Lease: payments.Lease{Owner: "p", Duration: time.Minute}}
			if i%4 == 0 {
				opts.Limit = limit
			}
			if i == 60 {
				clk.add(time.Minute) // another minute for some
			}
			p, created, err := o.Create(ctx, a9Payment(creator, key, int64(i+1)), opts)
			if err != nil {
				t.Errorf("create %d: %v", i, err)
				return
			}
			results[i] = res{p, created}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	seqs := map[int64]string{}
	var pending []payments.Payment
	for i, r := range results {
		a9Same(t, s1, fmt.Sprintf("create %d (created=%v)", i, r.created), r.p)
		if id, ok := seqs[r.p.Seq]; ok && id != r.p.ID {
			t.Errorf("seq %d answered for %s and %s", r.p.Seq, id, r.p.ID)
		}
		seqs[r.p.Seq] = r.p.ID
		if r.created {
			pending = append(pending, r.p)
		}
	}
	var changedA, changedB sync.Map
	for _, p := range pending {
		for d, o := range []*payments.Orders{o1, o2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var got payments.Payment
				var err error
				if d == 0 {
					got, err = o.Complete(ctx, p, "txn_"+p.ID)
				} else {
					got, err = o.Fail(ctx, p, "FAILED_PRECONDITION", "race")
				}
				if err != nil {
					t.Errorf("finish %s: %v", p.ID, err)
					return
				}
				if d == 0 {
					changedA.Store(p.ID, got)
				} else {
					changedB.Store(p.ID, got)
				}
			}()
		}
	}
	wg.Wait()
	for _, p := range pending {
		a, _ := changedA.Load(p.ID)
		b, _ := changedB.Load(p.ID)
		pa, pb := a.(payments.Payment), b.(payments.Payment)
		if !reflect.DeepEqual(pa, pb) {
			t.Errorf("%s: two drivers answered differently:\n  %+v\n  %+v", p.ID, pa, pb)
		}
		a9Same(t, s1, "race "+p.ID, pa)
	}
	a9CheckUsage(t, path)
}

// a9CheckUsage compares payment_usage with the payments that are not FAILED.
func a9CheckUsage(tb testing.TB, path string) {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`
		SELECT COALESCE(u.created_by, p.created_by), COALESCE(u.minute, p.minute), COALESCE(u.minor_units, 0), COALESCE(p.s, 0)
		FROM payment_usage u FULL JOIN (
			SELECT created_by, currency, create_time / 60000000000 AS minute, SUM(minor_units) AS s
			FROM payments WHERE status <> 'FAILED' GROUP BY 1, 2, 3) p
		ON u.created_by = p.created_by AND u.currency = p.currency AND u.minute = p.minute
		WHERE COALESCE(u.minor_units, 0) <> COALESCE(p.s, 0)`)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	// Something to check: payments, each counted or (FAILED) given back. (Not usage
	// above zero: when every race of TestAttack9ConcurrentDrivers is won by its Fail,
	// every minute's usage is rightly back to zero.)
	var usageRows int
	if err := db.QueryRow(`SELECT COUNT(*) FROM payment_usage`).Scan(&usageRows); err != nil || usageRows == 0 {
		tb.Errorf("payment_usage: %d rows (err %v): nothing checked", usageRows, err)
	}
	for rows.Next() {
		var c string
		var m, u, s int64
		if err := rows.Scan(&c, &m, &u, &s); err != nil {
			tb.Fatal(err)
		}
		tb.Errorf("payment_usage of %s minute %d: %d, payments not FAILED sum to %d", c, m, u, s)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
}

// TestAttack9LimitAfterFail: a payment that fails gives its room back (the trigger on
// Finish without RETURNING), one that completes keeps it, and a refusal never takes
// any; a refusal's answer is as stored.
func TestAttack9LimitAfterFail(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "p.db")
	s := a9Open(t, path)
	clk := newA9Clock()
	o := payments.NewOrders(s, clk.now)
	limit := &payments.RollingLimit{MinorUnits: 100, Window: time.Hour}
	opts := payments.CreateOptions{Limit: limit, Lease: payments.Lease{Owner: "p", Duration: time.Minute}}
	create := func(key string, units int64) payments.Payment {
		t.Helper()
		p, created, err := o.Create(ctx, a9Payment("lim", key, units), opts)
		if err != nil || !created {
			t.Fatalf("create %s: %v %v", key, err, created)
		}
		a9Same(t, s, "create "+key, p)
		return p
	}
	a := create("a", 60)
	if a.Status != payments.StatusPending {
		t.Fatalf("a: %s", a.Status)
	}
	if r := create("r1", 60); r.Status != payments.StatusFailed || r.LimitRemaining != 40 {
		t.Errorf("r1: %s remaining %d, want FAILED with 40", r.Status, r.LimitRemaining)
	}
	if _, err := o.Fail(ctx, a, "FAILED_PRECONDITION", "x"); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Second)
	b := create("b", 100)
	if b.Status != payments.StatusPending {
		t.Errorf("b after a failed: %s %s, want PENDING (a's room given back)", b.Status, b.FailureReason)
	}
	if _, err := o.Complete(ctx, b, "txn_b"); err != nil {
		t.Fatal(err)
	}
	// a failing again (a stale copy) must not give room back twice.
	if again, err := o.Fail(ctx, a, "FAILED_PRECONDITION", "again"); err != nil || again.FailureReason != "x" {
		t.Errorf("fail again: %+v %v", again, err)
	}
	if _, err := o.Fail(ctx, b, "FAILED_PRECONDITION", "late fail of a completed"); err != nil {
		t.Fatal(err)
	}
	if c := create("c", 1); c.Status != payments.StatusFailed || c.LimitRemaining != 0 {
		t.Errorf("c: %s remaining %d, want FAILED with 0", c.Status, c.LimitRemaining)
	}
	a9CheckUsage(t, path)
}

// TestAttack9MalformedCreatorCAs: Insert stores creator CAs that ScanPayment refuses
// to read (a serial or issuer missing), Create and Complete answer as if all were
// well, and the stored payment is unreadable: Get fails, and so does List, which
// stops every recovery pass.
//
// The finding (low: creatorOf always fills serial and issuer from a parsed certificate;
// a store used through Orders by other code, or a future change of creatorOf, wrote a
// poison row; Finish no longer reads the row back, so nothing on the write path
// noticed), fixed: EncodeCertRefs (InsertValues) refuses what DecodeCertRefs refuses,
// so Create fails and stores nothing.
func TestAttack9MalformedCreatorCAs(t *testing.T) {
	ctx := context.Background()
	s := a9Open(t, filepath.Join(t.TempDir(), "p.db"))
	o := payments.NewOrders(s, nil)
	p := a9Payment("u", "bad-cas", 10)
	p.CreatorCAs = []payments.CertRef{{Serial: "", Issuer: nil}}
	got, created, err := o.Create(ctx, p, payments.CreateOptions{})
	if err != nil {
		// Refused at the door, and nothing stored.
		if ps, lerr := s.List(ctx, payments.Query{Limit: 10}); lerr != nil || len(ps) != 0 {
			t.Errorf("after the refused Create: List = %d payments, %v; want none", len(ps), lerr)
		}
		return
	}
	t.Errorf("Create of a payment whose creator CAs cannot be read back: created=%v, no error", created)
	done, err := o.Complete(ctx, got, "txn")
	if _, gerr := s.Get(ctx, got.ID); gerr != nil {
		t.Errorf("Create (created=%v) and Complete (%v, err %v) succeeded, but the payment as stored cannot be read: %v", created, done.Status, err, gerr)
	}
	if _, lerr := s.List(ctx, payments.Query{Limit: 10}); lerr != nil {
		t.Errorf("List fails on the row: %v", lerr)
	}
}

// TestAttack9FailingCompanions: creates whose insert fails (an id already used:
// the UNIQUE id, outside ON CONFLICT's target) share group-commit batches with good
// creates and with finishes; the failing one's batch is rolled back and its
// companions run again: every answer must still be the payment as stored (seq
// included, last_insert_rowid of the right statement), the failing orders absent
// under their keys, and payment_usage right.
func TestAttack9FailingCompanions(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "p.db")
	s := a9Open(t, path)
	clk := newA9Clock()
	o := payments.NewOrders(s, clk.now)
	lease := payments.Lease{Owner: "p", Duration: time.Minute}
	limit := &payments.RollingLimit{MinorUnits: 1 << 40, Window: time.Hour}
	var base []payments.Payment
	for i := range 20 {
		p, _, err := o.Create(ctx, a9Payment("base", fmt.Sprintf("b%d", i), int64(i+1)), payments.CreateOptions{Lease: lease})
		if err != nil {
			t.Fatal(err)
		}
		base = append(base, p)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var good []payments.Payment
	var badKeys []string
	for i := range 90 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch i % 3 {
			case 0: // a create whose id is taken
				p := a9Payment("mix", fmt.Sprintf("bad%d", i), 3)
				p.ID = base[i%20].ID
				if _, _, err := o.Create(ctx, p, payments.CreateOptions{Lease: lease, Limit: limit}); err == nil {
					t.Errorf("create with a taken id: no error")
				}
				mu.Lock()
				badKeys = append(badKeys, p.IdempotencyKey)
				mu.Unlock()
			case 1:
				p, created, err := o.Create(ctx, a9Payment("mix", fmt.Sprintf("good%d", i), int64(i+1)), payments.CreateOptions{Lease: lease, Limit: limit})
				if err != nil || !created {
					t.Errorf("good create: %v %v", err, created)
					return
				}
				mu.Lock()
				good = append(good, p)
				mu.Unlock()
			default:
				b := base[i%20]
				var got payments.Payment
				var err error
				if i%2 == 0 {
					got, err = o.Fail(ctx, b, "FAILED_PRECONDITION", "mix")
				} else {
					got, err = o.Complete(ctx, b, "txn_mix")
				}
				if err != nil {
					t.Errorf("finish: %v", err)
					return
				}
				mu.Lock()
				good = append(good, got)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, p := range good {
		a9Same(t, s, "mixed batch "+p.IdempotencyKey, p)
	}
	list, err := s.List(ctx, payments.Query{CreatedBy: "mix", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range list {
		for _, k := range badKeys {
			if p.IdempotencyKey == k {
				t.Errorf("a refused create was stored: %+v", p)
			}
		}
	}
	if len(list) != 30 {
		t.Errorf("%d payments of mix stored, want 30", len(list))
	}
	a9CheckUsage(t, path)
}
