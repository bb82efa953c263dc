package pgtest_test

import (
	"context"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"mtlsbank/internal/pgtest"
	"mtlsbank/internal/pki"
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

// TestRole: a role of NewRole logs in with the password from the password
// file, which its URL does not hold.
func TestRole(t *testing.T) {
	db := pgtest.DatabaseName(t, pgtest.NewDatabase(t))
	r := pgtest.NewRole(t)
	url := r.URL(db)
	if u, err := neturl.Parse(url); err != nil {
		t.Fatal(err)
	} else if _, has := u.User.Password(); has || u.Query().Has("password") {
		t.Fatalf("the role's URL holds a password")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect as the role: %v", err)
	}
	defer conn.Close(ctx)
	var user string
	if err := conn.QueryRow(ctx, `SELECT current_user`).Scan(&user); err != nil || user != r.Name {
		t.Errorf("current_user = %q, %v; want %s", user, err, r.Name)
	}
}

// TestCertRole: the harness's cluster speaks TLS with a certificate for
// 127.0.0.1 from its CA; a role of NewCertRole logs in with its client
// certificate under sslmode=verify-full, and not without it, nor against a
// server certificate checked with another CA.
func TestCertRole(t *testing.T) {
	db := pgtest.DatabaseName(t, pgtest.NewDatabase(t))
	r := pgtest.NewCertRole(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, r.TLSURL(db, pgtest.CAFile(t)))
	if err != nil {
		t.Fatalf("connect with the client certificate: %v", err)
	}
	defer conn.Close(ctx)
	var user string
	var ssl bool
	if err := conn.QueryRow(ctx, `SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`).Scan(&user, &ssl); err != nil {
		t.Fatal(err)
	}
	if user != r.Name || !ssl {
		t.Errorf("connected as %q, ssl %v; want %s over TLS", user, ssl, r.Name)
	}

	other, err := pki.NewRootCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	otherCA := filepath.Join(t.TempDir(), "other-ca.crt")
	if err := os.WriteFile(otherCA, pki.EncodeCertsPEM(other.Cert), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := pgx.Connect(ctx, r.TLSURL(db, otherCA)); err == nil {
		c.Close(ctx)
		t.Error("connected although the server's certificate is not from the CA given")
	} else if !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Errorf("with another CA: %v, want the server's certificate refused", err)
	}
	if c, err := pgx.Connect(ctx, r.URL(db)); err == nil {
		c.Close(ctx)
		t.Error("the certificate role logged in without TLS and certificate")
	}
}

// TestClusterKillRestart: a test's own cluster dies by SIGKILL of its postmaster
// (connections fail), restarts on the same port, and still has what was
// committed before the kill.
func TestClusterKillRestart(t *testing.T) {
	ctx := context.Background()
	c := pgtest.NewCluster(t)
	owner, runtime := c.NewRole(t), c.NewRole(t)
	db := c.Provision(t, owner, runtime)
	url := owner.URL(db)
	exec := func(sql string) error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec(`CREATE TABLE kept (n INT); INSERT INTO kept VALUES (42)`); err != nil {
		t.Fatal(err)
	}
	c.Kill(t)
	if err := exec(`SELECT 1`); err == nil {
		t.Fatal("the killed cluster answered")
	}
	c.Restart(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT n FROM kept`).Scan(&n); err != nil || n != 42 {
		t.Fatalf("the committed row after the restart: %d, %v", n, err)
	}
}
