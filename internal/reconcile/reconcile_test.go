package reconcile_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	typev1 "mtlsbank/gen/bank/type/v1"
	"mtlsbank/internal/reconcile"
)

const (
	paymentsID = "spiffe://bank.local/service/payments"
	tellerID   = "spiffe://bank.local/teller/tina"
	aliceID    = "spiffe://bank.local/customer/alice"
)

func eur(minor int64) *typev1.Money { return &typev1.Money{CurrencyCode: "EUR", MinorUnits: minor} }

// ledger builds transactions with consistent entries.
type ledger struct {
	seq      int64
	balances map[string]int64
	txns     []*accountsv1.Transaction
}

func (l *ledger) move(id, kind, from, to string, amount int64, principal, onBehalf, key string) {
	t := &accountsv1.Transaction{Id: id, Amount: eur(amount), Principal: principal, OnBehalfOf: onBehalf, IdempotencyKey: key,
		Kind: map[string]accountsv1.TransactionKind{"deposit": accountsv1.TransactionKind_TRANSACTION_KIND_DEPOSIT,
			"transfer": accountsv1.TransactionKind_TRANSACTION_KIND_TRANSFER}[kind]}
	for _, side := range []struct {
		acc string
		amt int64
	}{{from, -amount}, {to, amount}} {
		l.seq++
		l.balances[side.acc] += side.amt
		t.Entries = append(t.Entries, &accountsv1.LedgerEntry{Sequence: l.seq, TransactionId: id, AccountId: side.acc,
			Amount: eur(side.amt), BalanceAfter: eur(l.balances[side.acc])})
	}
	l.txns = append(l.txns, t)
}

// clean is a bank where everything agrees: two deposits, two completed
// payments, a failed one and a pending one.
func clean() reconcile.Input {
	l := &ledger{balances: map[string]int64{}}
	l.move("txn_d1", "deposit", "sys_eur", "acc_a", 1000, tellerID, "", "d1")
	l.move("txn_d2", "deposit", "sys_eur", "acc_b", 500, tellerID, "", "d2")
	l.move("txn_p1", "transfer", "acc_a", "acc_b", 300, paymentsID, aliceID, "payment:pay_1")
	l.move("txn_p2", "transfer", "acc_b", "acc_a", 100, paymentsID, tellerID, "payment:pay_2")
	pay := func(id string, st paymentsv1.PaymentStatus, from, to string, amount int64, txn, by string) *paymentsv1.Payment {
		return &paymentsv1.Payment{Id: id, Status: st, FromAccountId: from, ToAccountId: to, Amount: eur(amount), TransactionId: txn, CreatedBy: by}
	}
	return reconcile.Input{
		Payments: []*paymentsv1.Payment{
			pay("pay_1", paymentsv1.PaymentStatus_PAYMENT_STATUS_COMPLETED, "acc_a", "acc_b", 300, "txn_p1", aliceID),
			pay("pay_2", paymentsv1.PaymentStatus_PAYMENT_STATUS_COMPLETED, "acc_b", "acc_a", 100, "txn_p2", tellerID),
			pay("pay_3", paymentsv1.PaymentStatus_PAYMENT_STATUS_FAILED, "acc_a", "acc_b", 99999, "", aliceID),
			pay("pay_4", paymentsv1.PaymentStatus_PAYMENT_STATUS_PENDING, "acc_a", "acc_b", 1, "", aliceID),
		},
		Transactions: l.txns,
		Accounts: []*accountsv1.Account{
			{Id: "acc_a", Balance: eur(l.balances["acc_a"])},
			{Id: "acc_b", Balance: eur(l.balances["acc_b"])},
		},
	}
}

func clone(in reconcile.Input) reconcile.Input {
	var out reconcile.Input
	for _, p := range in.Payments {
		out.Payments = append(out.Payments, proto.Clone(p).(*paymentsv1.Payment))
	}
	for _, t := range in.Transactions {
		out.Transactions = append(out.Transactions, proto.Clone(t).(*accountsv1.Transaction))
	}
	for _, a := range in.Accounts {
		out.Accounts = append(out.Accounts, proto.Clone(a).(*accountsv1.Account))
	}
	return out
}

func TestCheck(t *testing.T) {
	r := reconcile.Check(clean(), paymentsID)
	if len(r.Differences) != 0 {
		t.Fatalf("a clean bank: %+v", r.Differences)
	}
	if r.Payments != 4 || r.Completed != 2 || r.Failed != 1 || r.Pending != 1 || r.Transactions != 4 || r.Accounts != 2 {
		t.Errorf("counts %+v", r)
	}
	tests := []struct {
		name   string
		tamper func(in *reconcile.Input)
		want   []string // kind subject
	}{
		{"completed payment without its transaction", func(in *reconcile.Input) {
			in.Transactions[2].IdempotencyKey = "payment:pay_9"
		}, []string{"payment-without-transaction pay_1", "transaction-without-payment txn_p1"}},
		{"transaction of a failed payment", func(in *reconcile.Input) {
			in.Payments[0].Status = paymentsv1.PaymentStatus_PAYMENT_STATUS_FAILED
		}, []string{"transaction-of-unfinished-payment txn_p1"}},
		{"payment of another amount", func(in *reconcile.Input) {
			in.Payments[1].Amount.MinorUnits = 101
		}, []string{"amount-mismatch pay_2"}},
		{"payment naming another transaction", func(in *reconcile.Input) {
			in.Payments[1].TransactionId = "txn_p1"
		}, []string{"transaction-id-mismatch pay_2"}},
		{"payment between other accounts", func(in *reconcile.Input) {
			in.Payments[1].ToAccountId = "acc_c"
		}, []string{"account-mismatch pay_2"}},
		{"made on behalf of another user", func(in *reconcile.Input) {
			in.Transactions[3].OnBehalfOf = aliceID
		}, []string{"creator-mismatch pay_2"}},
		{"two transactions under one key", func(in *reconcile.Input) {
			in.Transactions[3].IdempotencyKey = "payment:pay_1"
		}, []string{"duplicate-transaction pay_1", "payment-without-transaction pay_2"}},
		{"payments' transaction under another key", func(in *reconcile.Input) {
			in.Transactions[3].IdempotencyKey = "manual-fix"
		}, []string{"payment-without-transaction pay_2", "transaction-without-payment txn_p2"}},
		{"balance that is not the sum of its entries", func(in *reconcile.Input) {
			in.Accounts[0].Balance.MinorUnits++
		}, []string{"balance-mismatch acc_a"}},
		{"entry amount changed", func(in *reconcile.Input) {
			in.Transactions[0].Entries[1].Amount.MinorUnits = 999
		}, []string{"balance-mismatch acc_a", "entry-chain-broken acc_a", "unbalanced-transaction txn_d1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := clone(clean())
			tt.tamper(&in)
			r := reconcile.Check(in, paymentsID)
			var got []string
			for _, d := range r.Differences {
				got = append(got, d.Kind+" "+d.Subject)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("differences %q, want %q\n%+v", got, tt.want, r.Differences)
			}
		})
	}
}

// reads is a Source whose reads return the given inputs in turn (the last
// one again when they run out).
type reads struct{ inputs []reconcile.Input }

func (r *reads) Read(context.Context) (reconcile.Input, error) {
	in := r.inputs[0]
	if len(r.inputs) > 1 {
		r.inputs = r.inputs[1:]
	}
	return in, nil
}

// TestRunSettles: a difference that a later read no longer shows (work in
// flight) is not reported; one that every read shows is.
func TestRunSettles(t *testing.T) {
	inFlight := clone(clean())
	inFlight.Payments[3].Status = paymentsv1.PaymentStatus_PAYMENT_STATUS_PENDING
	inFlight.Accounts[0].Balance.MinorUnits += 7 // a transfer committed after the listing
	tampered := clone(clean())
	tampered.Accounts[1].Balance.MinorUnits += 1
	bothWrong := clone(tampered)
	bothWrong.Accounts[0].Balance.MinorUnits += 7

	ctx := context.Background()
	r, err := reconcile.Run(ctx, &reads{[]reconcile.Input{inFlight, clean()}}, paymentsID, time.Minute, time.Millisecond)
	if err != nil || len(r.Differences) != 0 {
		t.Errorf("in-flight work, then clean: %+v, %v; want clean", r.Differences, err)
	}
	r, err = reconcile.Run(ctx, &reads{[]reconcile.Input{bothWrong, tampered}}, paymentsID, 50*time.Millisecond, time.Millisecond)
	if err != nil || len(r.Differences) != 1 || r.Differences[0].Subject != "acc_b" {
		t.Errorf("a tampered balance: %+v, %v; want acc_b alone", r.Differences, err)
	}
}
