package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"mtlsbank/client/bankctl/cli"
	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	"mtlsbank/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestAccountsReplicaKilled runs two accounts processes on one PostgreSQL
// database (as a runtime role, after accounts --migrate as the owner) and a
// payments process with --accounts-addr listing both. Under concurrent
// payments one accounts replica is killed with SIGKILL: payments routes around
// it and retries the calls it had in flight on the other (the transfer key makes
// that safe), so no payer ever sees UNAVAILABLE, and every payment is carried out
// exactly once: one ledger transaction under its key, balances equal to the
// deposits plus the completed payments.
func TestAccountsReplicaKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the service binaries")
	}
	const (
		workers           = 4
		paymentsPerWorker = 25
		deposit           = 50_00
	)
	owner, runtime := pgtest.NewRole(t), pgtest.NewRole(t)
	db := pgtest.Provision(t, owner, runtime)
	bin := buildBinaries(t)
	b := newTestbed(t)
	passfile := "PGPASSFILE=" + pgtest.PassFile(t)
	migrate := start(t, "accounts --migrate", bin.accounts, []string{"--migrate", "--db", withoutPassfile(t, owner.URL(db)),
		"--db-runtime-role", runtime.Name}, passfile)
	migrate.wait(t)
	if migrate.err != nil {
		t.Fatalf("accounts --migrate: %v\n%s", migrate.err, migrate.out.String())
	}

	addrs := []string{b.accountsAddr, freeAddr(t)}
	replicas := make([]*process, len(addrs))
	for i, addr := range addrs {
		args := append(b.accountsArgs(), "--listen", addr, "--db", withoutPassfile(t, runtime.URL(db))+"&application_name="+replicaName(i),
			"--crl-state", filepath.Join(b.dir, fmt.Sprintf("accounts-%d.crl-state.json", i)),
			"--audit-file", filepath.Join(b.dir, fmt.Sprintf("accounts-%d.audit.jsonl", i)))
		replicas[i] = start(t, fmt.Sprintf("accounts replica %d", i), bin.accounts, args, passfile)
		waitServing(t, replicas[i], b.dial(t, "teller", addr, accountsID))
	}
	teller := accountsv1.NewAccountsServiceClient(b.dial(t, "teller", addrs[1], accountsID))
	var ids []string
	for _, owner := range []string{aliceID, bobID, "spiffe://bank.local/customer/carol", "spiffe://bank.local/customer/dave"} {
		ids = append(ids, openFunded(t, teller, owner, deposit))
	}

	payAddr := freeAddr(t)
	payArgs := b.paymentsArgs(payAddr, 200*time.Millisecond)
	for i, a := range payArgs {
		switch a {
		case "--accounts-addr":
			payArgs[i+1] = strings.Join(addrs, ",")
		case "--accounts-timeout":
			// Every transfer waits while the test holds the sequence counter (below),
			// for as long as a loaded machine takes to see replica 0 waiting: the
			// subject is the routing, not the deadline.
			payArgs[i+1] = "30s"
		}
	}
	pay := start(t, "payments", bin.payments, payArgs)
	tellerPay := b.dial(t, "teller", payAddr, paymentsID)
	waitServing(t, pay, tellerPay)
	client := paymentsv1.NewPaymentsServiceClient(tellerPay)

	var finished, unavailable atomic.Int64
	var counting atomic.Bool // every UNAVAILABLE counts, from the first payment on
	counting.Store(true)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		rng := rand.New(rand.NewPCG(uint64(w), 7))
		wg.Go(func() {
			for i := range paymentsPerWorker {
				from := ids[rng.IntN(len(ids))]
				to := from
				for to == from {
					to = ids[rng.IntN(len(ids))]
				}
				req := &paymentsv1.CreatePaymentRequest{FromAccountId: from, ToAccountId: to,
					Amount: eur(int64(1_00 + rng.IntN(10_00))), IdempotencyKey: fmt.Sprintf("w%d-p%d", w, i)}
				if err := payUntilAnswered(client, req, &counting, &unavailable); err != nil {
					errs <- fmt.Errorf("worker %d payment %d: %w", w, i, err)
					return
				}
				finished.Add(1)
			}
		})
	}
	eventually(t, "a quarter of the payments finished", func() error {
		if n := finished.Load(); n < workers*paymentsPerWorker/4 {
			return fmt.Errorf("%d finished", n)
		}
		return nil
	})
	// Kill replica 0 while it has calls in flight: hold the ledger's sequence
	// counter row, which every write takes first, until replica 0's writer waits
	// for it, kill the replica, then let the writers go.
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, runtime.URL(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	hold, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hold.Exec(ctx, `SELECT last_sequence FROM entry_sequence WHERE id = 1 FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, runtime.URL(db))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	eventually(t, "replica 0 waits for the sequence counter", func() error {
		var waiting int
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
			replicaName(0)).Scan(&waiting); err != nil {
			return err
		}
		if waiting == 0 {
			return fmt.Errorf("no call of replica 0 in flight")
		}
		return nil
	})
	replicas[0].kill(t)
	killedAt := finished.Load()
	if err := hold.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	if n := unavailable.Load(); n != 0 {
		t.Errorf("payers got UNAVAILABLE %d times: the dead replica was not routed around", n)
	}
	if killedAt >= workers*paymentsPerWorker {
		t.Fatalf("every payment finished before the kill")
	}

	all := settledPayments(t, ctx, client)
	if len(all) != workers*paymentsPerWorker {
		t.Fatalf("%d payments recorded, want %d", len(all), workers*paymentsPerWorker)
	}

	// Exactly once, from the ledger's own tables: one transaction per completed
	// payment's key, the payment's, and no other transaction by payments.
	byKey := map[string]string{}
	rows, err := conn.Query(ctx, `SELECT idem_key, transaction_id FROM idempotency WHERE principal = $1 AND transaction_id IS NOT NULL`, paymentsID)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var key, txn string
		if err := rows.Scan(&key, &txn); err != nil {
			t.Fatal(err)
		}
		byKey[key] = txn
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var byPayments int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM transactions WHERE principal = $1`, paymentsID).Scan(&byPayments); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{}
	for _, id := range ids {
		want[id] = deposit
	}
	completed := 0
	for _, p := range all {
		if p.GetStatus() != paymentsv1.PaymentStatus_PAYMENT_STATUS_COMPLETED {
			continue
		}
		completed++
		if got := byKey["payment:"+p.GetId()]; got != p.GetTransactionId() {
			t.Errorf("payment %s: transaction %s, the ledger has %q under its key", p.GetId(), p.GetTransactionId(), got)
		}
		want[p.GetFromAccountId()] -= p.GetAmount().GetMinorUnits()
		want[p.GetToAccountId()] += p.GetAmount().GetMinorUnits()
	}
	if byPayments != completed || len(byKey) != completed {
		t.Errorf("%d completed payments, %d ledger transactions by payments, %d keys with one: want all equal", completed, byPayments, len(byKey))
	}
	for _, id := range ids {
		if got := balance(t, teller, id); got != want[id] {
			t.Errorf("account %s: balance %d, want %d", id, got, want[id])
		}
	}
	// And bankctl reconcile, as the auditor, through the surviving replica, agrees.
	auditorCert, auditorKey := b.pki.WriteLeaf(t, "auditor", b.pki.Client(t, auditorID))
	var out bytes.Buffer
	if code := cli.Run(ctx, []string{"--cert", auditorCert, "--key", auditorKey, "--ca", b.caPath, "--server-name", "localhost",
		"--accounts-addr", addrs[1], "--payments-addr", payAddr, "reconcile", "--settle", "0"}, &out, &out, nil); code != cli.ExitOK {
		t.Errorf("bankctl reconcile: exit %d\n%s", code, out.String())
	}
	t.Logf("%d payments (%d completed), replica 0 killed after %d", len(all), completed, killedAt)
}

// replicaName is the application_name of accounts replica i's database sessions.
func replicaName(i int) string { return fmt.Sprintf("accounts-replica-%d", i) }

// withoutPassfile drops pgtest's passfile parameter: the processes get
// PGPASSFILE, as in production.
func withoutPassfile(tb testing.TB, rawURL string) string {
	tb.Helper()
	u, err := neturl.Parse(rawURL)
	if err != nil {
		tb.Fatal(err)
	}
	q := u.Query()
	q.Del("passfile")
	u.RawQuery = q.Encode()
	return u.String()
}
