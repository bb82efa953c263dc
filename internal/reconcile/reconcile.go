package reconcile

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
)

// TransferKeyPrefix starts the idempotency key of a payment's transfer:
// "payment:" + the payment's id (payments.TransferKey).
const TransferKeyPrefix = "payment:"

// Kinds of Difference: stable names, for scripts.
const (
	// PaymentWithoutTransaction: a COMPLETED payment has no ledger transaction
	// under its transfer key.
	PaymentWithoutTransaction = "payment-without-transaction"
	// DuplicateTransaction: more than one ledger transaction under one transfer key.
	DuplicateTransaction = "duplicate-transaction"
	// TransactionIDMismatch: the payment names another transaction than the one
	// under its key.
	TransactionIDMismatch = "transaction-id-mismatch"
	// AmountMismatch: the payment and its transaction move different amounts
	// or currencies.
	AmountMismatch = "amount-mismatch"
	// AccountMismatch: the transaction debits or credits other accounts than
	// the payment's, or is not a transfer.
	AccountMismatch = "account-mismatch"
	// CreatorMismatch: the transaction was made on behalf of another user than
	// the payment's creator.
	CreatorMismatch = "creator-mismatch"
	// TransactionWithoutPayment: a ledger transaction under a payment's key (or
	// by the payments service) has no payment with that id.
	TransactionWithoutPayment = "transaction-without-payment"
	// TransactionOfUnfinishedPayment: a ledger transaction under a payment's
	// key whose payment is FAILED or PENDING.
	TransactionOfUnfinishedPayment = "transaction-of-unfinished-payment"
	// UnbalancedTransaction: a transaction's entries do not sum to zero, or
	// do not move its amount.
	UnbalancedTransaction = "unbalanced-transaction"
	// BalanceMismatch: an account's balance is not the sum of its entries.
	BalanceMismatch = "balance-mismatch"
	// EntryChainBroken: an entry's balance after is not the previous one's
	// plus its amount.
	EntryChainBroken = "entry-chain-broken"
)

// Difference is one disagreement.
type Difference struct {
	// Kind is one of the constants above.
	Kind string `json:"kind"`
	// Subject is the payment, transaction or account it is about.
	Subject string `json:"subject"`
	// Detail says what differs, for people.
	Detail string `json:"detail"`
}

func (d Difference) key() string { return d.Kind + " " + d.Subject }

// Input is what the services hold: every payment (ListPayments), every ledger
// transaction with its entries and key (ListTransactions), every customer account
// (ListAccounts), read in that order.
type Input struct {
	Payments     []*paymentsv1.Payment
	Transactions []*accountsv1.Transaction
	Accounts     []*accountsv1.Account
}

// Report is the outcome of a reconciliation.
type Report struct {
	Payments     int `json:"payments"`
	Completed    int `json:"completed"`
	Failed       int `json:"failed"`
	Pending      int `json:"pending"`
	Transactions int `json:"transactions"`
	Accounts     int `json:"accounts"`
	// Differences, sorted by kind and subject; none when the services agree.
	Differences []Difference `json:"differences"`
}

// Check compares in and returns the differences. paymentsID is the SPIFFE ID
// the payments service calls the ledger as: its transactions are the ones
// under payment keys.
func Check(in Input, paymentsID string) Report {
	r := Report{Payments: len(in.Payments), Transactions: len(in.Transactions), Accounts: len(in.Accounts), Differences: []Difference{}}
	add := func(kind, subject, format string, args ...any) {
		r.Differences = append(r.Differences, Difference{Kind: kind, Subject: subject, Detail: fmt.Sprintf(format, args...)})
	}

	payments := make(map[string]*paymentsv1.Payment, len(in.Payments))
	for _, p := range in.Payments {
		payments[p.GetId()] = p
		switch p.GetStatus() {
		case paymentsv1.PaymentStatus_PAYMENT_STATUS_COMPLETED:
			r.Completed++
		case paymentsv1.PaymentStatus_PAYMENT_STATUS_FAILED:
			r.Failed++
		default:
			r.Pending++
		}
	}
	byKey := map[string][]*accountsv1.Transaction{}
	sums := map[string]int64{}
	lastEntry := map[string]*accountsv1.LedgerEntry{}
	for _, t := range in.Transactions {
		checkTransaction(t, add)
		for _, e := range t.GetEntries() {
			acc := e.GetAccountId()
			before := int64(0)
			if prev := lastEntry[acc]; prev != nil {
				before = prev.GetBalanceAfter().GetMinorUnits()
			}
			if got := e.GetBalanceAfter().GetMinorUnits(); got != before+e.GetAmount().GetMinorUnits() {
				add(EntryChainBroken, acc, "entry %d (transaction %s): balance after %d, but %d before and %+d", e.GetSequence(),
					t.GetId(), got, before, e.GetAmount().GetMinorUnits())
			}
			lastEntry[acc] = e
			sums[acc] += e.GetAmount().GetMinorUnits()
		}
		if t.GetPrincipal() != paymentsID {
			continue
		}
		id, ok := strings.CutPrefix(t.GetIdempotencyKey(), TransferKeyPrefix)
		if !ok {
			add(TransactionWithoutPayment, t.GetId(), "made by the payments service under key %q, which names no payment", t.GetIdempotencyKey())
			continue
		}
		byKey[t.GetIdempotencyKey()] = append(byKey[t.GetIdempotencyKey()], t)
		switch p := payments[id]; {
		case p == nil:
			add(TransactionWithoutPayment, t.GetId(), "under key %s, but payments has no payment %s", t.GetIdempotencyKey(), id)
		case p.GetStatus() != paymentsv1.PaymentStatus_PAYMENT_STATUS_COMPLETED:
			add(TransactionOfUnfinishedPayment, t.GetId(), "under key %s, but payment %s is %s", t.GetIdempotencyKey(), id, statusName(p))
		}
	}

	for _, p := range in.Payments {
		if p.GetStatus() != paymentsv1.PaymentStatus_PAYMENT_STATUS_COMPLETED {
			continue
		}
		key := TransferKeyPrefix + p.GetId()
		ts := byKey[key]
		switch {
		case len(ts) == 0:
			add(PaymentWithoutTransaction, p.GetId(), "COMPLETED with transaction %q, but the ledger has no transaction under key %s", p.GetTransactionId(), key)
			continue
		case len(ts) > 1:
			ids := make([]string, len(ts))
			for i, t := range ts {
				ids[i] = t.GetId()
			}
			add(DuplicateTransaction, p.GetId(), "%d ledger transactions under key %s: %s", len(ts), key, strings.Join(ids, ", "))
		}
		comparePayment(p, ts[0], add)
	}

	for _, a := range in.Accounts {
		if got := a.GetBalance().GetMinorUnits(); got != sums[a.GetId()] {
			add(BalanceMismatch, a.GetId(), "balance %d, its entries sum to %d", got, sums[a.GetId()])
		}
	}
	slices.SortFunc(r.Differences, func(a, b Difference) int { return strings.Compare(a.key()+a.Detail, b.key()+b.Detail) })
	return r
}

// checkTransaction checks that t's entries sum to zero and move its amount.
func checkTransaction(t *accountsv1.Transaction, add func(kind, subject, format string, args ...any)) {
	var sum, credited int64
	for _, e := range t.GetEntries() {
		m := e.GetAmount()
		sum += m.GetMinorUnits()
		if m.GetMinorUnits() > 0 {
			credited += m.GetMinorUnits()
		}
		if m.GetCurrencyCode() != t.GetAmount().GetCurrencyCode() {
			add(UnbalancedTransaction, t.GetId(), "entry %d is in %s, the transaction in %s", e.GetSequence(), m.GetCurrencyCode(), t.GetAmount().GetCurrencyCode())
		}
	}
	if sum != 0 || credited != t.GetAmount().GetMinorUnits() {
		add(UnbalancedTransaction, t.GetId(), "entries sum to %d and credit %d; want 0 and the amount %d", sum, credited, t.GetAmount().GetMinorUnits())
	}
}

// comparePayment compares a COMPLETED payment with the transaction under its key.
func comparePayment(p *paymentsv1.Payment, t *accountsv1.Transaction, add func(kind, subject, format string, args ...any)) {
	if p.GetTransactionId() != t.GetId() {
		add(TransactionIDMismatch, p.GetId(), "names transaction %q, the ledger has %s under its key", p.GetTransactionId(), t.GetId())
	}
	pa, ta := p.GetAmount(), t.GetAmount()
	if pa.GetMinorUnits() != ta.GetMinorUnits() || pa.GetCurrencyCode() != ta.GetCurrencyCode() {
		add(AmountMismatch, p.GetId(), "payment of %d %s, transaction %s of %d %s", pa.GetMinorUnits(), pa.GetCurrencyCode(),
			t.GetId(), ta.GetMinorUnits(), ta.GetCurrencyCode())
	}
	var from, to string
	for _, e := range t.GetEntries() {
		if e.GetAmount().GetMinorUnits() < 0 {
			from = e.GetAccountId()
		} else {
			to = e.GetAccountId()
		}
	}
	if t.GetKind() != accountsv1.TransactionKind_TRANSACTION_KIND_TRANSFER || from != p.GetFromAccountId() || to != p.GetToAccountId() {
		add(AccountMismatch, p.GetId(), "payment from %s to %s, transaction %s (%s) from %s to %s", p.GetFromAccountId(), p.GetToAccountId(),
			t.GetId(), strings.TrimPrefix(t.GetKind().String(), "TRANSACTION_KIND_"), from, to)
	}
	if t.GetOnBehalfOf() != p.GetCreatedBy() {
		add(CreatorMismatch, p.GetId(), "created by %s, transaction %s made on behalf of %q", p.GetCreatedBy(), t.GetId(), t.GetOnBehalfOf())
	}
}

func statusName(p *paymentsv1.Payment) string {
	return strings.TrimPrefix(p.GetStatus().String(), "PAYMENT_STATUS_")
}

// Source reads the services.
type Source interface {
	// Read returns every payment, then every transaction, then every account.
	Read(ctx context.Context) (Input, error)
}

// Run reconciles the live services behind src. Work in flight (a payment whose
// transfer just committed, a balance that moved between two reads) shows as a
// difference for a moment; so a reconciliation with differences reads everything
// again, every interval, until settle has passed, and reports only the
// differences (by kind and subject) that every read showed. A reconciliation
// that finds none in some read is clean.
func Run(ctx context.Context, src Source, paymentsID string, settle, interval time.Duration) (Report, error) {
	deadline := time.Now().Add(settle)
	var persistent map[string]Difference
	for {
		in, err := src.Read(ctx)
		if err != nil {
			return Report{}, err
		}
		r := Check(in, paymentsID)
		if len(r.Differences) == 0 {
			return r, nil
		}
		seen := make(map[string]Difference, len(r.Differences))
		for _, d := range r.Differences {
			if _, ok := persistent[d.key()]; persistent == nil || ok {
				seen[d.key()] = d
			}
		}
		persistent = seen
		if len(persistent) == 0 || !time.Now().Add(interval).Before(deadline) {
			r.Differences = slices.SortedFunc(maps.Values(persistent), func(a, b Difference) int {
				return strings.Compare(a.key()+a.Detail, b.key()+b.Detail)
			})
			if r.Differences == nil {
				r.Differences = []Difference{}
			}
			return r, nil
		}
		select {
		case <-ctx.Done():
			return Report{}, ctx.Err()
		case <-time.After(interval):
		}
	}
}
