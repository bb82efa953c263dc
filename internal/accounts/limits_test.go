package accounts_test

import (
	"math"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	"mtlsbank/internal/ledger"
	"mtlsbank/internal/refusal"
)

// TestMaxAmountAttack is issue 11 item 10 over real mTLS: a teller deposits into a fresh
// account the int64 maximum less the EUR the bank already holds, the most the ledger
// used to accept. That left the EUR system account at -MaxInt64, so that every later
// EUR deposit, by anyone, failed. It must be refused
// with InvalidArgument naming amount.minor_units and the maximum, and deposits must go
// on working.
func TestMaxAmountAttack(t *testing.T) {
	b := newBank(t)
	ctx := callCtx(t)
	mallory := openAccount(t, b.teller, carolID, "EUR")
	before := balances(t, b.teller)

	_, err := b.teller.Deposit(ctx, &accountsv1.DepositRequest{AccountId: mallory.GetId(),
		Amount: amountOf("EUR", math.MaxInt64-aliceEURFunds-bobEURFunds), IdempotencyKey: "block-eur"})
	if status.Code(err) == codes.OK {
		t.Error("a deposit that fills the int64 range was accepted")
	} else {
		// Above 10^18 minor units the request's own rules refuse it (bank.amount.max).
		wantStatus(t, err, codes.InvalidArgument, "amount.minor_units")
		wantReason(t, err, refusal.AmountTooLarge)
	}
	// Within the rules, the ledger's maximum of one request refuses it and names itself.
	_, err = b.teller.Deposit(ctx, &accountsv1.DepositRequest{AccountId: mallory.GetId(),
		Amount: amountOf("EUR", 1_000_000_000_000_000_000), IdempotencyKey: "block-eur-2"})
	wantStatus(t, err, codes.InvalidArgument, "amount.minor_units")
	wantReason(t, err, refusal.AmountTooLarge)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "1000000000.00 EUR") {
		t.Errorf("refusal %q does not name the maximum", msg)
	}
	if after := balances(t, b.teller); len(after) != len(before) || after[mallory.GetId()] != 0 {
		t.Errorf("the refused deposits changed balances: %v -> %v", before, after)
	}

	// Another teller's ordinary deposit in the same currency still works.
	if _, err := b.teller2.Deposit(ctx, &accountsv1.DepositRequest{AccountId: b.bobEUR.GetId(),
		Amount: amountOf("EUR", 2500), IdempotencyKey: "salary"}); err != nil {
		t.Fatalf("an ordinary EUR deposit after the attack: %v", err)
	}
	if got := balanceOf(t, b.teller, b.bobEUR.GetId()); got != bobEURFunds+2500 {
		t.Errorf("bob's balance = %d, want %d", got, bobEURFunds+2500)
	}
}

// TestSupplyLimitStatus fills EUR up to a small max supply: the next deposit is refused
// with FailedPrecondition (the request is valid, the bank's state refuses it) and a
// message naming the limit, while transfers on behalf of a customer and withdrawals go
// on working.
func TestSupplyLimitStatus(t *testing.T) {
	amounts, supplies := ledger.DefaultMaxAmounts(), ledger.DefaultMaxSupplies()
	if err := amounts.Set("EUR:100.00"); err != nil {
		t.Fatal(err)
	}
	if err := supplies.Set("EUR:300.00"); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, ledger.WithMaxAmount(amounts), ledger.WithMaxSupply(supplies))
	teller, payments := e.client(t, tellerID), e.client(t, paymentsID)
	ctx := callCtx(t)
	alice := openAccount(t, teller, aliceID, "EUR")
	bob := openAccount(t, teller, bobID, "EUR")

	_, err := teller.Deposit(ctx, &accountsv1.DepositRequest{AccountId: alice.GetId(), Amount: amountOf("EUR", 10001), IdempotencyKey: "big"})
	wantStatus(t, err, codes.InvalidArgument, "amount.minor_units")
	wantReason(t, err, refusal.AmountTooLarge)
	for i, a := range []*accountsv1.Account{alice, alice, bob} {
		deposit(t, teller, a, 10000, "fill-"+string(rune('a'+i)))
	}
	_, err = teller.Deposit(ctx, &accountsv1.DepositRequest{AccountId: bob.GetId(), Amount: amountOf("EUR", 1), IdempotencyKey: "over"})
	wantStatus(t, err, codes.FailedPrecondition, "")
	wantReason(t, err, refusal.SupplyLimitReached)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "300.00 EUR") {
		t.Errorf("refusal %q does not name the limit", msg)
	}

	if _, err := payments.Transfer(actingFor(ctx, aliceID), &accountsv1.TransferRequest{FromAccountId: alice.GetId(),
		ToAccountId: bob.GetId(), Amount: amountOf("EUR", 5000), IdempotencyKey: "pay"}); err != nil {
		t.Fatalf("transfer at the cap: %v", err)
	}
	if _, err := teller.Withdraw(ctx, &accountsv1.WithdrawRequest{AccountId: bob.GetId(), Amount: amountOf("EUR", 10000), IdempotencyKey: "out"}); err != nil {
		t.Fatalf("withdrawal at the cap: %v", err)
	}
	if got := balances(t, teller); got[alice.GetId()] != 15000 || got[bob.GetId()] != 5000 {
		t.Errorf("balances %v, want alice 15000 and bob 5000", got)
	}
}
