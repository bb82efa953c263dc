package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	typev1 "mtlsbank/gen/bank/type/v1"
	"mtlsbank/internal/dsn"
	"mtlsbank/internal/ledger/pgstore"
	"mtlsbank/internal/pgtest"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/service"
)

// mainEnv makes the test binary run main() instead of the tests, so that a test
// can run the service as a process (its command line and output as they are in
// production) without building it.
const mainEnv = "ACCOUNTS_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		main()
	}
	os.Exit(pgtest.Main(m))
}

// migrateAs runs the migration step (accounts --migrate) as bin/accounts does,
// with the database URL url and the runtime role runtime (may be empty).
func migrateAs(tb testing.TB, url, runtime string) error {
	tb.Helper()
	args := []string{"--migrate", "--db", url}
	if runtime != "" {
		args = append(args, "--db-runtime-role", runtime)
	}
	return run(context.Background(), args, func(string) string { return "" }, io.Discard, slog.New(slog.DiscardHandler))
}

// TestServeOnPostgres provisions a database with an owner and a runtime role
// (migrate.ProvisionSQL), runs accounts --migrate as the owner, and serves two
// instances, as two replicas would, as the runtime role: the money a teller
// deposits on one is read back through the other and is in PostgreSQL; neither
// warns about its role, and no log shows a password.
func TestServeOnPostgres(t *testing.T) {
	owner, runtime := pgtest.NewRole(t), pgtest.NewRole(t)
	db := pgtest.Provision(t, owner, runtime)
	if err := migrateAs(t, owner.URL(db), runtime.Name); err != nil {
		t.Fatalf("accounts --migrate: %v", err)
	}
	f := newFixture(t)
	f.cfg.DB = runtime.URL(db)
	f.cfg.CRLState = filepath.Join(t.TempDir(), "crl-state.json")

	connect, logs := f.serve(t, "bufconn")
	teller := accountsv1.NewAccountsServiceClient(connect(t, f.pki.Client(t, "spiffe://bank.local/teller/tina")))
	ctx := context.Background()
	opened, err := teller.OpenAccount(ctx, &accountsv1.OpenAccountRequest{Owner: "spiffe://bank.local/customer/alice", Currency: "EUR"})
	if err != nil {
		t.Fatalf("OpenAccount: %v", err)
	}
	if _, err := teller.Deposit(ctx, &accountsv1.DepositRequest{AccountId: opened.GetAccount().GetId(), IdempotencyKey: "pg-1",
		Amount: &typev1.Money{CurrencyCode: "EUR", MinorUnits: 1234}}); err != nil {
		t.Fatalf("Deposit: %v", err)
	}

	second := f
	second.cfg.AuditFile = filepath.Join(t.TempDir(), "accounts-2.audit.jsonl") // each replica keeps its own trail
	connect2, logs2 := second.serve(t, "bufconn")
	alice := accountsv1.NewAccountsServiceClient(connect2(t, f.pki.Client(t, "spiffe://bank.local/customer/alice")))
	got, err := alice.GetAccount(ctx, &accountsv1.GetAccountRequest{Id: opened.GetAccount().GetId()})
	if err != nil {
		t.Fatalf("GetAccount on the second instance: %v", err)
	}
	if b := got.GetAccount().GetBalance().GetMinorUnits(); b != 1234 {
		t.Errorf("balance on the second instance = %d, want 1234", b)
	}
	conn, err := pgx.Connect(ctx, runtime.URL(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var balance int64
	if err := conn.QueryRow(ctx, `SELECT balance FROM accounts WHERE id = $1`, opened.GetAccount().GetId()).Scan(&balance); err != nil || balance != 1234 {
		t.Errorf("the account in PostgreSQL: balance %d, %v; want 1234", balance, err)
	}
	for i, l := range []*logBuffer{logs, logs2} {
		if l.count(runtime.Password()) != 0 || l.count(owner.Password()) != 0 {
			t.Errorf("instance %d's log shows a database password", i)
		}
		if l.count("the database role can change the schema") != 0 {
			t.Errorf("instance %d warns that its runtime role can change the schema", i)
		}
	}
}

// TestServeNeedsMigrationStep: on PostgreSQL the service never changes the
// schema. Before accounts --migrate it refuses to start and says what to run;
// serving as the schema owner works but warns.
func TestServeNeedsMigrationStep(t *testing.T) {
	owner, runtime := pgtest.NewRole(t), pgtest.NewRole(t)
	db := pgtest.Provision(t, owner, runtime)
	f := newFixture(t)
	f.cfg.CRLState = filepath.Join(t.TempDir(), "crl-state.json")
	for _, role := range []pgtest.Role{runtime, owner} {
		f.cfg.DB = role.URL(db)
		_, err := service.New(context.Background(), accountsService(), f.cfg, nil)
		if !errors.Is(err, pgstore.ErrSchemaBehind) || !strings.Contains(err.Error(), "run accounts --migrate") {
			t.Fatalf("start on an unmigrated database as %s: %v, want a refusal naming accounts --migrate", role.Name, err)
		}
	}
	if err := migrateAs(t, runtime.URL(db), ""); err == nil {
		t.Fatal("the runtime role ran the migrations")
	}
	if err := migrateAs(t, owner.URL(db), runtime.Name); err != nil {
		t.Fatal(err)
	}
	f.cfg.DB = owner.URL(db)
	_, logs := f.serve(t, "bufconn")
	if logs.count("the database role can change the schema") != 1 {
		t.Error("serving as the schema owner did not warn")
	}
}

// TestPostgresVerifyFull: accounts connects with sslmode=verify-full and a client
// certificate (roles without any password), migrating and serving; its
// connections are TLS; and against a server certificate it cannot verify with
// the CA it was given, it refuses to start.
func TestPostgresVerifyFull(t *testing.T) {
	owner, runtime := pgtest.NewCertRole(t), pgtest.NewCertRole(t)
	db := pgtest.Provision(t, owner.Role, runtime.Role)
	ca := pgtest.CAFile(t)
	if err := migrateAs(t, owner.TLSURL(db, ca), runtime.Name); err != nil {
		t.Fatalf("accounts --migrate over verify-full: %v", err)
	}
	f := newFixture(t)
	f.cfg.DB = runtime.TLSURL(db, ca)
	f.cfg.CRLState = filepath.Join(t.TempDir(), "crl-state.json")
	connect, _ := f.serve(t, "bufconn")
	teller := accountsv1.NewAccountsServiceClient(connect(t, f.pki.Client(t, "spiffe://bank.local/teller/tina")))
	if _, err := teller.OpenAccount(context.Background(), &accountsv1.OpenAccountRequest{Owner: "spiffe://bank.local/customer/alice", Currency: "EUR"}); err != nil {
		t.Fatalf("OpenAccount over verify-full: %v", err)
	}
	conn, err := pgx.Connect(context.Background(), runtime.TLSURL(db, ca))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var sessions, plain int
	if err := conn.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE NOT s.ssl)
		FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.usename = $1`, runtime.Name).Scan(&sessions, &plain); err != nil {
		t.Fatal(err)
	}
	if sessions < 2 || plain != 0 {
		t.Errorf("the runtime role has %d sessions, %d without TLS; want the service's and ours, all TLS", sessions, plain)
	}

	other, err := pki.NewRootCA("not the database's CA")
	if err != nil {
		t.Fatal(err)
	}
	otherCA := filepath.Join(t.TempDir(), "other-ca.crt")
	if err := os.WriteFile(otherCA, pki.EncodeCertsPEM(other.Cert), 0o600); err != nil {
		t.Fatal(err)
	}
	f.cfg.DB = runtime.TLSURL(db, otherCA)
	f.cfg.AuditFile = filepath.Join(t.TempDir(), "audit.jsonl") // the first service holds its trail
	if _, err := service.New(context.Background(), accountsService(), f.cfg, nil); err == nil ||
		!strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("start against a server certificate from another CA: %v, want refused", err)
	}
}

// TestDatabasePasswordNeverShown runs the service as a process. A password in
// the --db URL (where ps shows it) is refused before anything connects, and the
// refusal does not repeat it. With the password in PGPASSFILE the service
// serves, and the password is in neither its command line, its logs nor its
// metrics. A wrong password in the file fails the start without showing it.
func TestDatabasePasswordNeverShown(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the service as a process")
	}
	owner, runtime := pgtest.NewRole(t), pgtest.NewRole(t)
	db := pgtest.Provision(t, owner, runtime)
	if err := migrateAs(t, owner.URL(db), runtime.Name); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	plain, err := neturl.Parse(runtime.URL(db))
	if err != nil {
		t.Fatal(err)
	}
	q := plain.Query()
	q.Del("passfile") // the process gets PGPASSFILE instead
	plain.RawQuery = q.Encode()
	withPassword := *plain
	withPassword.User = neturl.UserPassword(runtime.Name, runtime.Password())
	args := func(db string) []string {
		return []string{"--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--db", db,
			"--cert", f.cfg.Cert, "--key", f.cfg.Key, "--ca", f.cfg.CA, "--crl", f.cfg.CRL,
			"--crl-state", filepath.Join(t.TempDir(), "crl-state.json"),
			"--audit-file", filepath.Join(t.TempDir(), "audit.jsonl"), "--audit-key", f.cfg.AuditKey}
	}

	t.Run("password in the URL", func(t *testing.T) {
		out, err := runMain(t, args(withPassword.String()), "PGPASSFILE=/nonexistent").CombinedOutput()
		if err == nil {
			t.Fatal("the service started with a password in --db")
		}
		if !strings.Contains(string(out), dsn.ErrPasswordInURL.Error()) {
			t.Errorf("output does not say why:\n%s", out)
		}
		if strings.Contains(string(out), runtime.Password()) {
			t.Errorf("output shows the password:\n%s", out)
		}
	})

	t.Run("password in PGPASSFILE", func(t *testing.T) {
		cmd := runMain(t, args(plain.String()), "PGPASSFILE="+pgtest.PassFile(t))
		out := &logBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		})
		var metricsAddr string
		deadline := time.Now().Add(60 * time.Second)
		for metricsAddr == "" {
			if time.Now().After(deadline) {
				t.Fatalf("the service did not start:\n%s", out.String())
			}
			time.Sleep(20 * time.Millisecond)
			metricsAddr = textField(out.String(), "accounts serving", "metrics_addr")
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for what, text := range map[string]string{"command line": string(cmdline), "logs": out.String(), "metrics": string(metrics)} {
			if strings.Contains(text, runtime.Password()) {
				t.Errorf("the %s show the database password", what)
			}
		}
		if !strings.Contains(string(cmdline), runtime.Name+"@") {
			t.Errorf("the command line %q does not hold --db", cmdline)
		}
	})

	t.Run("wrong password in the file", func(t *testing.T) {
		wrong := filepath.Join(t.TempDir(), "pgpass")
		const bad = "n0t-the-Pa55word"
		if err := os.WriteFile(wrong, []byte("*:*:*:"+runtime.Name+":"+bad+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := runMain(t, args(plain.String()), "PGPASSFILE="+wrong).CombinedOutput()
		if err == nil {
			t.Fatal("the service started with a wrong password")
		}
		if !strings.Contains(string(out), "password authentication failed") || strings.Contains(string(out), bad) {
			t.Errorf("output should name the failure and not the password:\n%s", out)
		}
	})
}

// runMain returns the test binary as the accounts command with args and env
// (and no BANK_* or PG* variables of the developer's), killed if it still runs a
// minute later (a start that should have been refused serves until then).
func runMain(t *testing.T, args []string, env ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BANK_") && !strings.HasPrefix(kv, "PG") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, append([]string{mainEnv + "=1"}, env...)...)
	return cmd
}

// textField returns key=value of the first line of a text log (slog's text format,
// as service.Main logs) with msg=MSG, or "".
func textField(log, msg, key string) string {
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `msg="`+msg+`"`) {
			continue
		}
		for _, kv := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(kv, key+"="); ok {
				return v
			}
		}
	}
	return ""
}

// TestDBValueRefused: a --db value that is neither a file nor a postgres://
// URL is refused by the configuration, naming the flag, without its password.
func TestDBValueRefused(t *testing.T) {
	for _, tt := range []struct{ name, db, want string }{
		{"mysql URL", "mysql://bank:Pa55word@db/accounts", `unsupported scheme "mysql"`},
		{"file URI", "file:accounts.db?mode=memory", "a file: URL"},
		{"postgres URL without host", "postgres:accounts", "names no host"},
		{"postgres URL with a password", "postgres://bank:Pa55word@127.0.0.1/accounts", "holds a password"},
		{"remote postgres without TLS", "postgres://bank@db.internal/accounts?sslmode=disable", "would not be authenticated"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig([]string{"--db", tt.db, "--crl-state", "x.json"}, func(string) string { return "" }, io.Discard)
			if err == nil {
				t.Fatal("parseConfig accepted it")
			}
			if !strings.Contains(err.Error(), "--db: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want --db: ... %s", err, tt.want)
			}
			if strings.Contains(err.Error(), "Pa55word") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}
