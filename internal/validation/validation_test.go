package validation_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	typev1 "mtlsbank/gen/bank/type/v1"
	"mtlsbank/internal/ledger"
	"mtlsbank/internal/refusal"
	"mtlsbank/internal/validation"
)

const (
	accountA = "acc_01j9z3k5m7p9r1t3v5x7z9b1d3"
	accountB = "acc_7zzzzzzzzzzzzzzzzzzzzzzzzz"
	paymentA = "pay_ABCDEFGHIJKLMNOPQRSTUVWXY2"
)

func newValidator(tb testing.TB) *validation.Validator {
	tb.Helper()
	v, err := validation.New(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

func eur(minor int64) *typev1.Money { return &typev1.Money{CurrencyCode: "EUR", MinorUnits: minor} }

// refused returns the field and reason of the first violation of err, and fails the test
// unless err is an InvalidArgument status whose details are consistent: a BadRequest with
// one field violation per violation, each with a specific reason, and one ErrorInfo of
// the bank's domain with the first violation's reason and field.
func refused(tb testing.TB, err error) (field, reason string) {
	tb.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		tb.Fatalf("error %v, want an InvalidArgument status", err)
	}
	var br *errdetails.BadRequest
	var infos []*errdetails.ErrorInfo
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			br = d
		case *errdetails.ErrorInfo:
			infos = append(infos, d)
		}
	}
	if br == nil || len(br.GetFieldViolations()) == 0 {
		tb.Fatalf("%v: no BadRequest field violation", err)
	}
	for _, fv := range br.GetFieldViolations() {
		if fv.GetField() == "" || fv.GetDescription() == "" || fv.GetReason() == "" || fv.GetReason() == refusal.InvalidArgument {
			tb.Errorf("%v: field violation %v lacks a field, a description or a specific reason", err, fv)
		}
		if !strings.Contains(st.Message(), fv.GetField()+": "+fv.GetDescription()) {
			tb.Errorf("message %q does not name %s", st.Message(), fv.GetField())
		}
	}
	first := br.GetFieldViolations()[0]
	if len(infos) != 1 || infos[0].GetDomain() != refusal.Domain || infos[0].GetReason() != first.GetReason() ||
		infos[0].GetMetadata()["field"] != first.GetField() {
		tb.Fatalf("%v: ErrorInfo %v, want one in %s with reason %s and field %s", err, infos, refusal.Domain, first.GetReason(), first.GetField())
	}
	return first.GetField(), first.GetReason()
}

// TestRules checks each rule on examples at its edges: what it admits and what it
// refuses, with which field and reason.
func TestRules(t *testing.T) {
	v := newValidator(t)
	deposit := func(mut func(r *accountsv1.DepositRequest)) proto.Message {
		r := &accountsv1.DepositRequest{AccountId: accountA, Amount: eur(1), IdempotencyKey: "k", Reference: "ref"}
		mut(r)
		return r
	}
	pay := func(mut func(r *paymentsv1.CreatePaymentRequest)) proto.Message {
		r := &paymentsv1.CreatePaymentRequest{FromAccountId: accountA, ToAccountId: accountB, Amount: eur(1), IdempotencyKey: "k"}
		mut(r)
		return r
	}
	open := func(owner, currency, name string) proto.Message {
		return &accountsv1.OpenAccountRequest{Owner: owner, Currency: currency, DisplayName: name}
	}
	tests := []struct {
		name   string
		msg    proto.Message
		field  string // "" when the message is valid
		reason string
	}{
		{name: "valid deposit", msg: deposit(func(*accountsv1.DepositRequest) {})},
		{name: "valid payment", msg: pay(func(*paymentsv1.CreatePaymentRequest) {})},
		{name: "valid open", msg: open("spiffe://bank.local/customer/alice", "JPY", "")},
		{name: "empty list", msg: &accountsv1.ListAccountsRequest{}},
		{name: "watch from the start", msg: &accountsv1.WatchLedgerRequest{}},

		// account ids
		{name: "account id missing", msg: &accountsv1.GetAccountRequest{}, field: "id", reason: refusal.MissingField},
		{name: "account id upper case", msg: &accountsv1.GetAccountRequest{Id: strings.ToUpper(accountA)}, field: "id", reason: refusal.MalformedID},
		{name: "account id short", msg: &accountsv1.GetAccountRequest{Id: accountA[:len(accountA)-1]}, field: "id", reason: refusal.MalformedID},
		{name: "account id long", msg: &accountsv1.GetAccountRequest{Id: accountA + "0"}, field: "id", reason: refusal.MalformedID},
		{name: "account id with u", msg: &accountsv1.GetAccountRequest{Id: accountA[:len(accountA)-1] + "u"}, field: "id", reason: refusal.MalformedID},
		{name: "account id over 128 bits", msg: &accountsv1.GetAccountRequest{Id: "acc_8" + accountA[5:]}, field: "id", reason: refusal.MalformedID},
		{name: "transaction id for an account", msg: &accountsv1.GetAccountRequest{Id: "txn_" + accountA[4:]}, field: "id", reason: refusal.MalformedID},
		{name: "account id with a newline", msg: &accountsv1.GetAccountRequest{Id: accountA + "\n"}, field: "id", reason: refusal.MalformedID},
		{name: "payment id lower case", msg: &paymentsv1.GetPaymentRequest{Id: strings.ToLower(paymentA)}, field: "id", reason: refusal.MalformedID},
		{name: "payment id with 1", msg: &paymentsv1.GetPaymentRequest{Id: paymentA[:len(paymentA)-1] + "1"}, field: "id", reason: refusal.MalformedID},
		{name: "payment id", msg: &paymentsv1.GetPaymentRequest{Id: paymentA}},

		// amounts
		{name: "no amount", msg: deposit(func(r *accountsv1.DepositRequest) { r.Amount = nil }), field: "amount", reason: refusal.MissingField},
		{name: "zero amount", msg: deposit(func(r *accountsv1.DepositRequest) { r.Amount = eur(0) }), field: "amount.minor_units", reason: refusal.InvalidAmount},
		{name: "negative amount", msg: pay(func(r *paymentsv1.CreatePaymentRequest) { r.Amount = eur(-1) }), field: "amount.minor_units", reason: refusal.InvalidAmount},
		{name: "largest amount", msg: deposit(func(r *accountsv1.DepositRequest) { r.Amount = eur(1_000_000_000_000_000_000) })},
		{name: "amount over 10^18", msg: deposit(func(r *accountsv1.DepositRequest) { r.Amount = eur(1_000_000_000_000_000_001) }), field: "amount.minor_units", reason: refusal.AmountTooLarge},
		{name: "amount without currency", msg: deposit(func(r *accountsv1.DepositRequest) { r.Amount.CurrencyCode = "" }), field: "amount.currency_code", reason: refusal.MissingField},
		{name: "lower-case currency", msg: deposit(func(r *accountsv1.DepositRequest) { r.Amount.CurrencyCode = "eur" }), field: "amount.currency_code", reason: refusal.UnknownCurrency},
		{name: "four-letter currency", msg: open("spiffe://bank.local/customer/alice", "EURO", ""), field: "currency", reason: refusal.UnknownCurrency},

		// idempotency keys
		{name: "key missing", msg: deposit(func(r *accountsv1.DepositRequest) { r.IdempotencyKey = "" }), field: "idempotency_key", reason: refusal.MissingField},
		{name: "key of 128 characters", msg: deposit(func(r *accountsv1.DepositRequest) { r.IdempotencyKey = strings.Repeat("k", 128) })},
		{name: "key of 129 characters", msg: deposit(func(r *accountsv1.DepositRequest) { r.IdempotencyKey = strings.Repeat("k", 129) }), field: "idempotency_key", reason: refusal.InvalidIdempotencyKey},
		{name: "key with a space", msg: pay(func(r *paymentsv1.CreatePaymentRequest) { r.IdempotencyKey = "two words" }), field: "idempotency_key", reason: refusal.InvalidIdempotencyKey},
		{name: "key with non-ASCII", msg: pay(func(r *paymentsv1.CreatePaymentRequest) { r.IdempotencyKey = "clé" }), field: "idempotency_key", reason: refusal.InvalidIdempotencyKey},
		{name: "key of every printable character", msg: pay(func(r *paymentsv1.CreatePaymentRequest) {
			r.IdempotencyKey = "!\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~"
		})},

		// text
		{name: "reference of 256 bytes", msg: deposit(func(r *accountsv1.DepositRequest) { r.Reference = strings.Repeat("é", 128) })},
		{name: "reference of 257 bytes", msg: deposit(func(r *accountsv1.DepositRequest) { r.Reference = strings.Repeat("é", 128) + "x" }), field: "reference", reason: refusal.InvalidText},
		{name: "reference with a C1 control", msg: deposit(func(r *accountsv1.DepositRequest) { r.Reference = "a\u0085b" }), field: "reference", reason: refusal.InvalidText},
		{name: "reference with an emoji", msg: deposit(func(r *accountsv1.DepositRequest) { r.Reference = "rent 🏠" })},
		// Trojan Source: a right-to-left override makes a terminal show "rent EUR 1000.00".
		{name: "reference with a bidi override", msg: deposit(func(r *accountsv1.DepositRequest) { r.Reference = "rent \u202e00.0001 RUE\u202c" }), field: "reference", reason: refusal.InvalidText},
		{name: "display name with a bidi isolate", msg: open("spiffe://bank.local/customer/alice", "EUR", "a\u2067b"), field: "display_name", reason: refusal.InvalidText},
		{name: "reference with a zero-width non-joiner (Persian)", msg: deposit(func(r *accountsv1.DepositRequest) { r.Reference = "می\u200cخواهم" })},
		{name: "display name with a tab", msg: open("spiffe://bank.local/customer/alice", "EUR", "a\tb"), field: "display_name", reason: refusal.InvalidText},
		{name: "memo of 200 characters", msg: pay(func(r *paymentsv1.CreatePaymentRequest) { r.Memo = strings.Repeat("é", 200) })},
		{name: "memo of 201 characters", msg: pay(func(r *paymentsv1.CreatePaymentRequest) { r.Memo = strings.Repeat("é", 201) }), field: "memo", reason: refusal.InvalidText},
		{name: "memo with DEL", msg: pay(func(r *paymentsv1.CreatePaymentRequest) { r.Memo = "a\x7f" }), field: "memo", reason: refusal.InvalidText},

		// owners
		{name: "owner missing", msg: open("", "EUR", ""), field: "owner", reason: refusal.MissingField},
		{name: "owner without a path", msg: open("spiffe://bank.local", "EUR", ""), field: "owner", reason: refusal.InvalidOwner},
		{name: "owner with a dot-dot segment", msg: open("spiffe://bank.local/customer/../teller/tina", "EUR", ""), field: "owner", reason: refusal.InvalidOwner},
		{name: "owner with an empty segment", msg: open("spiffe://bank.local/customer//alice", "EUR", ""), field: "owner", reason: refusal.InvalidOwner},
		{name: "owner over https", msg: open("https://bank.local/customer/alice", "EUR", ""), field: "owner", reason: refusal.InvalidOwner},
		{name: "owner filter", msg: &accountsv1.ListAccountsRequest{Owner: "spiffe://bank.local/customer/alice"}},
		{name: "bad owner filter", msg: &accountsv1.ListAccountsRequest{Owner: "alice"}, field: "owner", reason: refusal.InvalidOwner},

		// pages and sequences
		{name: "negative page size", msg: &paymentsv1.ListPaymentsRequest{PageSize: -1}, field: "page_size", reason: refusal.InvalidPageSize},
		{name: "huge page size", msg: &paymentsv1.ListPaymentsRequest{PageSize: 1 << 30}},
		{name: "page token", msg: &accountsv1.ListAccountsRequest{PageToken: "YTEuYWNjXzAxLjAx"}},
		{name: "page token with padding", msg: &accountsv1.ListAccountsRequest{PageToken: "YTE="}, field: "page_token", reason: refusal.InvalidPageToken},
		{name: "page token too long", msg: &paymentsv1.ListPaymentsRequest{PageToken: strings.Repeat("A", 201)}, field: "page_token", reason: refusal.InvalidPageToken},
		{name: "negative sequence", msg: &accountsv1.WatchLedgerRequest{AfterSequence: -1}, field: "after_sequence", reason: refusal.InvalidSequence},

		// across fields
		{name: "self-transfer", msg: &accountsv1.TransferRequest{FromAccountId: accountA, ToAccountId: accountA, Amount: eur(1), IdempotencyKey: "k"}, field: "to_account_id", reason: refusal.SelfTransfer},
		{name: "self-payment after a bad amount", msg: pay(func(r *paymentsv1.CreatePaymentRequest) { r.ToAccountId = accountA; r.Amount = eur(0) }), field: "amount.minor_units", reason: refusal.InvalidAmount},
		{name: "two missing ids are not a self-payment", msg: pay(func(r *paymentsv1.CreatePaymentRequest) { r.FromAccountId, r.ToAccountId = "", "" }), field: "from_account_id", reason: refusal.MissingField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := v.Check(context.Background(), tt.msg)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			field, reason := refused(t, err)
			if field != tt.field || reason != tt.reason {
				t.Fatalf("first violation %s %s, want %s %s (%v)", field, reason, tt.field, tt.reason, err)
			}
		})
	}
}

// TestAccountIDRuleAgreesWithLedger: the proto's account id rule and the ledger's parser
// are two statements of one format; they must agree on ids at every edge.
func TestAccountIDRuleAgreesWithLedger(t *testing.T) {
	v := newValidator(t)
	ids := []string{accountA, accountB, "acc_00000000000000000000000000", "acc_80000000000000000000000000",
		"acc_0000000000000000000000000i", "acc_0000000000000000000000000l", "acc_0000000000000000000000000o",
		"acc_0000000000000000000000000u", "acc_0000000000000000000000000U", "acc_", "acc", "ACC_00000000000000000000000000",
		"acc_000000000000000000000000000", "acc_0000000000000000000000000", "acc_000000000000000000000000é"}
	for c := byte(0x20); c < 0x7f; c++ {
		ids = append(ids, "acc_1000000000000000000000000"+string(c))
	}
	for _, id := range ids {
		_, parseErr := ledger.ParseAccountID(id)
		checkErr := v.Check(context.Background(), &accountsv1.GetAccountRequest{Id: id})
		if (parseErr == nil) != (checkErr == nil) {
			t.Errorf("%q: ledger says %v, the rule says %v", id, parseErr, checkErr)
		}
	}
}

// TestRefusalLists every violation in field order, whole-message rules last, and blames
// the first in the ErrorInfo.
func TestRefusalListsEveryViolation(t *testing.T) {
	v := newValidator(t)
	err := v.Check(context.Background(), &paymentsv1.CreatePaymentRequest{
		FromAccountId: accountA, ToAccountId: accountA, Amount: &typev1.Money{MinorUnits: -5}, IdempotencyKey: "a b", Memo: "\x00",
	})
	refused(t, err)
	var got []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, fv := range br.GetFieldViolations() {
				got = append(got, fv.GetField()+" "+fv.GetReason())
			}
		}
	}
	want := []string{
		"amount.minor_units INVALID_AMOUNT", "amount.currency_code MISSING_FIELD",
		"idempotency_key INVALID_IDEMPOTENCY_KEY", "memo INVALID_TEXT", "to_account_id SELF_TRANSFER",
	}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Fatalf("violations\n  %s\nwant\n  %s", strings.Join(got, ", "), strings.Join(want, ", "))
	}
	if msg := status.Convert(err).Message(); !strings.HasPrefix(msg, "amount.minor_units: must be greater than zero; ") {
		t.Errorf("message %q", msg)
	}
}

// TestInterceptors: the unary interceptor stops an invalid request before the handler and
// passes a valid one; a request that is not a protobuf message is refused, not waved
// through; the stream interceptor checks what the handler receives.
func TestInterceptors(t *testing.T) {
	v := newValidator(t)
	ctx := context.Background()
	ran := 0
	handler := func(context.Context, any) (any, error) { ran++; return "ok", nil }
	unary := v.UnaryServerInterceptor()
	if _, err := unary(ctx, &accountsv1.GetAccountRequest{Id: "x"}, &grpc.UnaryServerInfo{}, handler); status.Code(err) != codes.InvalidArgument || ran != 0 {
		t.Fatalf("invalid request: %v, handler ran %d times", err, ran)
	}
	if _, err := unary(ctx, &accountsv1.GetAccountRequest{Id: accountA}, &grpc.UnaryServerInfo{}, handler); err != nil || ran != 1 {
		t.Fatalf("valid request: %v, handler ran %d times", err, ran)
	}
	if _, err := unary(ctx, "not a message", &grpc.UnaryServerInfo{}, handler); status.Code(err) != codes.Internal || ran != 1 {
		t.Fatalf("a request that is not a message: %v, handler ran %d times", err, ran)
	}

	stream := v.StreamServerInterceptor()
	for _, tt := range []struct {
		after int64
		code  codes.Code
	}{{after: 3, code: codes.OK}, {after: -1, code: codes.InvalidArgument}} {
		ss := &fakeStream{ctx: ctx, msg: &accountsv1.WatchLedgerRequest{AfterSequence: tt.after}}
		err := stream(nil, ss, &grpc.StreamServerInfo{}, func(_ any, s grpc.ServerStream) error {
			return s.RecvMsg(new(accountsv1.WatchLedgerRequest))
		})
		if status.Code(err) != tt.code {
			t.Errorf("stream with after_sequence %d: %v, want %s", tt.after, err, tt.code)
		}
	}
}

// fakeStream hands out one message.
type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
	msg proto.Message
}

func (s *fakeStream) Context() context.Context { return s.ctx }
func (s *fakeStream) RecvMsg(m any) error {
	proto.Merge(m.(proto.Message), s.msg)
	return nil
}
