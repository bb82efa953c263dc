package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"mtlsbank/internal/ledger"
)

// testConcurrencyProperty runs random deposits, withdrawals and transfers on
// a few accounts from several goroutines, each request sent several times
// under its own key, some of the repeats at the same moment. Afterwards the
// ledger must hold exactly one effect per successful key and every
// double-entry invariant.
func (su suite) testConcurrencyProperty(t *testing.T) {
	const (
		workers = 8
		ops     = 200
	)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)

	l, s := su.newLedger(t)
	ctx := context.Background()
	accts := []ledger.Account{
		MustOpen(t, l, alice, "EUR"), MustOpen(t, l, alice, "EUR"),
		MustOpen(t, l, bob, "EUR"), MustOpen(t, l, bob, "EUR"),
	}

	type outcome struct {
		key    string
		kind   ledger.Kind
		amount int64
		txn    ledger.Transaction
		err    error
	}
	outcomes := make([][]outcome, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for i := range ops {
				key := fmt.Sprintf("w%d-op%d", w, i)
				amount := eur(1 + rng.Int64N(5000))
				from := accts[rng.IntN(len(accts))]
				to := accts[(rng.IntN(len(accts)-1)+1+indexOf(accts, from.ID))%len(accts)]
				var kind ledger.Kind
				var send func() (ledger.Transaction, error)
				switch p := rng.IntN(10); {
				case p < 3:
					kind = ledger.KindDeposit
					send = func() (ledger.Transaction, error) {
						return l.Deposit(ctx, ledger.DepositRequest{AccountID: string(to.ID), Amount: amount, IdempotencyKey: key, Principal: teller})
					}
				case p < 6:
					kind = ledger.KindWithdrawal
					send = func() (ledger.Transaction, error) {
						return l.Withdraw(ctx, ledger.WithdrawRequest{AccountID: string(from.ID), Amount: amount, IdempotencyKey: key, Principal: teller})
					}
				default:
					kind = ledger.KindTransfer
					send = func() (ledger.Transaction, error) {
						return l.Transfer(ctx, ledger.TransferRequest{FromAccountID: string(from.ID), ToAccountID: string(to.ID),
							Amount: amount, IdempotencyKey: key, Principal: payments, OnBehalfOf: from.Owner})
					}
				}

				// 2 to 4 attempts; a quarter of the time all at once.
				attempts := 2 + rng.IntN(3)
				txns := make([]ledger.Transaction, attempts)
				errs := make([]error, attempts)
				if rng.IntN(4) == 0 {
					var burst sync.WaitGroup
					for a := range attempts {
						burst.Go(func() { txns[a], errs[a] = send() })
					}
					burst.Wait()
				} else {
					for a := range attempts {
						txns[a], errs[a] = send()
					}
				}
				for a := 1; a < attempts; a++ {
					if (errs[a] == nil) != (errs[0] == nil) ||
						(errs[a] != nil && errs[a].Error() != errs[0].Error()) ||
						(errs[a] == nil && !equalTransactions(txns[a], txns[0])) {
						t.Errorf("%s: attempt %d got (%v, %v), attempt 0 got (%v, %v)", key, a, txns[a].ID, errs[a], txns[0].ID, errs[0])
					}
				}
				if errs[0] != nil && !errors.Is(errs[0], ledger.ErrInsufficientFunds) {
					t.Errorf("%s: unexpected error %v", key, errs[0])
				}
				outcomes[w] = append(outcomes[w], outcome{key: key, kind: kind, amount: amount.Minor, txn: txns[0], err: errs[0]})
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	var wantTotal int64
	successes := map[ledger.TransactionID]outcome{}
	refused := 0
	for _, ws := range outcomes {
		for _, o := range ws {
			if o.err != nil {
				refused++
				continue
			}
			if _, dup := successes[o.txn.ID]; dup {
				t.Errorf("%s: transaction %s returned for two keys", o.key, o.txn.ID)
			}
			successes[o.txn.ID] = o
			switch o.kind {
			case ledger.KindDeposit:
				wantTotal += o.amount
			case ledger.KindWithdrawal:
				wantTotal -= o.amount
			}
			if o.txn.Kind != o.kind || o.txn.Amount != o.amount {
				t.Errorf("%s: transaction %+v does not match a %s of %d", o.key, o.txn, o.kind, o.amount)
			}
		}
	}
	t.Logf("%d transactions, %d refused", len(successes), refused)
	if len(successes) == 0 || refused == 0 {
		t.Errorf("%d successes and %d refusals: the mix does not exercise both", len(successes), refused)
	}

	snap := CheckInvariants(t, s)
	var total int64
	for _, a := range snap.Accounts {
		if !a.System {
			total += a.Balance
		}
	}
	if total != wantTotal {
		t.Errorf("customer money = %d, want deposits - withdrawals = %d", total, wantTotal)
	}
	inLedger := map[ledger.TransactionID]int{}
	for _, e := range snap.Entries {
		inLedger[e.TransactionID]++
	}
	if len(inLedger) != len(successes) || len(snap.Entries) != 2*len(successes) {
		t.Errorf("ledger holds %d transactions in %d entries, want %d in %d", len(inLedger), len(snap.Entries), len(successes), 2*len(successes))
	}
	for id, o := range successes {
		if inLedger[id] != 2 {
			t.Errorf("%s: transaction %s has %d entries in the ledger, want 2", o.key, id, inLedger[id])
		}
	}
}

func indexOf(accts []ledger.Account, id ledger.AccountID) int {
	for i, a := range accts {
		if a.ID == id {
			return i
		}
	}
	return -1
}
