package pgtest_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"mtlsbank/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestNewDatabase checks that each test gets its own empty, writable database.
func TestNewDatabase(t *testing.T) {
	ctx := context.Background()
	urls := []string{pgtest.NewDatabase(t), pgtest.NewDatabase(t)}
	if urls[0] == urls[1] {
		t.Fatalf("two databases with one URL")
	}
	names := map[string]bool{}
	for i, u := range urls {
		conn, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Fatalf("connect to database %d: %v", i, err)
		}
		defer conn.Close(ctx)
		var name string
		var tables int
		if err := conn.QueryRow(ctx, `SELECT current_database(),
			(SELECT count(*) FROM pg_tables WHERE schemaname = 'public')`).Scan(&name, &tables); err != nil {
			t.Fatal(err)
		}
		if tables != 0 {
			t.Errorf("database %s has %d tables, want a fresh one", name, tables)
		}
		if names[name] {
			t.Errorf("database %s handed out twice", name)
		}
		names[name] = true
		if _, err := conn.Exec(ctx, `CREATE TABLE t (id INT PRIMARY KEY)`); err != nil {
			t.Fatalf("create a table in %s: %v", name, err)
		}
	}
}

// TestDatabaseDropped checks that a test's database is gone after the test.
func TestDatabaseDropped(t *testing.T) {
	var url string
	t.Run("user", func(t *testing.T) { url = pgtest.NewDatabase(t) })
	if url == "" {
		t.Skip("no database")
	}
	_, err := pgx.Connect(context.Background(), url)
	if err == nil {
		t.Fatalf("connected to the database of a finished test")
	}
}
