package payments_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"mtlsbank/internal/payments"
)

func openStore(tb testing.TB, path string, opts ...payments.StoreOption) *payments.Store {
	tb.Helper()
	s, err := payments.OpenStore(context.Background(), path, opts...)
	if err != nil {
		tb.Fatalf("OpenStore(%s): %v", path, err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func newPayment(id, createdBy, key string) payments.Payment {
	return payments.Payment{
		ID:             id,
		CreatedBy:      createdBy,
		IdempotencyKey: key,
		Fingerprint:    payments.Order{FromAccountID: "acc_a", ToAccountID: "acc_b", Currency: "EUR", MinorUnits: 100}.Fingerprint(),
		FromAccountID:  "acc_a",
		ToAccountID:    "acc_b",
		Currency:       "EUR",
		MinorUnits:     100,
		TransferKey:    "payment:" + id,
	}
}

const (
	alice = "spiffe://bank.local/customer/alice"
	bob   = "spiffe://bank.local/customer/bob"
)

func TestStoreCreateIsIdempotentPerCreator(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "p.db"))

	first, created, err := s.Create(ctx, newPayment("pay_1", alice, "k1"))
	if err != nil || !created {
		t.Fatalf("first Create: created=%v err=%v", created, err)
	}
	if first.Status != payments.StatusPending || first.Seq == 0 || first.CreateTime.IsZero() {
		t.Fatalf("first Create stored %+v, want PENDING with seq and time", first)
	}
	again, created, err := s.Create(ctx, newPayment("pay_2", alice, "k1"))
	if err != nil || created {
		t.Fatalf("same key again: created=%v err=%v, want existing", created, err)
	}
	if again.ID != "pay_1" {
		t.Fatalf("same key again returned %s, want pay_1", again.ID)
	}
	other, created, err := s.Create(ctx, newPayment("pay_3", bob, "k1"))
	if err != nil || !created || other.ID != "pay_3" {
		t.Fatalf("same key, other creator: %+v created=%v err=%v, want a new payment", other, created, err)
	}
	if _, err := s.Get(ctx, "pay_2"); !errors.Is(err, payments.ErrNotFound) {
		t.Fatalf("Get(pay_2) = %v, want ErrNotFound (the replay must not insert)", err)
	}
}

func TestStoreFirstOutcomeWins(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "p.db"))
	tests := []struct {
		name       string
		first      func(id string) (payments.Payment, error)
		second     func(id string) (payments.Payment, error)
		wantStatus payments.Status
	}{
		{
			name:       "complete then fail",
			first:      func(id string) (payments.Payment, error) { return s.Complete(ctx, id, "txn_1") },
			second:     func(id string) (payments.Payment, error) { return s.Fail(ctx, id, "FAILED_PRECONDITION", "no") },
			wantStatus: payments.StatusCompleted,
		},
		{
			name:       "fail then complete",
			first:      func(id string) (payments.Payment, error) { return s.Fail(ctx, id, "NOT_FOUND", "no such account") },
			second:     func(id string) (payments.Payment, error) { return s.Complete(ctx, id, "txn_2") },
			wantStatus: payments.StatusFailed,
		},
		{
			name:       "complete twice keeps the first transaction",
			first:      func(id string) (payments.Payment, error) { return s.Complete(ctx, id, "txn_3") },
			second:     func(id string) (payments.Payment, error) { return s.Complete(ctx, id, "txn_4") },
			wantStatus: payments.StatusCompleted,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("pay_outcome_%d", i)
			if _, _, err := s.Create(ctx, newPayment(id, alice, id)); err != nil {
				t.Fatal(err)
			}
			want, err := tt.first(id)
			if err != nil {
				t.Fatalf("first: %v", err)
			}
			if want.Status != tt.wantStatus {
				t.Fatalf("first outcome stored %s, want %s", want.Status, tt.wantStatus)
			}
			got, err := tt.second(id)
			if err != nil {
				t.Fatalf("second: %v", err)
			}
			if got.Status != want.Status || got.TransactionID != want.TransactionID ||
				got.FailureCode != want.FailureCode || !got.UpdateTime.Equal(want.UpdateTime) {
				t.Fatalf("second outcome changed the payment: %+v, want %+v", got, want)
			}
		})
	}
}

func TestStoreRefusesBadOutcomes(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "p.db"))
	if _, _, err := s.Create(ctx, newPayment("pay_1", alice, "k")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() (payments.Payment, error)
	}{
		{"complete without transaction", func() (payments.Payment, error) { return s.Complete(ctx, "pay_1", "") }},
		{"fail without code", func() (payments.Payment, error) { return s.Fail(ctx, "pay_1", "", "why") }},
		{"complete unknown payment", func() (payments.Payment, error) { return s.Complete(ctx, "pay_nope", "txn") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.call(); err == nil {
				t.Fatal("got no error")
			}
			p, err := s.Get(ctx, "pay_1")
			if err != nil || p.Status != payments.StatusPending {
				t.Fatalf("pay_1 = %+v, %v; want it still PENDING", p, err)
			}
		})
	}
	bad := newPayment("pay_2", alice, "k2")
	bad.MinorUnits = 0
	if _, _, err := s.Create(ctx, bad); err == nil {
		t.Fatal("Create with a zero amount: no error")
	}
}

func TestStoreListPagesAndFilters(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "p.db"))
	for i := range 7 {
		creator := alice
		if i%2 == 1 {
			creator = bob
		}
		id := fmt.Sprintf("pay_%d", i)
		if _, _, err := s.Create(ctx, newPayment(id, creator, id)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Complete(ctx, "pay_2", "txn_2"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		query payments.Query
		want  []string
	}{
		{"all", payments.Query{Limit: 100}, []string{"pay_0", "pay_1", "pay_2", "pay_3", "pay_4", "pay_5", "pay_6"}},
		{"first page", payments.Query{Limit: 3}, []string{"pay_0", "pay_1", "pay_2"}},
		{"by creator", payments.Query{CreatedBy: alice, Limit: 100}, []string{"pay_0", "pay_2", "pay_4", "pay_6"}},
		{"pending", payments.Query{Status: payments.StatusPending, Limit: 100}, []string{"pay_0", "pay_1", "pay_3", "pay_4", "pay_5", "pay_6"}},
		{"pending of alice", payments.Query{Status: payments.StatusPending, CreatedBy: alice, Limit: 2}, []string{"pay_0", "pay_4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := listIDs(t, s, tt.query)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("List(%+v) = %v, want %v", tt.query, got, tt.want)
			}
		})
	}
	t.Run("after", func(t *testing.T) {
		page, err := s.List(ctx, payments.Query{Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		got := listIDs(t, s, payments.Query{AfterSeq: page[2].Seq, Limit: 3})
		if fmt.Sprint(got) != "[pay_3 pay_4 pay_5]" {
			t.Fatalf("second page = %v", got)
		}
	})
	if _, err := s.List(ctx, payments.Query{}); err == nil {
		t.Fatal("List without a limit: no error")
	}
}

func listIDs(tb testing.TB, s *payments.Store, q payments.Query) []string {
	tb.Helper()
	ps, err := s.List(context.Background(), q)
	if err != nil {
		tb.Fatalf("List: %v", err)
	}
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	return ids
}

func TestStoreSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "dir", "p.db")
	s, err := payments.OpenStore(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create(ctx, newPayment("pay_1", alice, "k")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err == nil {
		t.Fatal("Ping on a closed store: no error")
	}
	s = openStore(t, path) // migrations run again and must be a no-op
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	p, err := s.Get(ctx, "pay_1")
	if err != nil || p.Status != payments.StatusPending || p.TransferKey != "payment:pay_1" {
		t.Fatalf("after reopen: %+v, %v", p, err)
	}
}

func TestOpenStoreRefuses(t *testing.T) {
	dir := t.TempDir()
	newer := filepath.Join(dir, "newer.db")
	openStore(t, newer).Close()
	db, err := sql.Open("sqlite", newer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO schema_history (version, name, checksum, applied_at) VALUES (99, '0099_future.sql', '', 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	tests := []struct {
		name    string
		path    string
		wantErr error
	}{
		{name: "empty path", path: ""},
		{name: "query in path", path: filepath.Join(dir, "x.db?mode=ro")},
		{name: "schema from the future", path: newer, wantErr: payments.ErrSchemaTooNew},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := payments.OpenStore(context.Background(), tt.path)
			if err == nil {
				s.Close()
				t.Fatal("no error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestStoreCreateAnswersWhatItStored(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "p.db"))
	p := newPayment("pay_1", alice, "k")
	p.Memo = "rent"
	p.Status, p.TransactionID = payments.StatusCompleted, "txn_ignored" // Create decides these
	got, created, err := s.Create(ctx, p)
	if err != nil || !created {
		t.Fatalf("Create: created=%v err=%v", created, err)
	}
	stored, err := s.Get(ctx, "pay_1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, stored) {
		t.Fatalf("Create answered %+v, but stored %+v", got, stored)
	}
	if stored.Status != payments.StatusPending || stored.TransactionID != "" {
		t.Fatalf("stored %+v, want PENDING without a transaction", stored)
	}
}

// TestStoreConcurrentWrites sends many writers at once, so that the committer
// groups them: duplicates of one key must make one payment, and concurrent
// outcomes of one payment must agree on the first. Group commit off must
// behave the same.
func TestStoreConcurrentWrites(t *testing.T) {
	tests := []struct {
		name string
		opts []payments.StoreOption
	}{
		{"group commit", nil},
		{"one write per transaction", []payments.StoreOption{payments.WithMaxBatch(1), payments.WithReadConns(1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := openStore(t, filepath.Join(t.TempDir(), "p.db"), tt.opts...)
			const n = 50
			type answer struct {
				p       payments.Payment
				created bool
				err     error
			}
			answers := make([]answer, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					p, created, err := s.Create(ctx, newPayment(fmt.Sprintf("pay_dup_%d", i), alice, "same-key"))
					answers[i] = answer{p, created, err}
				})
			}
			wg.Wait()
			var winner string
			for i, a := range answers {
				if a.err != nil {
					t.Fatalf("Create %d: %v", i, a.err)
				}
				if a.created {
					if winner != "" {
						t.Fatalf("two payments for one key: %s and %s", winner, a.p.ID)
					}
					winner = a.p.ID
				}
			}
			for i, a := range answers {
				if a.p.ID != winner {
					t.Fatalf("Create %d answered %s, want the one payment %s", i, a.p.ID, winner)
				}
			}
			if ids := listIDs(t, s, payments.Query{Limit: 100}); len(ids) != 1 || ids[0] != winner {
				t.Fatalf("stored %v, want only %s", ids, winner)
			}

			outcomes := make([]payments.Payment, n)
			errs := make([]error, n)
			for i := range n {
				wg.Go(func() {
					if i%2 == 0 {
						outcomes[i], errs[i] = s.Complete(ctx, winner, fmt.Sprintf("txn_%d", i))
					} else {
						outcomes[i], errs[i] = s.Fail(ctx, winner, "FAILED_PRECONDITION", "insufficient funds")
					}
				})
			}
			wg.Wait()
			stored, err := s.Get(ctx, winner)
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("outcome %d: %v", i, errs[i])
				}
				if !reflect.DeepEqual(outcomes[i], stored) {
					t.Fatalf("outcome %d answered %+v, but stored is %+v", i, outcomes[i], stored)
				}
			}
		})
	}
}

func TestStoreClosedRefusesWrites(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "p.db")
	s, err := payments.OpenStore(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create(ctx, newPayment("pay_1", alice, "k1")); err != nil {
		t.Fatal(err)
	}
	// Writers racing with Close: each is either refused or durable.
	const n = 20
	acked := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, _, err := s.Create(ctx, newPayment(fmt.Sprintf("pay_race_%d", i), alice, fmt.Sprintf("race-%d", i)))
			switch {
			case err == nil:
				acked[i] = true
			case !errors.Is(err, payments.ErrClosed):
				t.Errorf("Create racing Close: %v, want success or ErrClosed", err)
			}
		})
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	tests := []struct {
		name string
		call func() error
	}{
		{"create", func() error { _, _, err := s.Create(ctx, newPayment("pay_2", alice, "k2")); return err }},
		{"complete", func() error { _, err := s.Complete(ctx, "pay_1", "txn_1"); return err }},
		{"fail", func() error { _, err := s.Fail(ctx, "pay_1", "NOT_FOUND", "gone"); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, payments.ErrClosed) {
				t.Fatalf("got %v, want ErrClosed", err)
			}
		})
	}

	reopened := openStore(t, path)
	for i, ok := range acked {
		p, err := reopened.Get(ctx, fmt.Sprintf("pay_race_%d", i))
		switch {
		case ok && err != nil:
			t.Errorf("acknowledged pay_race_%d lost: %v", i, err)
		case !ok && !errors.Is(err, payments.ErrNotFound):
			t.Errorf("refused pay_race_%d: Get = %+v, %v; want ErrNotFound", i, p, err)
		}
	}
	p, err := reopened.Get(ctx, "pay_1")
	if err != nil || p.Status != payments.StatusPending {
		t.Fatalf("pay_1 after the refused writes: %+v, %v; want PENDING", p, err)
	}
}
