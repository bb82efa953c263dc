package accounts_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	"mtlsbank/internal/authz"
)

// bank is an env with a client per identity and three funded accounts.
type bank struct {
	*env
	teller, teller2, alice, bob, auditor, payments accountsv1.AccountsServiceClient

	aliceEUR, aliceUSD, bobEUR *accountsv1.Account
	// entries are the ledger entries of the funding deposits, in sequence order.
	entries []*accountsv1.LedgerEntry
}

const (
	aliceEURFunds = 10000
	aliceUSDFunds = 2000
	bobEURFunds   = 5000
)

func newBank(tb testing.TB) *bank {
	tb.Helper()
	e := newEnv(tb)
	b := &bank{
		env:      e,
		teller:   e.client(tb, tellerID),
		teller2:  e.client(tb, teller2ID),
		alice:    e.client(tb, aliceID),
		bob:      e.client(tb, bobID),
		auditor:  e.client(tb, auditorID),
		payments: e.client(tb, paymentsID),
	}
	b.aliceEUR = openAccount(tb, b.teller, aliceID, "EUR")
	b.aliceUSD = openAccount(tb, b.teller, aliceID, "USD")
	b.bobEUR = openAccount(tb, b.teller, bobID, "EUR")
	for _, f := range []struct {
		account *accountsv1.Account
		minor   int64
		key     string
	}{
		{b.aliceEUR, aliceEURFunds, "fund-alice-eur"},
		{b.aliceUSD, aliceUSDFunds, "fund-alice-usd"},
		{b.bobEUR, bobEURFunds, "fund-bob-eur"},
	} {
		r := deposit(tb, b.teller, f.account, f.minor, f.key)
		b.entries = append(b.entries, r.GetTransaction().GetEntries()...)
	}
	return b
}

// actingFor names the end user in the delegation metadata.
func actingFor(ctx context.Context, spiffeID string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, authz.OnBehalfOfKey, spiffeID)
}

// TestRefusals covers every rule with its exact code, and checks that each refusal left
// every balance (and the set of accounts) as it was.
func TestRefusals(t *testing.T) {
	b := newBank(t)
	aliceEUR, aliceUSD, bobEUR := b.aliceEUR.GetId(), b.aliceUSD.GetId(), b.bobEUR.GetId()
	// Refusals that depend on the ledger's state are recorded under their key, so each
	// request gets a key of its own.
	keys := 0
	key := func() string { keys++; return fmt.Sprintf("refused-%d", keys) }
	eur := func(minor int64) *accountsv1.DepositRequest {
		return &accountsv1.DepositRequest{AccountId: aliceEUR, Amount: amountOf("EUR", minor), IdempotencyKey: key()}
	}
	transfer := func(from, to string, minor int64) *accountsv1.TransferRequest {
		return &accountsv1.TransferRequest{FromAccountId: from, ToAccountId: to, Amount: amountOf("EUR", minor), IdempotencyKey: key()}
	}
	watch := func(c accountsv1.AccountsServiceClient) func(context.Context) error {
		return func(ctx context.Context) error {
			stream, err := c.WatchLedger(ctx, &accountsv1.WatchLedgerRequest{})
			if err != nil {
				return err
			}
			_, err = stream.Recv()
			return err
		}
	}

	tests := []struct {
		name  string
		call  func(ctx context.Context) error
		code  codes.Code
		field string // the BadRequest field of an InvalidArgument
		// reason is the ErrorInfo reason; empty for an authorization denial, which must
		// carry none.
		reason string
	}{
		// Idempotency.
		{name: "same key, other amount", reason: "IDEMPOTENCY_KEY_REUSED", code: codes.FailedPrecondition, call: func(ctx context.Context) error {
			_, err := b.teller.Deposit(ctx, &accountsv1.DepositRequest{AccountId: aliceEUR, Amount: amountOf("EUR", aliceEURFunds+1), IdempotencyKey: "fund-alice-eur"})
			return err
		}},
		{name: "same key, other account", reason: "IDEMPOTENCY_KEY_REUSED", code: codes.FailedPrecondition, call: func(ctx context.Context) error {
			_, err := b.teller.Deposit(ctx, &accountsv1.DepositRequest{AccountId: bobEUR, Amount: amountOf("EUR", aliceEURFunds), IdempotencyKey: "fund-alice-eur"})
			return err
		}},
		{name: "missing idempotency key", reason: "MISSING_FIELD", code: codes.InvalidArgument, field: "idempotency_key", call: func(ctx context.Context) error {
			req := eur(100)
			req.IdempotencyKey = ""
			_, err := b.teller.Deposit(ctx, req)
			return err
		}},
		{name: "idempotency key with a space", reason: "INVALID_IDEMPOTENCY_KEY", code: codes.InvalidArgument, field: "idempotency_key", call: func(ctx context.Context) error {
			req := eur(100)
			req.IdempotencyKey = "two words"
			_, err := b.teller.Deposit(ctx, req)
			return err
		}},
		// Amounts and currencies.
		{name: "USD into a EUR account", reason: "CURRENCY_MISMATCH", code: codes.InvalidArgument, field: "amount.currency_code", call: func(ctx context.Context) error {
			_, err := b.teller.Deposit(ctx, &accountsv1.DepositRequest{AccountId: aliceEUR, Amount: amountOf("USD", 100), IdempotencyKey: "usd-into-eur"})
			return err
		}},
		{name: "negative deposit", reason: "INVALID_AMOUNT", code: codes.InvalidArgument, field: "amount.minor_units", call: func(ctx context.Context) error {
			_, err := b.teller.Deposit(ctx, eur(-100))
			return err
		}},
		{name: "zero deposit", reason: "INVALID_AMOUNT", code: codes.InvalidArgument, field: "amount.minor_units", call: func(ctx context.Context) error {
			_, err := b.teller.Deposit(ctx, eur(0))
			return err
		}},
		{name: "negative withdrawal", reason: "INVALID_AMOUNT", code: codes.InvalidArgument, field: "amount.minor_units", call: func(ctx context.Context) error {
			_, err := b.teller.Withdraw(ctx, &accountsv1.WithdrawRequest{AccountId: aliceEUR, Amount: amountOf("EUR", -1), IdempotencyKey: "neg-withdraw"})
			return err
		}},
		{name: "missing amount", reason: "MISSING_FIELD", code: codes.InvalidArgument, field: "amount", call: func(ctx context.Context) error {
			_, err := b.teller.Deposit(ctx, &accountsv1.DepositRequest{AccountId: aliceEUR, IdempotencyKey: "no-amount"})
			return err
		}},
		{name: "unknown currency", reason: "UNKNOWN_CURRENCY", code: codes.InvalidArgument, field: "amount.currency_code", call: func(ctx context.Context) error {
			_, err := b.teller.Deposit(ctx, &accountsv1.DepositRequest{AccountId: aliceEUR, Amount: amountOf("XXY", 100), IdempotencyKey: "xxy"})
			return err
		}},
		{name: "overflowing deposit", reason: "AMOUNT_TOO_LARGE", code: codes.InvalidArgument, field: "amount.minor_units", call: func(ctx context.Context) error {
			_, err := b.teller.Deposit(ctx, &accountsv1.DepositRequest{AccountId: aliceEUR, Amount: amountOf("EUR", 1<<63-1), IdempotencyKey: "overflow"})
			return err
		}},
		{name: "reference too long", reason: "INVALID_TEXT", code: codes.InvalidArgument, field: "reference", call: func(ctx context.Context) error {
			req := eur(100)
			req.Reference = strings.Repeat("r", 1000)
			_, err := b.teller.Deposit(ctx, req)
			return err
		}},
		{name: "overdraft", reason: "INSUFFICIENT_FUNDS", code: codes.FailedPrecondition, call: func(ctx context.Context) error {
			_, err := b.teller.Withdraw(ctx, &accountsv1.WithdrawRequest{AccountId: aliceEUR, Amount: amountOf("EUR", aliceEURFunds+1), IdempotencyKey: "overdraft"})
			return err
		}},
		// Unknown and malformed accounts.
		{name: "teller reads an unknown account", reason: "ACCOUNT_NOT_FOUND", code: codes.NotFound, call: func(ctx context.Context) error {
			_, err := b.teller.GetAccount(ctx, &accountsv1.GetAccountRequest{Id: unknownAccount})
			return err
		}},
		{name: "auditor reads an unknown account", reason: "ACCOUNT_NOT_FOUND", code: codes.NotFound, call: func(ctx context.Context) error {
			_, err := b.auditor.GetAccount(ctx, &accountsv1.GetAccountRequest{Id: unknownAccount})
			return err
		}},
		{name: "deposit into an unknown account", reason: "ACCOUNT_NOT_FOUND", code: codes.NotFound, call: func(ctx context.Context) error {
			_, err := b.teller.Deposit(ctx, &accountsv1.DepositRequest{AccountId: unknownAccount, Amount: amountOf("EUR", 100), IdempotencyKey: "unknown"})
			return err
		}},
		{name: "malformed account id", reason: "MALFORMED_ID", code: codes.InvalidArgument, field: "id", call: func(ctx context.Context) error {
			_, err := b.teller.GetAccount(ctx, &accountsv1.GetAccountRequest{Id: "alice"})
			return err
		}},
		{name: "deposit into a malformed account id", reason: "MALFORMED_ID", code: codes.InvalidArgument, field: "account_id", call: func(ctx context.Context) error {
			_, err := b.teller.Deposit(ctx, &accountsv1.DepositRequest{AccountId: "acc_x", Amount: amountOf("EUR", 100), IdempotencyKey: "malformed"})
			return err
		}},
		// Opening accounts.
		{name: "owner not a SPIFFE ID", reason: "INVALID_OWNER", code: codes.InvalidArgument, field: "owner", call: func(ctx context.Context) error {
			_, err := b.teller.OpenAccount(ctx, &accountsv1.OpenAccountRequest{Owner: "alice", Currency: "EUR"})
			return err
		}},
		{name: "owner of another trust domain", reason: "INVALID_OWNER", code: codes.InvalidArgument, field: "owner", call: func(ctx context.Context) error {
			_, err := b.teller.OpenAccount(ctx, &accountsv1.OpenAccountRequest{Owner: "spiffe://evil.example/customer/alice", Currency: "EUR"})
			return err
		}},
		{name: "account in an unknown currency", reason: "UNKNOWN_CURRENCY", code: codes.InvalidArgument, field: "currency", call: func(ctx context.Context) error {
			_, err := b.teller.OpenAccount(ctx, &accountsv1.OpenAccountRequest{Owner: aliceID, Currency: "eur"})
			return err
		}},
		{name: "customer opens an account", code: codes.PermissionDenied, call: func(ctx context.Context) error {
			_, err := b.alice.OpenAccount(ctx, &accountsv1.OpenAccountRequest{Owner: aliceID, Currency: "EUR"})
			return err
		}},
		// Ownership.
		{name: "alice reads bob's account", code: codes.PermissionDenied, call: func(ctx context.Context) error {
			_, err := b.alice.GetAccount(ctx, &accountsv1.GetAccountRequest{Id: bobEUR})
			return err
		}},
		{name: "alice reads an unknown account", code: codes.PermissionDenied, call: func(ctx context.Context) error {
			_, err := b.alice.GetAccount(ctx, &accountsv1.GetAccountRequest{Id: unknownAccount})
			return err
		}},
		{name: "alice lists bob's accounts", code: codes.PermissionDenied, call: func(ctx context.Context) error {
			_, err := b.alice.ListAccounts(ctx, &accountsv1.ListAccountsRequest{Owner: bobID})
			return err
		}},
		{name: "alice deposits", code: codes.PermissionDenied, call: func(ctx context.Context) error {
			_, err := b.alice.Deposit(ctx, eur(100))
			return err
		}},
		{name: "auditor withdraws", code: codes.PermissionDenied, call: func(ctx context.Context) error {
			_, err := b.auditor.Withdraw(ctx, &accountsv1.WithdrawRequest{AccountId: aliceEUR, Amount: amountOf("EUR", 100), IdempotencyKey: "audit"})
			return err
		}},
		{name: "alice transfers", code: codes.PermissionDenied, call: func(ctx context.Context) error {
			_, err := b.alice.Transfer(ctx, transfer(aliceEUR, bobEUR, 100))
			return err
		}},
		{name: "teller transfers", code: codes.PermissionDenied, call: func(ctx context.Context) error {
			_, err := b.teller.Transfer(ctx, transfer(aliceEUR, bobEUR, 100))
			return err
		}},
		{name: "alice sends delegation metadata", code: codes.PermissionDenied, call: func(ctx context.Context) error {
			_, err := b.alice.GetAccount(actingFor(ctx, bobID), &accountsv1.GetAccountRequest{Id: bobEUR})
			return err
		}},
		{name: "teller sends delegation metadata", code: codes.PermissionDenied, call: func(ctx context.Context) error {
			_, err := b.teller.Deposit(actingFor(ctx, aliceID), eur(100))
			return err
		}},
		// Delegated transfers.
		{name: "payments for alice from bob's account", code: codes.PermissionDenied, call: func(ctx context.Context) error {
			_, err := b.payments.Transfer(actingFor(ctx, aliceID), transfer(bobEUR, aliceEUR, 100))
			return err
		}},
		{name: "payments for alice from an unknown account", code: codes.PermissionDenied, call: func(ctx context.Context) error {
			_, err := b.payments.Transfer(actingFor(ctx, aliceID), transfer(unknownAccount, aliceEUR, 100))
			return err
		}},
		{name: "payments for alice from a malformed account", reason: "MALFORMED_ID", code: codes.InvalidArgument, field: "from_account_id", call: func(ctx context.Context) error {
			_, err := b.payments.Transfer(actingFor(ctx, aliceID), transfer("nope", aliceEUR, 100))
			return err
		}},
		{name: "payments for nobody", code: codes.PermissionDenied, call: func(ctx context.Context) error {
			_, err := b.payments.Transfer(ctx, transfer(aliceEUR, bobEUR, 100))
			return err
		}},
		{name: "payments for an identity of another trust domain", code: codes.PermissionDenied, call: func(ctx context.Context) error {
			_, err := b.payments.Transfer(actingFor(ctx, "spiffe://evil.example/customer/alice"), transfer(aliceEUR, bobEUR, 100))
			return err
		}},
		{name: "payments for alice to an unknown account", reason: "ACCOUNT_NOT_FOUND", code: codes.NotFound, call: func(ctx context.Context) error {
			_, err := b.payments.Transfer(actingFor(ctx, aliceID), transfer(aliceEUR, unknownAccount, 100))
			return err
		}},
		{name: "self-transfer", reason: "SELF_TRANSFER", code: codes.InvalidArgument, field: "to_account_id", call: func(ctx context.Context) error {
			_, err := b.payments.Transfer(actingFor(ctx, aliceID), transfer(aliceEUR, aliceEUR, 100))
			return err
		}},
		{name: "transfer between currencies", reason: "CURRENCY_MISMATCH", code: codes.InvalidArgument, field: "amount.currency_code", call: func(ctx context.Context) error {
			_, err := b.payments.Transfer(actingFor(ctx, aliceID), transfer(aliceEUR, aliceUSD, 100))
			return err
		}},
		{name: "transfer overdraft", reason: "INSUFFICIENT_FUNDS", code: codes.FailedPrecondition, call: func(ctx context.Context) error {
			_, err := b.payments.Transfer(actingFor(ctx, aliceID), transfer(aliceEUR, bobEUR, aliceEURFunds+1))
			return err
		}},
		// Listing and watching.
		{name: "malformed page token", reason: "INVALID_PAGE_TOKEN", code: codes.InvalidArgument, field: "page_token", call: func(ctx context.Context) error {
			_, err := b.teller.ListAccounts(ctx, &accountsv1.ListAccountsRequest{PageToken: "not-a-token"})
			return err
		}},
		{name: "negative page size", reason: "INVALID_PAGE_SIZE", code: codes.InvalidArgument, field: "page_size", call: func(ctx context.Context) error {
			_, err := b.teller.ListAccounts(ctx, &accountsv1.ListAccountsRequest{PageSize: -1})
			return err
		}},
		{name: "owner filter not a SPIFFE ID", reason: "INVALID_OWNER", code: codes.InvalidArgument, field: "owner", call: func(ctx context.Context) error {
			_, err := b.auditor.ListAccounts(ctx, &accountsv1.ListAccountsRequest{Owner: "bob"})
			return err
		}},
		{name: "negative after_sequence", reason: "INVALID_SEQUENCE", code: codes.InvalidArgument, field: "after_sequence", call: func(ctx context.Context) error {
			stream, err := b.auditor.WatchLedger(ctx, &accountsv1.WatchLedgerRequest{AfterSequence: -1})
			if err != nil {
				return err
			}
			_, err = stream.Recv()
			return err
		}},
		{name: "teller watches the ledger", code: codes.PermissionDenied, call: watch(b.teller)},
		{name: "alice watches the ledger", code: codes.PermissionDenied, call: watch(b.alice)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := balances(t, b.teller)
			ctx, cancel := context.WithCancel(callCtx(t))
			defer cancel()
			err := tt.call(ctx)
			wantStatus(t, err, tt.code, tt.field)
			wantReason(t, err, tt.reason)
			if after := balances(t, b.teller); !maps.Equal(before, after) {
				t.Errorf("balances changed by a refused request:\nbefore %v\nafter  %v", before, after)
			}
		})
	}

	// A refused request stays refused under its key, even once it could succeed.
	t.Run("refusal replays", func(t *testing.T) {
		deposit(t, b.teller, b.aliceEUR, 1, "top-up")
		before := balances(t, b.teller)
		_, err := b.teller.Withdraw(callCtx(t), &accountsv1.WithdrawRequest{AccountId: aliceEUR, Amount: amountOf("EUR", aliceEURFunds+1), IdempotencyKey: "overdraft"})
		wantStatus(t, err, codes.FailedPrecondition, "")
		if after := balances(t, b.teller); !maps.Equal(before, after) {
			t.Errorf("balances changed by a replayed refusal:\nbefore %v\nafter  %v", before, after)
		}
	})
}

// TestPermissionDeniedIsGeneric checks that an ownership refusal reads exactly like a
// policy refusal, so a customer learns nothing about the account from it.
func TestPermissionDeniedIsGeneric(t *testing.T) {
	b := newBank(t)
	ctx := callCtx(t)
	_, notOwned := b.alice.GetAccount(ctx, &accountsv1.GetAccountRequest{Id: b.bobEUR.GetId()})
	_, unknown := b.alice.GetAccount(ctx, &accountsv1.GetAccountRequest{Id: unknownAccount})
	_, byPolicy := b.alice.Deposit(ctx, &accountsv1.DepositRequest{AccountId: b.aliceEUR.GetId(), Amount: amountOf("EUR", 1), IdempotencyKey: "k"})
	for name, err := range map[string]error{"not owned": notOwned, "unknown": unknown, "by policy": byPolicy} {
		st := status.Convert(err)
		if st.Code() != codes.PermissionDenied || st.Message() != "permission denied" || len(st.Details()) != 0 {
			t.Errorf("%s: got %v (details %v), want a bare PermissionDenied", name, err, st.Details())
		}
	}
	if logs := b.logs.String(); !strings.Contains(logs, b.bobEUR.GetId()) {
		t.Errorf("server log does not name the refused account %s:\n%s", b.bobEUR.GetId(), logs)
	}
}

func TestIdempotentReplay(t *testing.T) {
	b := newBank(t)
	aliceEUR, bobEUR := b.aliceEUR.GetId(), b.bobEUR.GetId()
	tests := []struct {
		name string
		// call makes the request and returns the transaction and replayed flag.
		call func(ctx context.Context) (*accountsv1.Transaction, bool, error)
		// moved is the change to aliceEUR and bobEUR of the first call.
		aliceDelta, bobDelta int64
	}{
		{name: "deposit", aliceDelta: 250, call: func(ctx context.Context) (*accountsv1.Transaction, bool, error) {
			r, err := b.teller.Deposit(ctx, &accountsv1.DepositRequest{AccountId: aliceEUR, Amount: amountOf("EUR", 250), IdempotencyKey: "dep-1", Reference: "cash"})
			return r.GetTransaction(), r.GetReplayed(), err
		}},
		{name: "withdrawal", aliceDelta: -100, call: func(ctx context.Context) (*accountsv1.Transaction, bool, error) {
			r, err := b.teller.Withdraw(ctx, &accountsv1.WithdrawRequest{AccountId: aliceEUR, Amount: amountOf("EUR", 100), IdempotencyKey: "wd-1"})
			return r.GetTransaction(), r.GetReplayed(), err
		}},
		{name: "delegated transfer", aliceDelta: -300, bobDelta: 300, call: func(ctx context.Context) (*accountsv1.Transaction, bool, error) {
			r, err := b.payments.Transfer(actingFor(ctx, aliceID), &accountsv1.TransferRequest{FromAccountId: aliceEUR, ToAccountId: bobEUR, Amount: amountOf("EUR", 300), IdempotencyKey: "tr-1"})
			return r.GetTransaction(), r.GetReplayed(), err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := callCtx(t)
			aliceBefore, bobBefore := balanceOf(t, b.teller, aliceEUR), balanceOf(t, b.teller, bobEUR)
			first, replayed, err := tt.call(ctx)
			if err != nil {
				t.Fatalf("first call: %v", err)
			}
			if replayed {
				t.Errorf("first call says replayed")
			}
			aliceMid, bobMid := balanceOf(t, b.teller, aliceEUR), balanceOf(t, b.teller, bobEUR)
			if aliceMid != aliceBefore+tt.aliceDelta || bobMid != bobBefore+tt.bobDelta {
				t.Fatalf("balances %d/%d after the first call, want %d/%d", aliceMid, bobMid, aliceBefore+tt.aliceDelta, bobBefore+tt.bobDelta)
			}
			for i := range 2 {
				again, replayed, err := tt.call(ctx)
				if err != nil {
					t.Fatalf("retry %d: %v", i, err)
				}
				if !replayed {
					t.Errorf("retry %d: replayed = false", i)
				}
				if !proto.Equal(again, first) {
					t.Errorf("retry %d returned\n%v\nwant the original\n%v", i, again, first)
				}
			}
			if a, b := balanceOf(t, b.teller, aliceEUR), balanceOf(t, b.teller, bobEUR); a != aliceMid || b != bobMid {
				t.Errorf("balances %d/%d after retries, want %d/%d unchanged", a, b, aliceMid, bobMid)
			}
		})
	}

	// Keys are scoped by the caller: another teller's identical key is a new request.
	t.Run("key scoped by caller", func(t *testing.T) {
		before := balanceOf(t, b.teller, aliceEUR)
		r, err := b.teller2.Deposit(callCtx(t), &accountsv1.DepositRequest{AccountId: aliceEUR, Amount: amountOf("EUR", 7), IdempotencyKey: "dep-1"})
		if err != nil {
			t.Fatalf("second teller, same key: %v", err)
		}
		if r.GetReplayed() || r.GetTransaction().GetPrincipal() != teller2ID {
			t.Errorf("replayed=%v principal=%q, want a new transaction of %s", r.GetReplayed(), r.GetTransaction().GetPrincipal(), teller2ID)
		}
		if got := balanceOf(t, b.teller, aliceEUR); got != before+7 {
			t.Errorf("balance %d, want %d", got, before+7)
		}
	})
}

func TestTransferMapping(t *testing.T) {
	b := newBank(t)
	r, err := b.payments.Transfer(actingFor(callCtx(t), aliceID), &accountsv1.TransferRequest{
		FromAccountId: b.aliceEUR.GetId(), ToAccountId: b.bobEUR.GetId(),
		Amount: amountOf("EUR", 1234), IdempotencyKey: "pay-1", Reference: "rent",
	})
	if err != nil {
		t.Fatalf("transfer: %v", err)
	}
	txn := r.GetTransaction()
	if txn.GetKind() != accountsv1.TransactionKind_TRANSACTION_KIND_TRANSFER ||
		!proto.Equal(txn.GetAmount(), amountOf("EUR", 1234)) ||
		txn.GetPrincipal() != paymentsID || txn.GetOnBehalfOf() != aliceID ||
		txn.GetReference() != "rent" || txn.GetIdempotencyKey() != "pay-1" ||
		!strings.HasPrefix(txn.GetId(), "txn_") || !txn.GetCreateTime().IsValid() {
		t.Errorf("transaction fields: %v", txn)
	}
	want := []struct {
		account       string
		amount, after int64
	}{
		{b.aliceEUR.GetId(), -1234, aliceEURFunds - 1234},
		{b.bobEUR.GetId(), 1234, bobEURFunds + 1234},
	}
	if len(txn.GetEntries()) != len(want) {
		t.Fatalf("%d entries, want %d", len(txn.GetEntries()), len(want))
	}
	for i, e := range txn.GetEntries() {
		w := want[i]
		if e.GetAccountId() != w.account || !proto.Equal(e.GetAmount(), amountOf("EUR", w.amount)) ||
			!proto.Equal(e.GetBalanceAfter(), amountOf("EUR", w.after)) || e.GetTransactionId() != txn.GetId() ||
			e.GetSequence() <= 0 || !e.GetCreateTime().IsValid() {
			t.Errorf("entry %d: %v, want account %s amount %d balance after %d", i, e, w.account, w.amount, w.after)
		}
	}
	if got := balanceOf(t, b.teller, b.aliceEUR.GetId()); got != aliceEURFunds-1234 {
		t.Errorf("alice's balance %d, want %d", got, aliceEURFunds-1234)
	}

	// A principal that is not own-scope (a teller named by the payments service) may move
	// money from any account.
	if _, err := b.payments.Transfer(actingFor(callCtx(t), tellerID), &accountsv1.TransferRequest{
		FromAccountId: b.bobEUR.GetId(), ToAccountId: b.aliceEUR.GetId(), Amount: amountOf("EUR", 1), IdempotencyKey: "pay-2",
	}); err != nil {
		t.Errorf("payments on behalf of a teller: %v", err)
	}
}

func TestCustomerSeesOwnAccounts(t *testing.T) {
	b := newBank(t)
	ctx := callCtx(t)

	got, err := b.alice.GetAccount(ctx, &accountsv1.GetAccountRequest{Id: b.aliceEUR.GetId()})
	if err != nil {
		t.Fatalf("alice reads her account: %v", err)
	}
	a := got.GetAccount()
	if a.GetOwner() != aliceID || a.GetCurrency() != "EUR" || !proto.Equal(a.GetBalance(), amountOf("EUR", aliceEURFunds)) ||
		a.GetDisplayName() != "test" || !a.GetCreateTime().IsValid() {
		t.Errorf("alice's account: %v", a)
	}

	wantIDs := []string{b.aliceEUR.GetId(), b.aliceUSD.GetId()}
	slices.Sort(wantIDs)
	for _, owner := range []string{"", aliceID} {
		resp, err := b.alice.ListAccounts(ctx, &accountsv1.ListAccountsRequest{Owner: owner})
		if err != nil {
			t.Fatalf("alice lists with owner %q: %v", owner, err)
		}
		var ids []string
		for _, a := range resp.GetAccounts() {
			ids = append(ids, a.GetId())
		}
		if !slices.Equal(ids, wantIDs) || resp.GetNextPageToken() != "" {
			t.Errorf("alice lists (owner %q) %v (next %q), want %v", owner, ids, resp.GetNextPageToken(), wantIDs)
		}
	}

	// Tellers and auditors list everyone.
	for name, c := range map[string]accountsv1.AccountsServiceClient{"teller": b.teller, "auditor": b.auditor} {
		resp, err := c.ListAccounts(ctx, &accountsv1.ListAccountsRequest{})
		if err != nil || len(resp.GetAccounts()) != 3 {
			t.Errorf("%s lists %d accounts (err %v), want 3", name, len(resp.GetAccounts()), err)
		}
	}
}

func TestPagination(t *testing.T) {
	e := newEnv(t)
	teller, carol := e.client(t, tellerID), e.client(t, carolID)
	var want []string
	for range 5 {
		want = append(want, openAccount(t, teller, carolID, "EUR").GetId())
	}
	openAccount(t, teller, bobID, "EUR") // not carol's: never listed below
	slices.Sort(want)

	tests := []struct {
		name   string
		client accountsv1.AccountsServiceClient
		owner  string
		size   int32
		pages  []int
	}{
		{name: "teller, owner filter, pages of 2", client: teller, owner: carolID, size: 2, pages: []int{2, 2, 1}},
		{name: "customer, default filter, pages of 3", client: carol, size: 3, pages: []int{3, 2}},
		{name: "exact fit", client: carol, size: 5, pages: []int{5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			var sizes []int
			token := ""
			for len(sizes) <= len(want) {
				resp, err := tt.client.ListAccounts(callCtx(t), &accountsv1.ListAccountsRequest{Owner: tt.owner, PageSize: tt.size, PageToken: token})
				if err != nil {
					t.Fatalf("page %d: %v", len(sizes), err)
				}
				sizes = append(sizes, len(resp.GetAccounts()))
				for _, a := range resp.GetAccounts() {
					got = append(got, a.GetId())
				}
				if token = resp.GetNextPageToken(); token == "" {
					break
				}
			}
			if !slices.Equal(got, want) || !slices.Equal(sizes, tt.pages) {
				t.Errorf("got %v in pages %v, want %v in pages %v", got, sizes, want, tt.pages)
			}
		})
	}

	t.Run("token bound to its owner filter", func(t *testing.T) {
		resp, err := teller.ListAccounts(callCtx(t), &accountsv1.ListAccountsRequest{Owner: carolID, PageSize: 1})
		if err != nil {
			t.Fatal(err)
		}
		_, err = teller.ListAccounts(callCtx(t), &accountsv1.ListAccountsRequest{Owner: bobID, PageToken: resp.GetNextPageToken()})
		wantStatus(t, err, codes.InvalidArgument, "page_token")
	})
}
