package main

import (
	"context"
	"io"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	typev1 "mtlsbank/gen/bank/type/v1"
	"mtlsbank/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestServeOnPostgres runs the service with --db a postgres:// URL: the ledger
// is on PostgreSQL (the money a teller deposits is read back through the API
// from a second service instance on the same database, as a second replica
// would), and the URL's password appears nowhere in the service's logs.
func TestServeOnPostgres(t *testing.T) {
	f := newFixture(t)
	url := pgtest.NewDatabase(t)
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	password, _ := u.User.Password()
	f.cfg.DB = url
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
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var balance int64
	if err := conn.QueryRow(ctx, `SELECT balance FROM accounts WHERE id = $1`, opened.GetAccount().GetId()).Scan(&balance); err != nil || balance != 1234 {
		t.Errorf("the account in PostgreSQL: balance %d, %v; want 1234", balance, err)
	}
	for i, l := range []*logBuffer{logs, logs2} {
		if l.count(password) != 0 {
			t.Errorf("instance %d's log shows the database password", i)
		}
	}
}

// TestDBValueRefused: a --db value that is neither a file nor a postgres://
// URL is refused by the configuration, naming the flag, without its password.
func TestDBValueRefused(t *testing.T) {
	for _, tt := range []struct{ name, db, want string }{
		{"mysql URL", "mysql://bank:Pa55word@db/accounts", `unsupported scheme "mysql"`},
		{"file URI", "file:accounts.db?mode=memory", "a file: URL"},
		{"postgres URL without host", "postgres:accounts", "names no host"},
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
