package ledger_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mtlsbank/internal/dsn"
	"mtlsbank/internal/ledger"
	"mtlsbank/internal/ledger/pgstore"
	"mtlsbank/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// durabilityDBEnv names the database a TestDurabilityChild process writes to:
// an SQLite path or a postgres:// URL.
const durabilityDBEnv = "LEDGER_DURABILITY_CHILD_DB"

// openAnyStore opens the SQLite file or the PostgreSQL database db names,
// closed at the end of the test.
func openAnyStore(tb testing.TB, db string) ledger.Store {
	tb.Helper()
	d, err := dsn.Parse(db)
	if err != nil {
		tb.Fatal(err)
	}
	if d.Engine == dsn.SQLite {
		return openStore(tb, d.Path)
	}
	s, err := pgstore.Open(context.Background(), d.URL)
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// TestDurability kills a process that is writing to the ledger with SIGKILL
// and checks that every transaction it acknowledged is in the reopened
// database and that the ledger is consistent, on each store.
func TestDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a subprocess")
	}
	for _, tt := range []struct {
		name string
		db   func(testing.TB) string
	}{
		{"sqlite", func(tb testing.TB) string { return filepath.Join(tb.TempDir(), "ledger.db") }},
		{"postgres", pgtest.NewDatabase},
	} {
		t.Run(tt.name, func(t *testing.T) { testDurability(t, tt.db(t)) })
	}
}

// startChild runs the test named test of this binary in a child process, with env set
// to path, and returns it and a scanner of its output. A guard, not an assertion: a
// child still running after limit is killed, so that the test fails instead of hanging.
func startChild(t *testing.T, test, env, path string, limit time.Duration) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env+"="+path)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	guard := time.AfterFunc(limit, func() { _ = cmd.Process.Kill() })
	t.Cleanup(func() { guard.Stop() })
	return cmd, bufio.NewScanner(stdout)
}

func testDurability(t *testing.T, path string) {
	func() {
		s := openAnyStore(t, path)
		l := startLedger(t, s)
		for _, owner := range []string{alice, alice, bob, bob} {
			mustDeposit(t, l, mustOpen(t, l, owner, "EUR"), 1_000_000)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.(interface{ Close() error }).Close(); err != nil {
			t.Fatal(err)
		}
	}()

	cmd, sc := startChild(t, "TestDurabilityChild", durabilityDBEnv, path, 2*time.Minute)

	const killAfter = 300
	var acked []ledger.TransactionID
	for sc.Scan() {
		id, ok := strings.CutPrefix(sc.Text(), "ack ")
		if !ok {
			continue
		}
		tid, err := ledger.ParseTransactionID(id)
		if err != nil {
			continue // a line cut short by the kill was not acknowledged
		}
		acked = append(acked, tid)
		if len(acked) == killAfter {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatalf("kill child: %v", err)
			}
		}
	}
	err := cmd.Wait()
	if len(acked) < killAfter {
		t.Fatalf("child acknowledged %d transactions before it ended (%v), want %d", len(acked), err, killAfter)
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want killed by SIGKILL", err)
	}
	t.Logf("child acknowledged %d transactions before SIGKILL", len(acked))

	s := openAnyStore(t, path)
	l := startLedger(t, s)
	for _, id := range acked {
		if _, err := l.GetTransaction(context.Background(), string(id)); err != nil {
			t.Errorf("acknowledged transaction %s lost: %v", id, err)
		}
	}
	checkInvariants(t, s)
	// The reopened ledger goes on from the committed sequence counter: its
	// entries follow the last committed one without a gap (checkInvariants).
	page, err := l.ListAccounts(context.Background(), ledger.ListAccountsRequest{})
	if err != nil || len(page.Accounts) == 0 {
		t.Fatalf("ListAccounts = %d accounts, %v", len(page.Accounts), err)
	}
	mustDeposit(t, l, page.Accounts[0], 1)
	checkInvariants(t, s)
}

// TestDurabilityChild is the process TestDurability kills. It moves money
// from several goroutines until it is killed and prints "ack ID" for each
// transaction once the ledger has acknowledged it.
func TestDurabilityChild(t *testing.T) {
	path := os.Getenv(durabilityDBEnv)
	if path == "" {
		t.Skip("run by TestDurability")
	}
	s := openAnyStore(t, path)
	l := startLedger(t, s)
	ctx := context.Background()
	page, err := l.ListAccounts(ctx, ledger.ListAccountsRequest{})
	if err != nil || len(page.Accounts) < 2 {
		t.Fatalf("ListAccounts = %d accounts, %v", len(page.Accounts), err)
	}
	accts := page.Accounts

	var mu sync.Mutex
	ack := func(id ledger.TransactionID) {
		mu.Lock()
		defer mu.Unlock()
		// One write of less than PIPE_BUF bytes: the parent sees the
		// whole line or none of it. If the parent is gone, the write
		// fails and the child stops.
		if _, err := fmt.Fprintf(os.Stdout, "ack %s\n", id); err != nil {
			os.Exit(3)
		}
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			// Bounded, so that an orphaned child ends on its own.
			for i := range 20000 {
				from, to := accts[(w+i)%len(accts)], accts[(w+i+1)%len(accts)]
				key := fmt.Sprintf("child-%d-%d", w, i)
				var tr ledger.Transaction
				var err error
				switch i % 3 {
				case 0:
					tr, err = l.Deposit(ctx, ledger.DepositRequest{AccountID: string(to.ID), Amount: eur(7), IdempotencyKey: key, Principal: teller})
				case 1:
					tr, err = l.Withdraw(ctx, ledger.WithdrawRequest{AccountID: string(from.ID), Amount: eur(5), IdempotencyKey: key, Principal: teller})
				default:
					tr, err = l.Transfer(ctx, ledger.TransferRequest{FromAccountID: string(from.ID), ToAccountID: string(to.ID),
						Amount: eur(3), IdempotencyKey: key, Principal: payments})
				}
				if err != nil {
					t.Errorf("%s: %v", key, err)
					return
				}
				ack(tr.ID)
			}
		})
	}
	wg.Wait()
}
