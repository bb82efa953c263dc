package validation_test

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	identityv1 "mtlsbank/gen/bank/identity/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	typev1 "mtlsbank/gen/bank/type/v1"
	"mtlsbank/internal/validation/validationtest"
)

// requests are an empty message of every request type of the bank's RPCs.
func requests() []proto.Message {
	return []proto.Message{
		&identityv1.WhoAmIRequest{},
		&accountsv1.OpenAccountRequest{}, &accountsv1.GetAccountRequest{}, &accountsv1.ListAccountsRequest{},
		&accountsv1.DepositRequest{}, &accountsv1.WithdrawRequest{}, &accountsv1.TransferRequest{},
		&accountsv1.WatchLedgerRequest{},
		&paymentsv1.CreatePaymentRequest{}, &paymentsv1.GetPaymentRequest{}, &paymentsv1.ListPaymentsRequest{},
	}
}

// checkInvariants fails tb unless err is nil or a well-formed InvalidArgument refusal.
func checkInvariants(tb testing.TB, msg proto.Message, err error) {
	tb.Helper()
	if err == nil {
		return
	}
	if status.Code(err) != codes.InvalidArgument {
		tb.Fatalf("%T %v: %v, want nil or InvalidArgument", msg, msg, err)
	}
	refused(tb, err)
}

// nasty and nastyInts are the field values of TestGarbageFields. The strings have broken
// validators: empty, long, invalid UTF-8 (which proto3 would refuse on the wire but a Go
// caller can build), control and format characters, look-alikes of valid ids, and near
// misses of every rule.
var nasty = []string{
	"", " ", "\x00", "\n", "\u0085", "\u200b", "\ufeff", "\xff\xfe", "é", "🏦", strings.Repeat("a", 300),
	strings.Repeat("é", 129), strings.Repeat("\U0001F3E6", 70), accountA, accountB, accountA + "\n", "acc_" + strings.Repeat("z", 26),
	paymentA, strings.ToLower(paymentA), "EUR", "eur", "XXX", "EU", "spiffe://bank.local/customer/alice",
	"spiffe://bank.local/", "spiffe://BANK.local/x", "spiffe://bank.local/a/./b", "k", strings.Repeat("k", 129),
	"YTEuYWNj", "YTE=", "../../etc/passwd", "' OR 1=1 --", "%s%n", "${jndi:ldap://x}",
}

var nastyInts = []int64{0, 1, -1, math.MaxInt64, math.MinInt64, math.MaxInt32, math.MinInt32, 1_000_000_000_000_000_000, 1_000_000_000_000_000_001}

// TestGarbageFields validates requests of every type with random nasty field values,
// from a fixed seed: nothing panics, and each answer is nil or a well-formed refusal.
func TestGarbageFields(t *testing.T) {
	v := newValidator(t)
	rng := rand.New(rand.NewPCG(15, 5))
	refusedCount, admitted := 0, 0
	for range 300 {
		for _, empty := range requests() {
			msg := empty.ProtoReflect().New()
			validationtest.Fill(rng, msg, nasty, nastyInts)
			err := v.Check(context.Background(), msg.Interface())
			checkInvariants(t, msg.Interface(), err)
			if err != nil {
				refusedCount++
			} else {
				admitted++
			}
		}
	}
	// The pools hold valid values too: some messages must pass, most must not.
	if refusedCount == 0 || admitted == 0 {
		t.Fatalf("%d refused, %d admitted: the generator does not reach both sides", refusedCount, admitted)
	}
}

// FuzzCheck decodes arbitrary bytes as each request type and validates what decodes:
// nothing panics, and each answer is nil or a well-formed refusal. `go test` runs the
// seeds; `go test -fuzz FuzzCheck ./internal/validation` searches further.
func FuzzCheck(f *testing.F) {
	for _, m := range []proto.Message{
		&paymentsv1.CreatePaymentRequest{FromAccountId: accountA, ToAccountId: accountB, Amount: &typev1.Money{CurrencyCode: "EUR", MinorUnits: 1}, IdempotencyKey: "k", Memo: "m"},
		&accountsv1.TransferRequest{FromAccountId: accountA, ToAccountId: accountA, Amount: &typev1.Money{MinorUnits: -1}, Void: true},
		&accountsv1.OpenAccountRequest{Owner: "spiffe://bank.local/customer/alice", Currency: "EUR", DisplayName: "a\u0085"},
		&accountsv1.ListAccountsRequest{Owner: "x", PageSize: -1, PageToken: "=="},
		&accountsv1.WatchLedgerRequest{AfterSequence: -1},
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x0a, 0x02, 0xff, 0xfe})
	f.Add([]byte{0x1a, 0x03, 0x08, 0x80, 0x01})
	v := newValidator(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, empty := range requests() {
			msg := empty.ProtoReflect().New().Interface()
			if proto.Unmarshal(data, msg) != nil {
				continue // the gRPC codec refuses it before any interceptor
			}
			checkInvariants(t, msg, v.Check(context.Background(), msg))
		}
	})
}
