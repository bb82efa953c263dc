package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"mtlsbank/internal/ledger"
)

// testOneDepositCannotBlockACurrency is the attack of issue 11 item 10: a teller (or a
// stolen teller certificate) deposits the int64 maximum, which used to take the
// currency's system account to -MaxInt64 and refuse every later deposit in it. The
// huge deposit must be refused as an invalid argument that names the field and the
// maximum, change nothing, and leave deposits by everyone else working.
func (su suite) testOneDepositCannotBlockACurrency(t *testing.T) {
	l, s := su.newLedger(t)
	ctx := context.Background()
	mallory := MustOpen(t, l, "spiffe://bank.local/customer/mallory", "EUR")
	a := MustOpen(t, l, alice, "EUR")

	before := TakeSnapshot(t, s)
	_, err := l.Deposit(ctx, ledger.DepositRequest{
		AccountID: string(mallory.ID), Amount: eur(math.MaxInt64),
		IdempotencyKey: "attack", Principal: teller,
	})
	switch {
	case err == nil:
		t.Error("a deposit of the int64 maximum was accepted")
	default:
		WantError(t, err, ledger.ErrInvalidArgument, "amount.minor_units")
		if !containsAll(err.Error(), "largest amount", "1000000000.00 EUR") {
			t.Errorf("refusal %q does not name the maximum", err)
		}
	}
	if after := TakeSnapshot(t, s); len(after.Entries) != len(before.Entries) {
		t.Errorf("the refused deposit wrote %d entries", len(after.Entries)-len(before.Entries))
	}

	// Everyone else still deposits, in the same currency.
	if _, err := l.Deposit(ctx, ledger.DepositRequest{
		AccountID: string(a.ID), Amount: eur(2500), IdempotencyKey: "salary", Principal: teller,
	}); err != nil {
		t.Fatalf("a normal deposit after the attack: %v", err)
	}
	if got := BalanceOf(t, l, a.ID); got != 2500 {
		t.Errorf("alice's balance = %d, want 2500", got)
	}
	CheckInvariants(t, s)
}

// containsAll reports whether s contains every one of subs.
func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// limits returns CurrencyLimits parsed from text on top of base, or fails the test.
func limits(tb testing.TB, base ledger.CurrencyLimits, text string) ledger.CurrencyLimits {
	tb.Helper()
	if err := base.Set(text); err != nil {
		tb.Fatalf("limits %q: %v", text, err)
	}
	return base
}

// limitedLedger is a ledger on a fresh file with a per-request maximum and a max
// supply for EUR (in major units, as the flags take them).
func (su suite) limitedLedger(tb testing.TB, maxAmount, maxSupply string) (*ledger.Ledger, ledger.Store) {
	tb.Helper()
	return su.newLedger(tb,
		ledger.WithMaxAmount(limits(tb, ledger.DefaultMaxAmounts(), "EUR:"+maxAmount)),
		ledger.WithMaxSupply(limits(tb, ledger.DefaultMaxSupplies(), "EUR:"+maxSupply)))
}

// testSupplyCapReached fills EUR up to its max supply with max-size deposits: the
// next deposit gets a clear refusal (recorded under its key) that changes nothing,
// while transfers and withdrawals keep working, and a withdrawal makes room again.
func (su suite) testSupplyCapReached(t *testing.T) {
	l, s := su.limitedLedger(t, "1000.00", "5000.00")
	ctx := context.Background()
	accts := []ledger.Account{MustOpen(t, l, alice, "EUR"), MustOpen(t, l, bob, "EUR"), MustOpen(t, l, alice, "EUR")}
	for i := range 5 {
		if _, err := l.Deposit(ctx, ledger.DepositRequest{AccountID: string(accts[i%3].ID), Amount: eur(100000),
			IdempotencyKey: fmt.Sprintf("fill-%d", i), Principal: teller}); err != nil {
			t.Fatalf("max-size deposit %d under the cap: %v", i, err)
		}
	}
	over := ledger.DepositRequest{AccountID: string(accts[2].ID), Amount: eur(1), IdempotencyKey: "over", Principal: teller}
	before := TakeSnapshot(t, s)
	_, err := l.Deposit(ctx, over)
	WantError(t, err, ledger.ErrSupplyLimit, "amount.minor_units")
	if !containsAll(err.Error(), "5000.00 EUR", "0.01 EUR") {
		t.Errorf("refusal %q does not name the limit and the amount", err)
	}
	if errors.Is(err, ledger.ErrInvalidArgument) {
		t.Errorf("a full currency is reported as an invalid argument: %v", err)
	}
	if after := TakeSnapshot(t, s); len(after.Entries) != len(before.Entries) {
		t.Fatalf("the refused deposit wrote %d entries", len(after.Entries)-len(before.Entries))
	}

	// Money already in the bank still moves and leaves.
	if _, err := l.Transfer(ctx, ledger.TransferRequest{FromAccountID: string(accts[0].ID), ToAccountID: string(accts[1].ID),
		Amount: eur(90000), IdempotencyKey: "move", Principal: payments, OnBehalfOf: alice}); err != nil {
		t.Fatalf("transfer at the cap: %v", err)
	}
	if _, err := l.Withdraw(ctx, ledger.WithdrawRequest{AccountID: string(accts[1].ID), Amount: eur(100000),
		IdempotencyKey: "out", Principal: teller}); err != nil {
		t.Fatalf("withdrawal at the cap: %v", err)
	}
	// The refusal stays recorded under its key; a new key fits in the room made.
	_, err = l.Deposit(ctx, over)
	WantError(t, err, ledger.ErrSupplyLimit, "amount.minor_units")
	over.IdempotencyKey, over.Amount = "over-2", eur(100000)
	if _, err := l.Deposit(ctx, over); err != nil {
		t.Fatalf("deposit after a withdrawal made room: %v", err)
	}
	over.IdempotencyKey, over.Amount = "over-3", eur(1)
	_, err = l.Deposit(ctx, over)
	WantError(t, err, ledger.ErrSupplyLimit, "amount.minor_units")

	// Other currencies are not affected by EUR being full.
	MustDeposit(t, l, MustOpen(t, l, bob, "USD"), 100000)
	checkSupply(t, s, "EUR", 500000)
}

// testLimitsAtTheCeiling runs the largest limits a ledger accepts (10^18 minor units
// for one request and in total): the currency fills up, refuses more, and every
// balance, the system account's included, stays far from the int64 limits.
func (su suite) testLimitsAtTheCeiling(t *testing.T) {
	const ceiling = "10000000000000000.00" // 10^18 cents
	l, s := su.limitedLedger(t, ceiling, ceiling)
	ctx := context.Background()
	a := MustOpen(t, l, alice, "EUR")
	b := MustOpen(t, l, bob, "EUR")
	MustDeposit(t, l, a, ledger.MaxLimit)
	_, err := l.Deposit(ctx, ledger.DepositRequest{AccountID: string(b.ID), Amount: eur(1), IdempotencyKey: "one-more", Principal: teller})
	WantError(t, err, ledger.ErrSupplyLimit, "amount.minor_units")
	_, err = l.Deposit(ctx, ledger.DepositRequest{AccountID: string(b.ID), Amount: eur(ledger.MaxLimit + 1), IdempotencyKey: "too-big", Principal: teller})
	WantError(t, err, ledger.ErrAmountTooLarge, "amount.minor_units")
	if _, err := l.Transfer(ctx, ledger.TransferRequest{FromAccountID: string(a.ID), ToAccountID: string(b.ID),
		Amount: eur(ledger.MaxLimit), IdempotencyKey: "all", Principal: payments, OnBehalfOf: alice}); err != nil {
		t.Fatalf("transfer of the whole supply: %v", err)
	}
	if _, err := l.Withdraw(ctx, ledger.WithdrawRequest{AccountID: string(b.ID), Amount: eur(ledger.MaxLimit),
		IdempotencyKey: "out", Principal: teller}); err != nil {
		t.Fatalf("withdrawal of the whole supply: %v", err)
	}
	MustDeposit(t, l, a, 2500)
	checkSupply(t, s, "EUR", ledger.MaxLimit)
}

// testLoweredSupplyCap reopens a ledger whose customers hold more than its new cap,
// as a database from before the caps (or an operator lowering one) would be:
// deposits in that currency are refused until withdrawals bring the total under the
// cap; withdrawals and transfers work all along.
func (su suite) testLoweredSupplyCap(t *testing.T) {
	s := su.newStore(t)
	l := su.startLedger(t, s)
	ctx := context.Background()
	a := MustOpen(t, l, alice, "EUR")
	b := MustOpen(t, l, bob, "EUR")
	MustDeposit(t, l, a, 90000)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = su.startLedger(t, s,
		ledger.WithMaxAmount(limits(t, ledger.DefaultMaxAmounts(), "EUR:500.00")),
		ledger.WithMaxSupply(limits(t, ledger.DefaultMaxSupplies(), "EUR:500.00")))
	_, err := l.Deposit(ctx, ledger.DepositRequest{AccountID: string(b.ID), Amount: eur(1), IdempotencyKey: "d1", Principal: teller})
	WantError(t, err, ledger.ErrSupplyLimit, "amount.minor_units")
	if _, err := l.Transfer(ctx, ledger.TransferRequest{FromAccountID: string(a.ID), ToAccountID: string(b.ID),
		Amount: eur(10000), IdempotencyKey: "t1", Principal: payments, OnBehalfOf: alice}); err != nil {
		t.Fatalf("transfer over the cap: %v", err)
	}
	if _, err := l.Withdraw(ctx, ledger.WithdrawRequest{AccountID: string(a.ID), Amount: eur(50000),
		IdempotencyKey: "w1", Principal: teller}); err != nil {
		t.Fatalf("withdrawal over the cap: %v", err)
	}
	// Customers now hold 400.00 of the 500.00: 100.00 fits, one cent more does not.
	if _, err := l.Deposit(ctx, ledger.DepositRequest{AccountID: string(b.ID), Amount: eur(10000), IdempotencyKey: "d2", Principal: teller}); err != nil {
		t.Fatalf("deposit under the cap: %v", err)
	}
	_, err = l.Deposit(ctx, ledger.DepositRequest{AccountID: string(b.ID), Amount: eur(1), IdempotencyKey: "d3", Principal: teller})
	WantError(t, err, ledger.ErrSupplyLimit, "amount.minor_units")
	checkSupply(t, s, "EUR", 50000)
}

// testBalancesNeverOverflow is the property behind the caps: whatever sequence of
// deposits, withdrawals and transfers is sent, amounts drawn from the edges (1, the
// max amount, the int64 maximum) and from random values, every request is either
// accepted or refused for one of the documented reasons, never for an overflow;
// customers never hold more than the cap together, and every double-entry invariant
// holds. It runs at small limits (the cap is reached often) and at the ceiling.
func (su suite) testBalancesNeverOverflow(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	tests := []struct {
		name                 string
		maxAmount, maxSupply string
		amount, supply       int64
	}{
		{name: "small limits", maxAmount: "700.00", maxSupply: "2000.00", amount: 70000, supply: 200000},
		{name: "ceiling", maxAmount: "3000000000000000.00", maxSupply: "10000000000000000.00", amount: 3 * ledger.MaxLimit / 10, supply: ledger.MaxLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, s := su.limitedLedger(t, tt.maxAmount, tt.maxSupply)
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(seed, uint64(len(tt.name))))
			accts := []ledger.Account{MustOpen(t, l, alice, "EUR"), MustOpen(t, l, alice, "EUR"), MustOpen(t, l, bob, "EUR")}
			amountOf := func() int64 {
				switch rng.IntN(6) {
				case 0:
					return 1
				case 1, 2:
					return tt.amount
				case 3:
					return math.MaxInt64 - rng.Int64N(2)
				default:
					return 1 + rng.Int64N(tt.amount)
				}
			}
			refused := map[string]int{}
			for i := range 400 {
				key := fmt.Sprintf("op-%d", i)
				from := accts[rng.IntN(len(accts))]
				to := accts[(indexOf(accts, from.ID)+1+rng.IntN(len(accts)-1))%len(accts)]
				amount := eur(amountOf())
				var err error
				switch rng.IntN(3) {
				case 0:
					_, err = l.Deposit(ctx, ledger.DepositRequest{AccountID: string(to.ID), Amount: amount, IdempotencyKey: key, Principal: teller})
				case 1:
					_, err = l.Withdraw(ctx, ledger.WithdrawRequest{AccountID: string(from.ID), Amount: amount, IdempotencyKey: key, Principal: teller})
				default:
					_, err = l.Transfer(ctx, ledger.TransferRequest{FromAccountID: string(from.ID), ToAccountID: string(to.ID),
						Amount: amount, IdempotencyKey: key, Principal: payments, OnBehalfOf: from.Owner})
				}
				switch {
				case err == nil:
				case errors.Is(err, ledger.ErrAmountTooLarge):
					refused["too large"]++
				case errors.Is(err, ledger.ErrSupplyLimit):
					refused["supply"]++
				case errors.Is(err, ledger.ErrInsufficientFunds):
					refused["funds"]++
				default:
					t.Fatalf("op %d (%s): unexpected error %v", i, amount, err)
				}
			}
			t.Logf("refusals: %v", refused)
			if refused["supply"] == 0 || refused["too large"] == 0 {
				t.Errorf("the run never reached the cap or the max amount (%v): the property was not exercised", refused)
			}
			checkSupply(t, s, "EUR", tt.supply)
		})
	}
}

// checkSupply checks the invariants and that customers hold at most capacity of
// currency together: the system account's balance is minus their total, at least
// -capacity.
func checkSupply(tb testing.TB, s ledger.Store, currency string, capacity int64) {
	tb.Helper()
	snap := CheckInvariants(tb, s)
	var held, system int64
	for _, a := range snap.Accounts {
		switch {
		case a.Currency != currency:
		case a.System:
			system = a.Balance
		default:
			if a.Balance > capacity {
				tb.Errorf("account %s holds %d, more than the cap %d", a.ID, a.Balance, capacity)
			}
			held += a.Balance
		}
	}
	if held > capacity || system != -held {
		tb.Errorf("customers hold %d of %s (cap %d), system account %d", held, currency, capacity, system)
	}
}
