package pgtest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"mtlsbank/internal/migrate"
)

// WantInsufficientPrivilege runs each statement on the database url names (a
// role's URL) and fails the test for every one that PostgreSQL does not refuse
// with insufficient_privilege (42501): a least-privilege role's limits.
func WantInsufficientPrivilege(tb testing.TB, url string, statements ...string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	for _, st := range statements {
		_, err := conn.Exec(ctx, st)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			tb.Errorf("%s: %v, want insufficient_privilege", st, err)
		}
	}
}

// WantConnectRefused fails the test unless the server refuses a connection to
// url (a role's URL on a database it has no CONNECT on).
func WantConnectRefused(tb testing.TB, url string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	switch {
	case err == nil:
		c.Close(ctx)
		tb.Error("the role connected to a database it has no CONNECT on")
	case !errors.As(err, new(*pgconn.PgError)):
		tb.Errorf("connect: %v, want a refusal from the server", err)
	}
}

// WantGrantsCoverTables fails the test unless the tables of the current schema
// of the database url names are exactly those grants name plus the migration
// history (which a runtime role reads only): a store cannot ship a table without
// its runtime privileges.
func WantGrantsCoverTables(tb testing.TB, url string, grants []migrate.TableGrant) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename`)
	if err != nil {
		tb.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		tb.Fatal(err)
	}
	granted := []string{migrate.HistoryTable}
	for _, g := range grants {
		granted = append(granted, g.Table)
	}
	slices.Sort(granted)
	if !slices.Equal(tables, granted) {
		tb.Errorf("tables %v, the runtime grants and the history cover %v", tables, granted)
	}
}
