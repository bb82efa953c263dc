package accounts_test

import (
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	typev1 "mtlsbank/gen/bank/type/v1"
)

// TestCachedReads: the service runs with the ledger's account cache (as on SQLite in
// production). Reads answered from it still go through the ownership check: an account
// alice has just read (so cached) is PermissionDenied to bob, exactly as an unknown one.
// And a client that got the answer to a write reads it back on its next call, whoever
// wrote: the teller's deposits, payments' transfers on alice's behalf.
func TestCachedReads(t *testing.T) {
	b := newBank(t)
	ctx := callCtx(t)
	get := func(c accountsv1.AccountsServiceClient, id string) (int64, error) {
		resp, err := c.GetAccount(ctx, &accountsv1.GetAccountRequest{Id: id})
		return resp.GetAccount().GetBalance().GetMinorUnits(), err
	}
	for range 3 {
		if got, err := get(b.alice, b.aliceEUR.GetId()); err != nil || got != aliceEURFunds {
			t.Fatalf("alice reads her account: %d, %v", got, err)
		}
		if _, err := get(b.bob, b.aliceEUR.GetId()); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("bob reads alice's cached account: %v, want PermissionDenied", err)
		}
	}
	want := int64(aliceEURFunds)
	for i := range 5 {
		deposit(t, b.teller, b.aliceEUR, 10, fmt.Sprintf("cached-%d", i))
		want += 10
		if got, err := get(b.alice, b.aliceEUR.GetId()); err != nil || got != want {
			t.Fatalf("after deposit %d alice reads %d (%v), want %d", i, got, err, want)
		}
		_, err := b.payments.Transfer(actingFor(ctx, aliceID), &accountsv1.TransferRequest{
			FromAccountId: b.aliceEUR.GetId(), ToAccountId: b.bobEUR.GetId(),
			Amount: &typev1.Money{CurrencyCode: "EUR", MinorUnits: 3}, IdempotencyKey: fmt.Sprintf("cached-t-%d", i),
		})
		if err != nil {
			t.Fatalf("transfer %d: %v", i, err)
		}
		want -= 3
		if got, err := get(b.alice, b.aliceEUR.GetId()); err != nil || got != want {
			t.Fatalf("after transfer %d alice reads %d (%v), want %d", i, got, err, want)
		}
		if got, err := get(b.bob, b.bobEUR.GetId()); err != nil || got != bobEURFunds+3*int64(i+1) {
			t.Fatalf("after transfer %d bob reads %d (%v), want %d", i, got, err, bobEURFunds+3*int64(i+1))
		}
	}
}
