package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"mtlsbank/client/bankctl/cli"
	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
)

// TestReconcile runs both services as processes on SQLite, makes payments (completed
// and failed), and runs bankctl reconcile as the auditor: clean, it exits 0. Then it
// tampers with the databases directly, one change at a time, and each change is
// reported by its kind and subject with exit code 1.
func TestReconcile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the service binaries")
	}
	bin := buildBinaries(t)
	b := newTestbed(t)
	acc := start(t, "accounts", bin.accounts, b.accountsArgs())
	tellerAcc := b.dial(t, "teller", b.accountsAddr, accountsID)
	waitServing(t, acc, tellerAcc)
	teller := accountsv1.NewAccountsServiceClient(tellerAcc)
	aliceAccount := openFunded(t, teller, aliceID, 100_00)
	bobAccount := openFunded(t, teller, bobID, 10_00)

	payAddr := freeAddr(t)
	pay := start(t, "payments", bin.payments, b.paymentsArgs(payAddr, time.Hour))
	alicePay := b.dial(t, "alice", payAddr, paymentsID)
	waitServing(t, pay, alicePay)
	alice := paymentsv1.NewPaymentsServiceClient(alicePay)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var completed []string
	for i, minor := range []int64{5_00, 7_50, 12_00} {
		resp, err := alice.CreatePayment(ctx, &paymentsv1.CreatePaymentRequest{FromAccountId: aliceAccount, ToAccountId: bobAccount,
			Amount: eur(minor), IdempotencyKey: fmt.Sprintf("rent-%d", i)})
		if err != nil || resp.GetPayment().GetStatus() != paymentsv1.PaymentStatus_PAYMENT_STATUS_COMPLETED {
			t.Fatalf("payment %d: %v, %v", i, resp.GetPayment().GetStatus(), err)
		}
		completed = append(completed, resp.GetPayment().GetId())
	}
	bob := paymentsv1.NewPaymentsServiceClient(b.dial(t, "bob", payAddr, paymentsID))
	if _, err := bob.CreatePayment(ctx, &paymentsv1.CreatePaymentRequest{FromAccountId: bobAccount, ToAccountId: aliceAccount,
		Amount: eur(900_00), IdempotencyKey: "too-much"}); err == nil {
		t.Fatal("a payment beyond bob's funds succeeded")
	}
	failed, err := allPayments(ctx, paymentsv1.NewPaymentsServiceClient(b.dial(t, "teller", payAddr, paymentsID)))
	if err != nil {
		t.Fatal(err)
	}
	var failedID string
	for _, p := range failed {
		if p.GetStatus() == paymentsv1.PaymentStatus_PAYMENT_STATUS_FAILED {
			failedID = p.GetId()
		}
	}
	if failedID == "" {
		t.Fatal("no FAILED payment")
	}

	auditorCert, auditorKey := b.pki.WriteLeaf(t, "auditor", b.pki.Client(t, auditorID))
	reconcileCmd := func(t *testing.T) (int, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := cli.Run(ctx, []string{"--cert", auditorCert, "--key", auditorKey, "--ca", b.caPath, "--server-name", "localhost",
			"--accounts-addr", b.accountsAddr, "--payments-addr", payAddr, "reconcile", "--settle", "0"}, &stdout, &stderr, nil)
		return code, stdout.String() + stderr.String()
	}
	if code, out := reconcileCmd(t); code != cli.ExitOK || !strings.Contains(out, "4 payments (3 completed, 1 failed, 0 pending)") ||
		!strings.Contains(out, "they agree") {
		t.Fatalf("clean reconcile: exit %d\n%s", code, out)
	}

	paymentsDB := openSQLite(t, filepath.Join(b.dir, "payments.db"))
	ledgerDB := openSQLite(t, filepath.Join(b.dir, "accounts.db"))
	steps := []struct {
		name string
		db   *sql.DB
		sql  string
		args []any
		want string // kind and subject, as "kind subject"
	}{
		{"a completed payment's amount changed", paymentsDB, `UPDATE payments SET minor_units = minor_units + 1 WHERE id = ?`,
			[]any{completed[0]}, "amount-mismatch " + completed[0]},
		{"a completed payment deleted: its transaction has no payment", paymentsDB, `DELETE FROM payments WHERE id = ?`,
			[]any{completed[1]}, "transaction-without-payment"},
		{"a failed payment marked COMPLETED: no transaction under its key", paymentsDB,
			`UPDATE payments SET status = 'COMPLETED', transaction_id = 'txn_forged', failure_code = '', failure_reason = '' WHERE id = ?`,
			[]any{failedID}, "payment-without-transaction " + failedID},
		{"an account's balance changed", ledgerDB, `UPDATE accounts SET balance = balance + 100 WHERE id = ?`,
			[]any{bobAccount}, "balance-mismatch " + bobAccount},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if _, err := st.db.ExecContext(ctx, st.sql, st.args...); err != nil {
				t.Fatal(err)
			}
			code, out := reconcileCmd(t)
			if code != cli.ExitFailure {
				t.Errorf("exit %d, want %d\n%s", code, cli.ExitFailure, out)
			}
			kind, subject, _ := strings.Cut(st.want, " ")
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(kind) + `\s+` + regexp.QuoteMeta(subject)).MatchString(out) {
				t.Errorf("output does not report %q:\n%s", st.want, out)
			}
		})
	}
}

// openSQLite opens a service's database file beside the running service, as
// someone tampering with it would.
func openSQLite(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		tb.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	tb.Cleanup(func() { db.Close() })
	return db
}
