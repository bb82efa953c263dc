package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"mtlsbank/internal/ledger"
)

// testListTransactions: ListTransactions pages through every transaction in
// commit order, each with its entries (those GetTransaction returns) and the
// idempotency key and principal of its request; refused requests list nothing;
// pages never split a transaction; a bad token or page size is refused.
func (su suite) testListTransactions(t *testing.T) {
	ctx := context.Background()
	l, _ := su.newLedger(t)
	a, b := MustOpen(t, l, alice, "EUR"), MustOpen(t, l, bob, "EUR")
	type made struct {
		id             ledger.TransactionID
		key, principal string
	}
	var want []made
	for i := range 7 {
		key := fmt.Sprintf("list-%d", i)
		var txn ledger.Transaction
		var err error
		if i%2 == 0 {
			txn, err = l.Deposit(ctx, ledger.DepositRequest{AccountID: string(a.ID), Amount: eur(100), IdempotencyKey: key, Principal: teller})
		} else {
			txn, err = l.Transfer(ctx, ledger.TransferRequest{FromAccountID: string(a.ID), ToAccountID: string(b.ID), Amount: eur(30),
				IdempotencyKey: "payment:" + key, Principal: payments, OnBehalfOf: alice})
			key = "payment:" + key
		}
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, made{txn.ID, key, txn.Principal})
	}
	// A refusal is recorded under its key but is no transaction.
	if _, err := l.Transfer(ctx, ledger.TransferRequest{FromAccountID: string(b.ID), ToAccountID: string(a.ID), Amount: eur(1_000_000),
		IdempotencyKey: "refused", Principal: payments, OnBehalfOf: bob}); !errors.Is(err, ledger.ErrInsufficientFunds) {
		t.Fatalf("the refused transfer: %v", err)
	}

	for _, size := range []int{0, 1, 3, 7, 100} {
		var got []ledger.KeyedTransaction
		token, pages := "", 0
		for {
			page, err := l.ListTransactions(ctx, ledger.ListTransactionsRequest{PageSize: size, PageToken: token})
			if err != nil {
				t.Fatalf("page size %d, page %d: %v", size, pages, err)
			}
			pages++
			if size > 0 && len(page.Transactions) > size {
				t.Fatalf("page size %d: a page of %d", size, len(page.Transactions))
			}
			got = append(got, page.Transactions...)
			if token = page.NextPageToken; token == "" {
				break
			}
			if pages > 20 {
				t.Fatalf("page size %d: no last page", size)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("page size %d: %d transactions listed, want %d", size, len(got), len(want))
		}
		for i, kt := range got {
			if kt.ID != want[i].id || kt.IdempotencyKey != want[i].key || kt.Principal != want[i].principal {
				t.Errorf("page size %d, #%d: %s key %q by %s, want %s key %q by %s", size, i, kt.ID, kt.IdempotencyKey, kt.Principal,
					want[i].id, want[i].key, want[i].principal)
			}
			read, err := l.GetTransaction(ctx, string(kt.ID))
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(read) != fmt.Sprint(kt.Transaction) {
				t.Errorf("listed %+v, GetTransaction %+v", kt.Transaction, read)
			}
		}
	}
	for _, tt := range []struct {
		req  ledger.ListTransactionsRequest
		want error
	}{
		{ledger.ListTransactionsRequest{PageSize: -1}, ledger.ErrInvalidPageSize},
		{ledger.ListTransactionsRequest{PageToken: "garbage!"}, ledger.ErrInvalidPageToken},
		{ledger.ListTransactionsRequest{PageToken: "dDEuLTE"}, ledger.ErrInvalidPageToken},     // "t1.-1"
		{ledger.ListTransactionsRequest{PageToken: "YTEuYWNjXzE"}, ledger.ErrInvalidPageToken}, // an accounts token
	} {
		if _, err := l.ListTransactions(ctx, tt.req); !errors.Is(err, tt.want) {
			t.Errorf("ListTransactions(%+v) = %v, want %v", tt.req, err, tt.want)
		}
	}
}
