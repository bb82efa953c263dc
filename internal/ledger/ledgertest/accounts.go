package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"mtlsbank/internal/ledger"
)

func (su suite) testOpenAccount(t *testing.T) {
	l, s := su.newLedger(t)
	ctx := context.Background()

	a, err := l.OpenAccount(ctx, ledger.OpenAccountRequest{Owner: alice, Currency: "EUR", DisplayName: "Alice's savings"})
	if err != nil {
		t.Fatalf("OpenAccount: %v", err)
	}
	if _, err := ledger.ParseAccountID(string(a.ID)); err != nil {
		t.Errorf("new account id %q does not parse: %v", a.ID, err)
	}
	if a.Owner != alice || a.Currency != "EUR" || a.Balance != 0 || a.DisplayName != "Alice's savings" || a.System || a.CreatedAt.IsZero() {
		t.Errorf("OpenAccount = %+v", a)
	}
	got, err := l.GetAccount(ctx, string(a.ID))
	if err != nil {
		t.Fatalf("GetAccount: %v", err)
	}
	if got != a {
		t.Errorf("GetAccount = %+v, want %+v", got, a)
	}

	tests := []struct {
		name  string
		req   ledger.OpenAccountRequest
		err   error
		field string
	}{
		{name: "missing owner", req: ledger.OpenAccountRequest{Currency: "EUR"}, err: ledger.ErrMissingField, field: "owner"},
		{name: "owner not a SPIFFE ID", req: ledger.OpenAccountRequest{Owner: "alice", Currency: "EUR"}, err: ledger.ErrInvalidSPIFFEID, field: "owner"},
		{name: "owner an https URL", req: ledger.OpenAccountRequest{Owner: "https://bank.local/customer/alice", Currency: "EUR"}, err: ledger.ErrInvalidSPIFFEID, field: "owner"},
		{name: "owner of another trust domain", req: ledger.OpenAccountRequest{Owner: "spiffe://evil.example/customer/alice", Currency: "EUR"}, err: ledger.ErrInvalidSPIFFEID, field: "owner"},
		{name: "owner a look-alike trust domain", req: ledger.OpenAccountRequest{Owner: "spiffe://bank.local.evil.example/customer/alice", Currency: "EUR"}, err: ledger.ErrInvalidSPIFFEID, field: "owner"},
		{name: "owner the trust domain itself", req: ledger.OpenAccountRequest{Owner: "spiffe://bank.local", Currency: "EUR"}, err: ledger.ErrInvalidSPIFFEID, field: "owner"},
		{name: "owner with upper-case trust domain", req: ledger.OpenAccountRequest{Owner: "spiffe://BANK.local/customer/alice", Currency: "EUR"}, err: ledger.ErrInvalidSPIFFEID, field: "owner"},
		{name: "owner with a query", req: ledger.OpenAccountRequest{Owner: alice + "?x=1", Currency: "EUR"}, err: ledger.ErrInvalidSPIFFEID, field: "owner"},
		{name: "missing currency", req: ledger.OpenAccountRequest{Owner: alice}, err: ledger.ErrMissingField, field: "currency"},
		{name: "unknown currency", req: ledger.OpenAccountRequest{Owner: alice, Currency: "XYZ"}, err: ledger.ErrUnknownCurrency, field: "currency"},
		{name: "lower-case currency", req: ledger.OpenAccountRequest{Owner: alice, Currency: "eur"}, err: ledger.ErrUnknownCurrency, field: "currency"},
		{name: "display name too long", req: ledger.OpenAccountRequest{Owner: alice, Currency: "EUR", DisplayName: strings.Repeat("x", ledger.MaxDisplayNameLen+1)}, err: ledger.ErrInvalidText, field: "display_name"},
		{name: "display name with a newline", req: ledger.OpenAccountRequest{Owner: alice, Currency: "EUR", DisplayName: "a\nb"}, err: ledger.ErrInvalidText, field: "display_name"},
		{name: "display name not UTF-8", req: ledger.OpenAccountRequest{Owner: alice, Currency: "EUR", DisplayName: "\xff"}, err: ledger.ErrInvalidText, field: "display_name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := TakeSnapshot(t, s)
			_, err := l.OpenAccount(ctx, tt.req)
			WantError(t, err, tt.err, tt.field)
			if !errors.Is(err, ledger.ErrInvalidArgument) {
				t.Errorf("error %v does not wrap ErrInvalidArgument", err)
			}
			if after := TakeSnapshot(t, s); len(after.Accounts) != len(before.Accounts) {
				t.Errorf("refused OpenAccount changed the number of accounts from %d to %d", len(before.Accounts), len(after.Accounts))
			}
		})
	}
}

func (su suite) testGetAccount(t *testing.T) {
	l, _ := su.newLedger(t)
	ctx := context.Background()
	a := MustOpen(t, l, alice, "EUR")
	MustDeposit(t, l, a, 100) // creates the EUR system account
	sys, err := l.SystemAccounts(ctx)
	if err != nil || len(sys) != 1 || !sys[0].System || sys[0].Currency != "EUR" || sys[0].Balance != -100 {
		t.Fatalf("SystemAccounts = %+v, %v; want one EUR system account at -100", sys, err)
	}

	tests := []struct {
		name  string
		id    string
		err   error
		field string
	}{
		{name: "missing", id: "", err: ledger.ErrMissingField, field: "id"},
		{name: "no prefix", id: strings.TrimPrefix(string(a.ID), "acc_"), err: ledger.ErrMalformedID, field: "id"},
		{name: "transaction prefix", id: "txn_" + strings.TrimPrefix(string(a.ID), "acc_"), err: ledger.ErrMalformedID, field: "id"},
		{name: "upper case", id: "acc_" + strings.ToUpper(strings.TrimPrefix(string(a.ID), "acc_")), err: ledger.ErrMalformedID, field: "id"},
		{name: "too short", id: string(a.ID)[:len(a.ID)-1], err: ledger.ErrMalformedID, field: "id"},
		{name: "too long", id: string(a.ID) + "0", err: ledger.ErrMalformedID, field: "id"},
		{name: "letter outside Crockford", id: "acc_0000000000000000000000000u", err: ledger.ErrMalformedID, field: "id"},
		{name: "beyond 128 bits", id: "acc_80000000000000000000000000", err: ledger.ErrMalformedID, field: "id"},
		{name: "SQL", id: "acc_' OR 1=1 --", err: ledger.ErrMalformedID, field: "id"},
		{name: "unknown", id: "acc_00000000000000000000000000", err: ledger.ErrAccountNotFound, field: "id"},
		{name: "system account", id: string(sys[0].ID), err: ledger.ErrAccountNotFound, field: "id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := l.GetAccount(ctx, tt.id)
			WantError(t, err, tt.err, tt.field)
		})
	}
}

func (su suite) testCheckOwner(t *testing.T) {
	l, _ := su.newLedger(t)
	a := MustOpen(t, l, alice, "EUR")
	if err := a.CheckOwner(alice); err != nil {
		t.Errorf("CheckOwner(owner) = %v", err)
	}
	for _, p := range []string{bob, "", alice + "/x", teller} {
		if err := a.CheckOwner(p); !errors.Is(err, ledger.ErrNotOwner) {
			t.Errorf("CheckOwner(%q) = %v, want ErrNotOwner", p, err)
		}
	}
	if err := (ledger.Account{System: true}).CheckOwner(""); !errors.Is(err, ledger.ErrNotOwner) {
		t.Errorf("system account CheckOwner(\"\") = %v, want ErrNotOwner", err)
	}
}

func (su suite) testListAccounts(t *testing.T) {
	l, _ := su.newLedger(t)
	ctx := context.Background()
	var aliceIDs, allIDs []ledger.AccountID
	for i := range 7 {
		a := MustOpen(t, l, alice, "EUR")
		aliceIDs = append(aliceIDs, a.ID)
		allIDs = append(allIDs, a.ID)
		if i == 0 {
			MustDeposit(t, l, a, 1) // a system account exists and must not be listed
		}
	}
	for range 3 {
		allIDs = append(allIDs, MustOpen(t, l, bob, "USD").ID)
	}
	slices.Sort(aliceIDs)
	slices.Sort(allIDs)

	// listAll pages through a listing and returns the ids and page lengths.
	listAll := func(t *testing.T, owner string, size int) ([]ledger.AccountID, []int) {
		t.Helper()
		var ids []ledger.AccountID
		var sizes []int
		token := ""
		for range 100 {
			page, err := l.ListAccounts(ctx, ledger.ListAccountsRequest{Owner: owner, PageSize: size, PageToken: token})
			if err != nil {
				t.Fatalf("ListAccounts(owner %q, token %q): %v", owner, token, err)
			}
			for _, a := range page.Accounts {
				if owner != "" && a.Owner != owner {
					t.Errorf("listing for %s returned %s of %s", owner, a.ID, a.Owner)
				}
				if a.System {
					t.Errorf("listing returned system account %s", a.ID)
				}
				ids = append(ids, a.ID)
			}
			sizes = append(sizes, len(page.Accounts))
			if page.NextPageToken == "" {
				return ids, sizes
			}
			token = page.NextPageToken
		}
		t.Fatal("listing did not end")
		return nil, nil
	}

	t.Run("owner in pages of 3", func(t *testing.T) {
		ids, sizes := listAll(t, alice, 3)
		if !slices.Equal(ids, aliceIDs) {
			t.Errorf("ids = %v, want %v", ids, aliceIDs)
		}
		if !slices.Equal(sizes, []int{3, 3, 1}) {
			t.Errorf("page sizes = %v, want [3 3 1]", sizes)
		}
	})
	t.Run("exact multiple has no empty last page", func(t *testing.T) {
		_, sizes := listAll(t, alice, 7)
		if !slices.Equal(sizes, []int{7}) {
			t.Errorf("page sizes = %v, want [7]", sizes)
		}
	})
	t.Run("everyone with the default page size", func(t *testing.T) {
		ids, sizes := listAll(t, "", 0)
		if !slices.Equal(ids, allIDs) {
			t.Errorf("ids = %v, want %v", ids, allIDs)
		}
		if len(sizes) != 1 {
			t.Errorf("page sizes = %v, want one page", sizes)
		}
	})
	t.Run("owner with no accounts", func(t *testing.T) {
		ids, _ := listAll(t, "spiffe://bank.local/customer/carol", 0)
		if len(ids) != 0 {
			t.Errorf("ids = %v, want none", ids)
		}
	})

	first, err := l.ListAccounts(ctx, ledger.ListAccountsRequest{Owner: alice, PageSize: 2})
	if err != nil || first.NextPageToken == "" {
		t.Fatalf("ListAccounts = %+v, %v", first, err)
	}
	refusals := []struct {
		name  string
		req   ledger.ListAccountsRequest
		err   error
		field string
	}{
		{name: "negative page size", req: ledger.ListAccountsRequest{PageSize: -1}, err: ledger.ErrInvalidPageSize, field: "page_size"},
		{name: "garbage token", req: ledger.ListAccountsRequest{PageToken: "not a token!"}, err: ledger.ErrInvalidPageToken, field: "page_token"},
		{name: "base64 of something else", req: ledger.ListAccountsRequest{PageToken: "aGVsbG8"}, err: ledger.ErrInvalidPageToken, field: "page_token"},
		{name: "huge token", req: ledger.ListAccountsRequest{PageToken: strings.Repeat("A", 10000)}, err: ledger.ErrInvalidPageToken, field: "page_token"},
		{name: "token of another owner filter", req: ledger.ListAccountsRequest{Owner: bob, PageToken: first.NextPageToken}, err: ledger.ErrInvalidPageToken, field: "page_token"},
		{name: "token without the owner filter", req: ledger.ListAccountsRequest{PageToken: first.NextPageToken}, err: ledger.ErrInvalidPageToken, field: "page_token"},
		{name: "owner not a SPIFFE ID", req: ledger.ListAccountsRequest{Owner: "alice"}, err: ledger.ErrInvalidSPIFFEID, field: "owner"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			_, err := l.ListAccounts(ctx, tt.req)
			WantError(t, err, tt.err, tt.field)
		})
	}
}

func (su suite) testListAccountsPageSizeBounds(t *testing.T) {
	l, _ := su.newLedger(t)
	ctx := context.Background()
	const n = ledger.MaxPageSize + 2
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := l.OpenAccount(ctx, ledger.OpenAccountRequest{Owner: alice, Currency: "EUR", DisplayName: fmt.Sprint(i)})
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("OpenAccount: %v", err)
	}
	tests := []struct {
		name string
		size int
		want int
	}{
		{name: "default", size: 0, want: ledger.DefaultPageSize},
		{name: "one", size: 1, want: 1},
		{name: "maximum", size: ledger.MaxPageSize, want: ledger.MaxPageSize},
		{name: "above maximum is cut", size: ledger.MaxPageSize + 1, want: ledger.MaxPageSize},
		{name: "far above maximum is cut", size: 1 << 30, want: ledger.MaxPageSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := l.ListAccounts(ctx, ledger.ListAccountsRequest{PageSize: tt.size})
			if err != nil {
				t.Fatalf("ListAccounts: %v", err)
			}
			if len(page.Accounts) != tt.want || page.NextPageToken == "" {
				t.Errorf("page of %d accounts, next token %q; want %d and a token", len(page.Accounts), page.NextPageToken, tt.want)
			}
		})
	}
}
