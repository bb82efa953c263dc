package pgstore_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"mtlsbank/internal/payments"
	"mtlsbank/internal/payments/paymentstest"
	"mtlsbank/internal/payments/pgstore"
	"mtlsbank/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// open opens a store on the database url, closed at the end of the test.
func open(tb testing.TB, url string, opts ...pgstore.Option) *pgstore.Store {
	tb.Helper()
	s, err := pgstore.Open(context.Background(), url, opts...)
	if err != nil {
		tb.Fatalf("pgstore.Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// TestConformance runs the payments.Store conformance suite on PostgreSQL: each
// test on a database of its own; replicas are stores with their own pools on one
// database, as replicas of the payments service would be.
func TestConformance(t *testing.T) {
	paymentstest.Run(t, paymentstest.Stores{
		New: func(tb testing.TB) payments.Store { return open(tb, pgtest.NewDatabase(tb)) },
		Replicas: func(tb testing.TB, n int) []payments.Store {
			url := pgtest.NewDatabase(tb)
			stores := make([]payments.Store, n)
			for i := range stores {
				stores[i] = open(tb, url)
			}
			return stores
		},
	})
}

// TestOpenConcurrently starts four replicas' stores on one new database at once:
// the migrations run once (the advisory lock) and every store opens.
func TestOpenConcurrently(t *testing.T) {
	pgtest.CheckOpenConcurrently(t, 4, 2, openStore())
}

// openStore opens a store with opts, for the pgtest checks.
func openStore(opts ...pgstore.Option) func(context.Context, string) (pgtest.Store, error) {
	return func(ctx context.Context, url string) (pgtest.Store, error) {
		s, err := pgstore.Open(ctx, url, opts...)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}

// TestOpenRefuses checks that Open fails cleanly, without the URL's password in
// the error: errors end up in logs.
func TestOpenRefuses(t *testing.T) {
	const secret = "s3cret-Pa55word"
	tests := []struct {
		name string
		url  string
		opts []pgstore.Option
		want error
	}{
		{name: "unparsable URL", url: "postgres://bank:" + secret + "@127.0.0.1:notaport/db", want: pgstore.ErrBadURL},
		{name: "password with an @", url: "postgres://bank:s3cret@Pa55word@[::1/db", want: pgstore.ErrBadURL},
		{name: "no connection", url: pgtest.NewDatabase(t), opts: []pgstore.Option{pgstore.WithMaxConns(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := pgstore.Open(ctx, tt.url, tt.opts...)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Open = %v, want %v", err, tt.want)
			}
			if strings.Contains(err.Error(), "Pa55word") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

// TestClosedRefusesWrites: a closed store refuses writes with payments.ErrClosed;
// what it acknowledged before is in the database.
func TestClosedRefusesWrites(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s, err := pgstore.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	orders := payments.NewOrders(s, nil)
	if _, _, err := orders.Create(ctx, paymentstest.NewPayment("pay_1", paymentstest.Alice, "k1"), payments.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, _, err := orders.Create(ctx, paymentstest.NewPayment("pay_2", paymentstest.Alice, "k2"), payments.CreateOptions{}); !errors.Is(err, payments.ErrClosed) {
		t.Fatalf("Create on a closed store: %v, want ErrClosed", err)
	}
	if p, err := open(t, url).Get(ctx, "pay_1"); err != nil || p.Status != payments.StatusPending {
		t.Fatalf("pay_1 after reopening: %+v, %v", p, err)
	}
}
