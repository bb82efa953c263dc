package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"mtlsbank/internal/pgcluster"
)

// TestStartStop runs devpg start as make run-pg does, connects with what it prints
// (the password file, verify-full URLs), and checks the roles: the owner may create
// tables, the runtime role may not, and neither may open the other service's
// database. devpg stop then stops the cluster.
func TestStartStop(t *testing.T) {
	if _, err := pgcluster.FindBinDir(); err != nil {
		if os.Getenv("BANK_REQUIRE_POSTGRES") == "1" {
			t.Fatal(err)
		}
		t.Skipf("devpg: %v", err)
	}
	// Under /tmp itself, as run.sh puts it: the postgres user must reach it, and
	// t.TempDir's parent is private to the test's user.
	dir, err := os.MkdirTemp("", "devpg-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx := context.Background()
	var out bytes.Buffer
	if err := run(ctx, []string{"start", "--dir", dir, "--watch-pid", itoa(os.Getpid())}, &out, os.Stderr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = run(ctx, []string{"stop", "--dir", dir}, &out, os.Stderr) })
	vars := map[string]string{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), "=")
		if !ok || !strings.HasPrefix(value, "'") || !strings.HasSuffix(value, "'") {
			t.Fatalf("not NAME='VALUE': %q", sc.Text())
		}
		vars[name] = strings.Trim(value, "'")
	}
	for _, name := range []string{"PGPASSFILE", "ACCOUNTS_OWNER_DB", "ACCOUNTS_DB", "PAYMENTS_OWNER_DB", "PAYMENTS_DB"} {
		if vars[name] == "" {
			t.Fatalf("no %s in %v", name, vars)
		}
	}
	t.Setenv("PGPASSFILE", vars["PGPASSFILE"])
	exec := func(url, sql string) error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec(vars["ACCOUNTS_OWNER_DB"], `CREATE TABLE t (id INT)`); err != nil {
		t.Errorf("the owner creates a table: %v", err)
	}
	if err := exec(vars["ACCOUNTS_DB"], `CREATE TABLE u (id INT)`); err == nil {
		t.Error("the runtime role created a table")
	}
	other := strings.Replace(vars["ACCOUNTS_DB"], "/accounts?", "/payments?", 1)
	if err := exec(other, `SELECT 1`); err == nil {
		t.Error("the accounts runtime role opened the payments database")
	}
	if err := run(ctx, []string{"stop", "--dir", dir}, &out, os.Stderr); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the cluster still runs after devpg stop: %v", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
