package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	identityv1 "mtlsbank/gen/bank/identity/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	"mtlsbank/internal/authz"
	"mtlsbank/internal/ledger"
	"mtlsbank/internal/refusal"
	"mtlsbank/internal/validation/validationtest"
)

// invalidCase is one malformed request: the call, and the first field and reason the
// refusal must name.
type invalidCase struct {
	name   string
	call   func(ctx context.Context) error
	field  string
	reason string
}

// TestRequestValidation sends malformed requests to every RPC of both services over
// mutual TLS (the real servers, their interceptor chains and policies, the real ledger
// and payments store), each from a caller the policy allows, and checks the exact
// answer: InvalidArgument, a google.rpc.BadRequest whose first field violation names the
// field, and the ErrorInfo of its reason naming the same field. Nothing may change: the
// accounts, balances and payments are as before, and the idempotency keys the refused
// requests carried are still free.
func TestRequestValidation(t *testing.T) {
	b := newBank(t)
	aliceAcc := b.open(t, aliceID, 100_00)
	bobAcc := b.open(t, bobID, 0)
	teller := b.accountsClient(t, tellerID)
	auditor := b.accountsClient(t, auditorID)
	// Transfer is the payments service's, on behalf of the teller.
	paymentsSvc := accountsv1.NewAccountsServiceClient(b.client(t, paymentsID, b.accounts.dial, accountsID))
	alicePays := b.payments(t, aliceID)
	whoAccounts := identityv1.NewIdentityServiceClient(b.client(t, aliceID, b.accounts.dial, accountsID))

	const unknownPayment = "pay_ABCDEFGHIJKLMNOPQRSTUVWXY2"
	long := strings.Repeat("x", 257)
	deposit := func(mut func(*accountsv1.DepositRequest)) func(context.Context) error {
		return func(ctx context.Context) error {
			r := &accountsv1.DepositRequest{AccountId: aliceAcc, Amount: eur(1_00), IdempotencyKey: "deposit-refused", Reference: "ref"}
			mut(r)
			_, err := teller.Deposit(ctx, r)
			return err
		}
	}
	withdraw := func(mut func(*accountsv1.WithdrawRequest)) func(context.Context) error {
		return func(ctx context.Context) error {
			r := &accountsv1.WithdrawRequest{AccountId: aliceAcc, Amount: eur(1_00), IdempotencyKey: "withdraw-refused"}
			mut(r)
			_, err := teller.Withdraw(ctx, r)
			return err
		}
	}
	transfer := func(mut func(*accountsv1.TransferRequest)) func(context.Context) error {
		return func(ctx context.Context) error {
			r := &accountsv1.TransferRequest{FromAccountId: aliceAcc, ToAccountId: bobAcc, Amount: eur(1_00), IdempotencyKey: "transfer-refused"}
			mut(r)
			_, err := paymentsSvc.Transfer(metadata.AppendToOutgoingContext(ctx, authz.OnBehalfOfKey, tellerID), r)
			return err
		}
	}
	pay := func(mut func(*paymentsv1.CreatePaymentRequest)) func(context.Context) error {
		return func(ctx context.Context) error {
			r := &paymentsv1.CreatePaymentRequest{FromAccountId: aliceAcc, ToAccountId: bobAcc, Amount: eur(1_00), IdempotencyKey: "payment-refused", Memo: "m"}
			mut(r)
			_, err := alicePays.CreatePayment(ctx, r)
			return err
		}
	}
	open := func(r *accountsv1.OpenAccountRequest) func(context.Context) error {
		return func(ctx context.Context) error { _, err := teller.OpenAccount(ctx, r); return err }
	}
	get := func(id string) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := teller.GetAccount(ctx, &accountsv1.GetAccountRequest{Id: id})
			return err
		}
	}
	list := func(r *accountsv1.ListAccountsRequest) func(context.Context) error {
		return func(ctx context.Context) error { _, err := teller.ListAccounts(ctx, r); return err }
	}
	watch := func(after int64) func(context.Context) error {
		return func(ctx context.Context) error {
			st, err := auditor.WatchLedger(ctx, &accountsv1.WatchLedgerRequest{AfterSequence: after})
			if err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		}
	}
	getPayment := func(id string) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := alicePays.GetPayment(ctx, &paymentsv1.GetPaymentRequest{Id: id})
			return err
		}
	}
	listPayments := func(r *paymentsv1.ListPaymentsRequest) func(context.Context) error {
		return func(ctx context.Context) error { _, err := alicePays.ListPayments(ctx, r); return err }
	}

	rpcs := []struct {
		rpc   string
		cases []invalidCase
	}{
		{"OpenAccount", []invalidCase{
			{"no owner", open(&accountsv1.OpenAccountRequest{Currency: "EUR"}), "owner", refusal.MissingField},
			{"owner not a SPIFFE ID", open(&accountsv1.OpenAccountRequest{Owner: "alice", Currency: "EUR"}), "owner", refusal.InvalidOwner},
			{"owner with ..", open(&accountsv1.OpenAccountRequest{Owner: "spiffe://bank.local/customer/..", Currency: "EUR"}), "owner", refusal.InvalidOwner},
			{"no currency", open(&accountsv1.OpenAccountRequest{Owner: aliceID}), "currency", refusal.MissingField},
			{"lower-case currency", open(&accountsv1.OpenAccountRequest{Owner: aliceID, Currency: "eur"}), "currency", refusal.UnknownCurrency},
			{"display name too long", open(&accountsv1.OpenAccountRequest{Owner: aliceID, Currency: "EUR", DisplayName: long[:201]}), "display_name", refusal.InvalidText},
			{"display name with a newline", open(&accountsv1.OpenAccountRequest{Owner: aliceID, Currency: "EUR", DisplayName: "a\nb"}), "display_name", refusal.InvalidText},
		}},
		{"GetAccount", []invalidCase{
			{"no id", get(""), "id", refusal.MissingField},
			{"malformed id", get("acc_x"), "id", refusal.MalformedID},
			{"SQL in the id", get("acc_' OR 1=1 --"), "id", refusal.MalformedID},
			{"a payment id", get(unknownPayment), "id", refusal.MalformedID},
		}},
		{"ListAccounts", []invalidCase{
			{"negative page size", list(&accountsv1.ListAccountsRequest{PageSize: -1}), "page_size", refusal.InvalidPageSize},
			{"page token not base64url", list(&accountsv1.ListAccountsRequest{PageToken: "a+b/c="}), "page_token", refusal.InvalidPageToken},
			{"page token too long", list(&accountsv1.ListAccountsRequest{PageToken: strings.Repeat("A", 201)}), "page_token", refusal.InvalidPageToken},
			{"owner filter not a SPIFFE ID", list(&accountsv1.ListAccountsRequest{Owner: "bob"}), "owner", refusal.InvalidOwner},
		}},
		{"Deposit", []invalidCase{
			{"no account", deposit(func(r *accountsv1.DepositRequest) { r.AccountId = "" }), "account_id", refusal.MissingField},
			{"malformed account", deposit(func(r *accountsv1.DepositRequest) { r.AccountId = "nope" }), "account_id", refusal.MalformedID},
			{"no amount", deposit(func(r *accountsv1.DepositRequest) { r.Amount = nil }), "amount", refusal.MissingField},
			{"zero amount", deposit(func(r *accountsv1.DepositRequest) { r.Amount = eur(0) }), "amount.minor_units", refusal.InvalidAmount},
			{"negative amount", deposit(func(r *accountsv1.DepositRequest) { r.Amount = eur(-1) }), "amount.minor_units", refusal.InvalidAmount},
			{"amount of MaxInt64", deposit(func(r *accountsv1.DepositRequest) { r.Amount = eur(math.MaxInt64) }), "amount.minor_units", refusal.AmountTooLarge},
			{"no currency", deposit(func(r *accountsv1.DepositRequest) { r.Amount.CurrencyCode = "" }), "amount.currency_code", refusal.MissingField},
			{"currency not a code", deposit(func(r *accountsv1.DepositRequest) { r.Amount.CurrencyCode = "€" }), "amount.currency_code", refusal.UnknownCurrency},
			{"no key", deposit(func(r *accountsv1.DepositRequest) { r.IdempotencyKey = "" }), "idempotency_key", refusal.MissingField},
			{"key with a space", deposit(func(r *accountsv1.DepositRequest) { r.IdempotencyKey = "a b" }), "idempotency_key", refusal.InvalidIdempotencyKey},
			{"key too long", deposit(func(r *accountsv1.DepositRequest) { r.IdempotencyKey = long[:129] }), "idempotency_key", refusal.InvalidIdempotencyKey},
			{"reference too long", deposit(func(r *accountsv1.DepositRequest) { r.Reference = long }), "reference", refusal.InvalidText},
			{"reference with NUL", deposit(func(r *accountsv1.DepositRequest) { r.Reference = "a\x00" }), "reference", refusal.InvalidText},
		}},
		{"Withdraw", []invalidCase{
			{"malformed account", withdraw(func(r *accountsv1.WithdrawRequest) { r.AccountId = strings.ToUpper(aliceAcc) }), "account_id", refusal.MalformedID},
			{"zero amount", withdraw(func(r *accountsv1.WithdrawRequest) { r.Amount = eur(0) }), "amount.minor_units", refusal.InvalidAmount},
			{"no key", withdraw(func(r *accountsv1.WithdrawRequest) { r.IdempotencyKey = "" }), "idempotency_key", refusal.MissingField},
			{"reference with ESC", withdraw(func(r *accountsv1.WithdrawRequest) { r.Reference = "\x1b[31mred" }), "reference", refusal.InvalidText},
		}},
		{"Transfer", []invalidCase{
			{"no source", transfer(func(r *accountsv1.TransferRequest) { r.FromAccountId = "" }), "from_account_id", refusal.MissingField},
			{"malformed destination", transfer(func(r *accountsv1.TransferRequest) { r.ToAccountId = "acc_" }), "to_account_id", refusal.MalformedID},
			{"self-transfer", transfer(func(r *accountsv1.TransferRequest) { r.ToAccountId = aliceAcc }), "to_account_id", refusal.SelfTransfer},
			{"self-transfer void", transfer(func(r *accountsv1.TransferRequest) { r.ToAccountId = aliceAcc; r.Void = true }), "to_account_id", refusal.SelfTransfer},
			{"negative amount", transfer(func(r *accountsv1.TransferRequest) { r.Amount = eur(-5) }), "amount.minor_units", refusal.InvalidAmount},
			{"key with a tab", transfer(func(r *accountsv1.TransferRequest) { r.IdempotencyKey = "a\tb" }), "idempotency_key", refusal.InvalidIdempotencyKey},
		}},
		{"WatchLedger", []invalidCase{
			{"negative sequence", watch(-1), "after_sequence", refusal.InvalidSequence},
			{"most negative sequence", watch(math.MinInt64), "after_sequence", refusal.InvalidSequence},
		}},
		{"CreatePayment", []invalidCase{
			{"no source", pay(func(r *paymentsv1.CreatePaymentRequest) { r.FromAccountId = "" }), "from_account_id", refusal.MissingField},
			{"malformed destination", pay(func(r *paymentsv1.CreatePaymentRequest) { r.ToAccountId = "bob" }), "to_account_id", refusal.MalformedID},
			{"self-payment", pay(func(r *paymentsv1.CreatePaymentRequest) { r.ToAccountId = aliceAcc }), "to_account_id", refusal.SelfTransfer},
			{"no amount", pay(func(r *paymentsv1.CreatePaymentRequest) { r.Amount = nil }), "amount", refusal.MissingField},
			{"zero amount", pay(func(r *paymentsv1.CreatePaymentRequest) { r.Amount = eur(0) }), "amount.minor_units", refusal.InvalidAmount},
			{"amount over 10^18", pay(func(r *paymentsv1.CreatePaymentRequest) { r.Amount = eur(2_000_000_000_000_000_000) }), "amount.minor_units", refusal.AmountTooLarge},
			{"currency of two letters", pay(func(r *paymentsv1.CreatePaymentRequest) { r.Amount.CurrencyCode = "EU" }), "amount.currency_code", refusal.UnknownCurrency},
			{"no key", pay(func(r *paymentsv1.CreatePaymentRequest) { r.IdempotencyKey = "" }), "idempotency_key", refusal.MissingField},
			{"key with non-ASCII", pay(func(r *paymentsv1.CreatePaymentRequest) { r.IdempotencyKey = "clé" }), "idempotency_key", refusal.InvalidIdempotencyKey},
			{"memo of 201 characters", pay(func(r *paymentsv1.CreatePaymentRequest) { r.Memo = strings.Repeat("é", 201) }), "memo", refusal.InvalidText},
			{"memo with a C1 control", pay(func(r *paymentsv1.CreatePaymentRequest) { r.Memo = "a\u009bb" }), "memo", refusal.InvalidText},
			{"memo with a right-to-left override", pay(func(r *paymentsv1.CreatePaymentRequest) { r.Memo = "rent \u202e00.0001 RUE\u202c" }), "memo", refusal.InvalidText},
		}},
		{"GetPayment", []invalidCase{
			{"no id", getPayment(""), "id", refusal.MissingField},
			{"lower-case id", getPayment(strings.ToLower(unknownPayment)), "id", refusal.MalformedID},
			{"an account id", getPayment(aliceAcc), "id", refusal.MalformedID},
		}},
		{"ListPayments", []invalidCase{
			{"negative page size", listPayments(&paymentsv1.ListPaymentsRequest{PageSize: math.MinInt32}), "page_size", refusal.InvalidPageSize},
			{"page token with padding", listPayments(&paymentsv1.ListPaymentsRequest{PageToken: "cDEuMQ=="}), "page_token", refusal.InvalidPageToken},
		}},
	}

	before := b.state(t)
	for _, r := range rpcs {
		t.Run(r.rpc, func(t *testing.T) {
			for _, tc := range r.cases {
				t.Run(tc.name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					wantFieldRefusal(t, tc.call(ctx), tc.field, tc.reason)
				})
			}
		})
	}
	// WhoAmI has no fields: nothing to refuse, whatever the caller sends.
	if _, err := whoAccounts.WhoAmI(context.Background(), &identityv1.WhoAmIRequest{}); err != nil {
		t.Errorf("WhoAmI: %v", err)
	}
	if after := b.state(t); after != before {
		t.Fatalf("the refused requests changed the bank:\nbefore %s\nafter  %s", before, after)
	}

	// The keys of the refused money-moving requests were never recorded: a valid request
	// under each is carried out, not answered as a replay.
	ctx := context.Background()
	if resp, err := teller.Deposit(ctx, &accountsv1.DepositRequest{AccountId: aliceAcc, Amount: eur(1_00), IdempotencyKey: "deposit-refused"}); err != nil || resp.GetReplayed() {
		t.Errorf("deposit under the refused key: %v, replayed %v", err, resp.GetReplayed())
	}
	if resp, err := teller.Withdraw(ctx, &accountsv1.WithdrawRequest{AccountId: aliceAcc, Amount: eur(1_00), IdempotencyKey: "withdraw-refused"}); err != nil || resp.GetReplayed() {
		t.Errorf("withdrawal under the refused key: %v, replayed %v", err, resp.GetReplayed())
	}
	if resp, err := paymentsSvc.Transfer(metadata.AppendToOutgoingContext(ctx, authz.OnBehalfOfKey, tellerID),
		&accountsv1.TransferRequest{FromAccountId: aliceAcc, ToAccountId: bobAcc, Amount: eur(1_00), IdempotencyKey: "transfer-refused"}); err != nil || resp.GetReplayed() {
		t.Errorf("transfer under the refused key: %v, replayed %v", err, resp.GetReplayed())
	}
	if resp, err := alicePays.CreatePayment(ctx, &paymentsv1.CreatePaymentRequest{FromAccountId: aliceAcc, ToAccountId: bobAcc, Amount: eur(1_00), IdempotencyKey: "payment-refused"}); err != nil || resp.GetReplayed() {
		t.Errorf("payment under the refused key: %v, replayed %v", err, resp.GetReplayed())
	}
	b.wantBalances(t, []string{aliceAcc, bobAcc}, 98_00, 2_00)
}

// TestValidationAfterAuthorization: a caller the policy refuses learns nothing from a
// malformed request: PermissionDenied, as for a well-formed one, without ErrorInfo.
func TestValidationAfterAuthorization(t *testing.T) {
	b := newBank(t)
	ctx := context.Background()
	intern := b.payments(t, internID)
	_, err := intern.CreatePayment(ctx, &paymentsv1.CreatePaymentRequest{FromAccountId: "x"})
	wantDenied(t, err)
	auditorOpens := b.accountsClient(t, auditorID)
	_, err = auditorOpens.OpenAccount(ctx, &accountsv1.OpenAccountRequest{Owner: "not an id"})
	wantDenied(t, err)
}

func wantDenied(tb testing.TB, err error) {
	tb.Helper()
	st := status.Convert(err)
	if st.Code() != codes.PermissionDenied || len(st.Details()) != 0 {
		tb.Fatalf("%v (details %v), want a bare PermissionDenied", err, st.Details())
	}
}

// wantFieldRefusal fails tb unless err is InvalidArgument with a BadRequest whose first
// field violation is field, and an ErrorInfo of reason naming field.
func wantFieldRefusal(tb testing.TB, err error, field, reason string) {
	tb.Helper()
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		tb.Fatalf("%v, want InvalidArgument", err)
	}
	var br *errdetails.BadRequest
	var info *errdetails.ErrorInfo
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			br = d
		case *errdetails.ErrorInfo:
			info = d
		}
	}
	if br == nil || len(br.GetFieldViolations()) == 0 || br.GetFieldViolations()[0].GetField() != field {
		tb.Errorf("BadRequest %v, want its first field violation on %s", br, field)
	}
	if info == nil || info.GetReason() != reason || info.GetDomain() != refusal.Domain || info.GetMetadata()["field"] != field {
		tb.Errorf("ErrorInfo %v, want reason %s in %s with field %s", info, reason, refusal.Domain, field)
	}
	if !strings.Contains(st.Message(), field+": ") {
		tb.Errorf("message %q does not name %s", st.Message(), field)
	}
}

// state describes everything a request could change: every account with its balance
// (the settlement accounts too) and every payment with its status.
func (b *bank) state(tb testing.TB) string {
	tb.Helper()
	ctx := context.Background()
	var sb strings.Builder
	token := ""
	for {
		page, err := b.ledger.ListAccounts(ctx, ledger.ListAccountsRequest{PageSize: ledger.MaxPageSize, PageToken: token})
		if err != nil {
			tb.Fatal(err)
		}
		for _, a := range page.Accounts {
			fmt.Fprintf(&sb, "%s=%d ", a.ID, a.Balance)
		}
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	system, err := b.ledger.SystemAccounts(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	for _, a := range system {
		fmt.Fprintf(&sb, "%s=%d ", a.ID, a.Balance)
	}
	payments := b.payments(tb, auditorID)
	token = ""
	for {
		resp, err := payments.ListPayments(ctx, &paymentsv1.ListPaymentsRequest{PageSize: 500, PageToken: token})
		if err != nil {
			tb.Fatal(err)
		}
		for _, p := range resp.GetPayments() {
			fmt.Fprintf(&sb, "%s:%s ", p.GetId(), p.GetStatus())
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	return sb.String()
}

// TestGarbageFieldsOverTheWire sends requests of every RPC whose fields hold random
// hostile values (seeded): every answer is OK or a clean refusal, each InvalidArgument
// carries its ErrorInfo and BadRequest, nothing panics, and both services still answer.
func TestGarbageFieldsOverTheWire(t *testing.T) {
	b := newBank(t)
	aliceAcc := b.open(t, aliceID, 100_00)
	bobAcc := b.open(t, bobID, 0)
	values := []string{"", "x", "\x00", "\u0085", "🏦", strings.Repeat("z", 300), aliceAcc, bobAcc, strings.ToUpper(aliceAcc),
		"pay_ABCDEFGHIJKLMNOPQRSTUVWXY2", "EUR", "eur", "USD", aliceID, "spiffe://bank.local", "spiffe://evil.example/x",
		"k", "' OR 1=1 --", "YTEu", "%n%s"}
	ints := []int64{0, 1, -1, 1_00, math.MaxInt64, math.MinInt64, math.MaxInt32}
	rng := rand.New(rand.NewPCG(2026, 12))
	teller := b.accountsClient(t, tellerID)
	auditorAcc := b.accountsClient(t, auditorID)
	transfers := accountsv1.NewAccountsServiceClient(b.client(t, paymentsID, b.accounts.dial, accountsID))
	alicePays := b.payments(t, aliceID)
	type call struct {
		req  proto.Message
		send func(ctx context.Context, req proto.Message) error
	}
	calls := []call{
		{&accountsv1.OpenAccountRequest{}, func(ctx context.Context, r proto.Message) error {
			_, err := teller.OpenAccount(ctx, r.(*accountsv1.OpenAccountRequest))
			return err
		}},
		{&accountsv1.GetAccountRequest{}, func(ctx context.Context, r proto.Message) error {
			_, err := teller.GetAccount(ctx, r.(*accountsv1.GetAccountRequest))
			return err
		}},
		{&accountsv1.ListAccountsRequest{}, func(ctx context.Context, r proto.Message) error {
			_, err := teller.ListAccounts(ctx, r.(*accountsv1.ListAccountsRequest))
			return err
		}},
		{&accountsv1.DepositRequest{}, func(ctx context.Context, r proto.Message) error {
			_, err := teller.Deposit(ctx, r.(*accountsv1.DepositRequest))
			return err
		}},
		{&accountsv1.WithdrawRequest{}, func(ctx context.Context, r proto.Message) error {
			_, err := teller.Withdraw(ctx, r.(*accountsv1.WithdrawRequest))
			return err
		}},
		{&accountsv1.TransferRequest{}, func(ctx context.Context, r proto.Message) error {
			_, err := transfers.Transfer(metadata.AppendToOutgoingContext(ctx, authz.OnBehalfOfKey, tellerID), r.(*accountsv1.TransferRequest))
			return err
		}},
		{&accountsv1.WatchLedgerRequest{}, func(ctx context.Context, r proto.Message) error {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			st, err := auditorAcc.WatchLedger(ctx, r.(*accountsv1.WatchLedgerRequest))
			if err != nil {
				return err
			}
			// An accepted stream sends its headers at once; a refused one ends with
			// trailers only, and Recv returns its status.
			if md, err := st.Header(); err == nil && md != nil {
				return nil
			}
			_, err = st.Recv()
			return err
		}},
		{&paymentsv1.CreatePaymentRequest{}, func(ctx context.Context, r proto.Message) error {
			_, err := alicePays.CreatePayment(ctx, r.(*paymentsv1.CreatePaymentRequest))
			return err
		}},
		{&paymentsv1.GetPaymentRequest{}, func(ctx context.Context, r proto.Message) error {
			_, err := alicePays.GetPayment(ctx, r.(*paymentsv1.GetPaymentRequest))
			return err
		}},
		{&paymentsv1.ListPaymentsRequest{}, func(ctx context.Context, r proto.Message) error {
			_, err := alicePays.ListPayments(ctx, r.(*paymentsv1.ListPaymentsRequest))
			return err
		}},
	}
	allowed := map[codes.Code]bool{codes.OK: true, codes.InvalidArgument: true, codes.NotFound: true,
		codes.FailedPrecondition: true, codes.PermissionDenied: true, codes.ResourceExhausted: true}
	counts := map[codes.Code]int{}
	for range 15 {
		for _, c := range calls {
			req := c.req.ProtoReflect().New()
			validationtest.Fill(rng, req, values, ints)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := c.send(ctx, req.Interface())
			cancel()
			code := status.Code(err)
			counts[code]++
			if !allowed[code] {
				t.Errorf("%T %v: %v", c.req, req.Interface(), err)
				continue
			}
			if code == codes.InvalidArgument {
				if _, ok := refusal.Info(err); !ok {
					t.Errorf("%T %v: InvalidArgument without ErrorInfo: %v", c.req, req.Interface(), err)
				}
			}
		}
	}
	t.Logf("codes: %v", counts)
	if counts[codes.InvalidArgument] == 0 || counts[codes.OK] == 0 {
		t.Errorf("codes %v: the generator should reach both valid and invalid requests", counts)
	}
	if logs := b.logs.String(); strings.Contains(logs, "panic") {
		t.Fatalf("a request made a handler panic:\n%s", logs)
	}
	if _, err := teller.GetAccount(context.Background(), &accountsv1.GetAccountRequest{Id: aliceAcc}); err != nil {
		t.Fatalf("accounts after the garbage: %v", err)
	}
}
