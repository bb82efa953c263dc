package pgstore_test

import (
	"context"
	"errors"
	neturl "net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"mtlsbank/internal/ledger"
	"mtlsbank/internal/ledger/ledgertest"
	"mtlsbank/internal/ledger/pgstore"
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
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close store: %v", err)
		}
	})
	return s
}

// TestConformance runs the ledger.Store conformance suite on PostgreSQL:
// each test on a database of its own; replicas are stores with their own
// pools on one database, as replicas of the accounts service would be.
func TestConformance(t *testing.T) {
	ledgertest.Run(t, ledgertest.Stores{
		New: func(tb testing.TB) ledger.Store { return open(tb, pgtest.NewDatabase(tb)) },
		Replicas: func(tb testing.TB, n int) []ledger.Store {
			url := pgtest.NewDatabase(tb)
			stores := make([]ledger.Store, n)
			for i := range stores {
				stores[i] = open(tb, url)
			}
			return stores
		},
	})
}

// TestOpenConcurrently starts eight replicas' stores on one new database at
// once: the migrations run once (the advisory lock) and every store opens.
func TestOpenConcurrently(t *testing.T) {
	pgtest.CheckOpenConcurrently(t, 8, 2, openStore())
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

// TestOpenRefuses checks that Open fails cleanly, and that no error carries
// the password of the URL: errors end up in logs.
func TestOpenRefuses(t *testing.T) {
	good := pgtest.NewDatabase(t)
	u, err := neturl.Parse(good)
	if err != nil {
		t.Fatal(err)
	}
	const secret = "s3cret-Pa55word"
	wrongPassword := *u
	wrongPassword.User = neturl.UserPassword(u.User.Username(), secret)
	tests := []struct {
		name string
		url  string
		opts []pgstore.Option
		want error
	}{
		{name: "unparsable URL", url: "postgres://bank:" + secret + "@127.0.0.1:notaport/db", want: pgstore.ErrBadURL},
		// pgx redacts the password of this one to "xxxxx@Pa55word": its
		// redaction is best effort, so Open does not quote pgx's message.
		{name: "password with an @", url: "postgres://bank:s3cret@Pa55word@[::1/db", want: pgstore.ErrBadURL},
		{name: "unknown parameter value", url: "postgres://bank:" + secret + "@127.0.0.1/db?sslmode=sometimes", want: pgstore.ErrBadURL},
		{name: "wrong password", url: wrongPassword.String()},
		{name: "pool too small", url: good, opts: []pgstore.Option{pgstore.WithMaxConns(1)}},
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

// TestOpenRefusesNewerSchema: a database migrated by a newer build is refused,
// not run on.
func TestOpenRefusesNewerSchema(t *testing.T) {
	url := pgtest.NewDatabase(t)
	s := open(t, url)
	future := s.SchemaVersion() + 1
	s.Close()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(),
		`INSERT INTO schema_history (version, name, checksum, applied_at) VALUES ($1, 'NNNN_future.sql', '', 0)`, future); err != nil {
		t.Fatal(err)
	}
	if _, err := pgstore.Open(context.Background(), url); !errors.Is(err, pgstore.ErrSchemaTooNew) {
		t.Errorf("Open = %v, want ErrSchemaTooNew", err)
	}
}

// TestWatchAcrossReconnect: the connection a replica listens on for other
// replicas' commits is killed (a database restart or failover does that);
// entries committed by the other replica right after, before the listener is
// back, still reach this replica's Watch, in order and once each, because
// FollowCommits wakes the watchers after it listens again.
func TestWatchAcrossReconnect(t *testing.T) {
	url := pgtest.NewDatabase(t)
	writer := ledgertest.StartLedger(t, open(t, url))
	watcher := ledgertest.StartLedger(t, open(t, url))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := ledgertest.MustOpen(t, writer, "spiffe://bank.local/customer/alice", "EUR")

	entries := make(chan ledger.Entry, 100)
	go func() {
		_ = watcher.Watch(ctx, 0, func(e ledger.Entry) error { entries <- e; return nil })
	}()
	var next int64 = 1
	expect := func(n int) {
		t.Helper()
		deadline := time.NewTimer(30 * time.Second)
		defer deadline.Stop()
		for range n {
			select {
			case e := <-entries:
				if e.Sequence != next {
					t.Fatalf("watch delivered sequence %d, want %d", e.Sequence, next)
				}
				next++
			case <-deadline.C:
				t.Fatalf("watch stopped at sequence %d", next-1)
			}
		}
	}
	ledgertest.MustDeposit(t, writer, a, 100)
	expect(2)

	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	var killed int
	if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN %' AND pid <> pg_backend_pid()`).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed == 0 {
		t.Fatal("found no listening connection to kill")
	}
	for i := range 3 {
		ledgertest.MustDeposit(t, writer, a, int64(200+i))
	}
	expect(6)
	select {
	case e := <-entries:
		t.Errorf("an extra entry %d", e.Sequence)
	default:
	}
}
