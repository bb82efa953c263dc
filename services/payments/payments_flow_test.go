package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	identityv1 "mtlsbank/gen/bank/identity/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	typev1 "mtlsbank/gen/bank/type/v1"
	"mtlsbank/internal/authz"
	"mtlsbank/internal/payments"
)

func TestRoleMatrix(t *testing.T) {
	b := newBank(t)
	ctx := context.Background()
	aliceAcc := b.open(t, aliceID, 1000_00)
	bobAcc := b.open(t, bobID, 0)
	alicePays := b.payments(t, aliceID)
	seed, err := alicePays.CreatePayment(ctx, &paymentsv1.CreatePaymentRequest{
		FromAccountId: aliceAcc, ToAccountId: bobAcc, Amount: eur(1_00), IdempotencyKey: "seed",
	})
	if err != nil {
		t.Fatalf("seed payment: %v", err)
	}
	aliceSeed := seed.GetPayment().GetId()

	type call func(ctx context.Context, c paymentsv1.PaymentsServiceClient, cc identityv1.IdentityServiceClient, n int) error
	create := func(from string) call {
		return func(ctx context.Context, c paymentsv1.PaymentsServiceClient, _ identityv1.IdentityServiceClient, n int) error {
			_, err := c.CreatePayment(ctx, &paymentsv1.CreatePaymentRequest{
				FromAccountId: from, ToAccountId: bobAcc, Amount: eur(1_00), IdempotencyKey: fmt.Sprintf("matrix-%d", n),
			})
			return err
		}
	}
	get := func(id string) call {
		return func(ctx context.Context, c paymentsv1.PaymentsServiceClient, _ identityv1.IdentityServiceClient, _ int) error {
			_, err := c.GetPayment(ctx, &paymentsv1.GetPaymentRequest{Id: id})
			return err
		}
	}
	list := func(ctx context.Context, c paymentsv1.PaymentsServiceClient, _ identityv1.IdentityServiceClient, _ int) error {
		_, err := c.ListPayments(ctx, &paymentsv1.ListPaymentsRequest{})
		return err
	}
	whoAmI := func(ctx context.Context, _ paymentsv1.PaymentsServiceClient, c identityv1.IdentityServiceClient, _ int) error {
		_, err := c.WhoAmI(ctx, &identityv1.WhoAmIRequest{})
		return err
	}
	tests := []struct {
		name   string
		caller string
		call   call
		want   codes.Code
	}{
		{"teller creates from any account", tellerID, create(aliceAcc), codes.OK},
		{"teller reads any payment", tellerID, get(aliceSeed), codes.OK},
		{"teller lists", tellerID, list, codes.OK},
		{"customer creates from own account", aliceID, create(aliceAcc), codes.OK},
		{"customer reads own payment", aliceID, get(aliceSeed), codes.OK},
		{"customer lists own", aliceID, list, codes.OK},
		{"customer pays from another's account", bobID, create(aliceAcc), codes.PermissionDenied},
		{"customer reads another's payment", bobID, get(aliceSeed), codes.PermissionDenied},
		{"customer reads a payment that does not exist", bobID, get("pay_DOESNOTEXISTAAAAAAAAAAAAAA"), codes.PermissionDenied},
		{"teller reads a payment that does not exist", tellerID, get("pay_DOESNOTEXISTAAAAAAAAAAAAAA"), codes.NotFound},
		{"auditor reads any payment", auditorID, get(aliceSeed), codes.OK},
		{"auditor lists", auditorID, list, codes.OK},
		{"auditor may not create", auditorID, create(aliceAcc), codes.PermissionDenied},
		{"unmapped identity may not create", internID, create(aliceAcc), codes.PermissionDenied},
		{"unmapped identity may not read", internID, get(aliceSeed), codes.PermissionDenied},
		{"unmapped identity may not list", internID, list, codes.PermissionDenied},
		{"unmapped identity asks who it is", internID, whoAmI, codes.OK},
		{"the accounts service may not create", accountsID, create(aliceAcc), codes.PermissionDenied},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dial := func(ctx context.Context, _ string) (net.Conn, error) { return b.payLis.DialContext(ctx) }
			cc := b.client(t, tt.caller, dial, paymentsID)
			err := tt.call(ctx, paymentsv1.NewPaymentsServiceClient(cc), identityv1.NewIdentityServiceClient(cc), i)
			if got := status.Code(err); got != tt.want {
				t.Fatalf("%s: code %s (%v), want %s", tt.caller, got, err, tt.want)
			}
		})
	}
}

// TestCustomersCannotBypassPayments: the accounts service refuses a customer's direct
// Transfer, and the delegation metadata from anyone but the payments service.
func TestCustomersCannotBypassPayments(t *testing.T) {
	b := newBank(t)
	aliceAcc := b.open(t, aliceID, 100_00)
	bobAcc := b.open(t, bobID, 0)
	ids := []string{aliceAcc, bobAcc}
	transfer := &accountsv1.TransferRequest{FromAccountId: aliceAcc, ToAccountId: bobAcc, Amount: eur(10_00), IdempotencyKey: "direct"}
	tests := []struct {
		name   string
		caller string
		md     metadata.MD
		call   func(ctx context.Context, c accountsv1.AccountsServiceClient) error
	}{
		{
			name: "customer calls Transfer directly", caller: aliceID,
			call: func(ctx context.Context, c accountsv1.AccountsServiceClient) error {
				_, err := c.Transfer(ctx, transfer)
				return err
			},
		},
		{
			name: "customer sends the delegation metadata to Transfer", caller: aliceID,
			md: metadata.Pairs(authz.OnBehalfOfKey, aliceID),
			call: func(ctx context.Context, c accountsv1.AccountsServiceClient) error {
				_, err := c.Transfer(ctx, transfer)
				return err
			},
		},
		{
			name: "customer sends the delegation metadata naming a teller", caller: bobID,
			md: metadata.Pairs(authz.OnBehalfOfKey, tellerID),
			call: func(ctx context.Context, c accountsv1.AccountsServiceClient) error {
				_, err := c.GetAccount(ctx, &accountsv1.GetAccountRequest{Id: aliceAcc})
				return err
			},
		},
		{
			name: "teller sends the delegation metadata", caller: tellerID,
			md: metadata.Pairs(authz.OnBehalfOfKey, aliceID),
			call: func(ctx context.Context, c accountsv1.AccountsServiceClient) error {
				_, err := c.Transfer(ctx, transfer)
				return err
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := metadata.NewOutgoingContext(context.Background(), tt.md)
			err := tt.call(ctx, b.accountsClient(t, tt.caller))
			if got := status.Code(err); got != codes.PermissionDenied {
				t.Fatalf("code %s (%v), want PermissionDenied", got, err)
			}
			b.wantBalances(t, ids, 100_00, 0)
		})
	}
}

func TestCreatePayment(t *testing.T) {
	b := newBank(t)
	ctx := context.Background()
	aliceAcc := b.open(t, aliceID, 100_00)
	bobAcc := b.open(t, bobID, 0)
	aliceUSD := b.openIn(t, aliceID, "USD", 100_00)
	ids := []string{aliceAcc, bobAcc, aliceUSD}
	alice := b.payments(t, aliceID)
	bob := b.payments(t, bobID)
	teller := b.payments(t, tellerID)

	pay := func(from, to string, minor int64, key string) *paymentsv1.CreatePaymentRequest {
		return &paymentsv1.CreatePaymentRequest{FromAccountId: from, ToAccountId: to, Amount: eur(minor), IdempotencyKey: key, Memo: "rent"}
	}

	t.Run("pays once, replays the same payment", func(t *testing.T) {
		first, err := alice.CreatePayment(ctx, pay(aliceAcc, bobAcc, 25_00, "rent-1"))
		if err != nil {
			t.Fatal(err)
		}
		p := first.GetPayment()
		if first.GetReplayed() || p.GetStatus() != paymentsv1.PaymentStatus_PAYMENT_STATUS_COMPLETED ||
			p.GetTransactionId() == "" || p.GetCreatedBy() != aliceID || !strings.HasPrefix(p.GetId(), "pay_") {
			t.Fatalf("first answer %v (replayed %v)", p, first.GetReplayed())
		}
		b.wantBalances(t, ids, 75_00, 25_00, 100_00)
		again, err := alice.CreatePayment(ctx, pay(aliceAcc, bobAcc, 25_00, "rent-1"))
		if err != nil {
			t.Fatal(err)
		}
		if !again.GetReplayed() || again.GetPayment().GetId() != p.GetId() || again.GetPayment().GetTransactionId() != p.GetTransactionId() {
			t.Fatalf("replay answered %v (replayed %v), want payment %s", again.GetPayment(), again.GetReplayed(), p.GetId())
		}
		b.wantBalances(t, ids, 75_00, 25_00, 100_00)

		// Keys are the caller's: the teller's "rent-1" is another payment.
		other, err := teller.CreatePayment(ctx, pay(aliceAcc, bobAcc, 25_00, "rent-1"))
		if err != nil || other.GetReplayed() || other.GetPayment().GetId() == p.GetId() {
			t.Fatalf("teller with the same key: %v, %v; want a new payment", other, err)
		}
		b.wantBalances(t, ids, 50_00, 50_00, 100_00)
	})

	t.Run("a long memo fits the ledger's reference", func(t *testing.T) {
		req := pay(aliceAcc, bobAcc, 1_00, "long-memo")
		req.Memo = strings.Repeat("é", 200) // 200 characters, 400 bytes
		resp, err := alice.CreatePayment(ctx, req)
		if err != nil || resp.GetPayment().GetMemo() != req.Memo {
			t.Fatalf("CreatePayment: %v, %v", resp, err)
		}
		b.wantBalances(t, ids, 49_00, 51_00, 100_00)
	})

	tests := []struct {
		name       string
		client     paymentsv1.PaymentsServiceClient
		req        *paymentsv1.CreatePaymentRequest
		want       codes.Code
		wantStatus paymentsv1.PaymentStatus // of the recorded payment; UNSPECIFIED: none recorded
	}{
		{"same key, different order", alice, pay(aliceAcc, bobAcc, 26_00, "rent-1"), codes.FailedPrecondition, 0},
		{"overdraft", alice, pay(aliceAcc, bobAcc, 500_00, "big"), codes.FailedPrecondition, paymentsv1.PaymentStatus_PAYMENT_STATUS_FAILED},
		{"over the customer limit", alice, pay(aliceAcc, bobAcc, 1000_01, "huge"), codes.PermissionDenied, 0},
		{"customer currency without a limit", alice, &paymentsv1.CreatePaymentRequest{FromAccountId: aliceAcc, ToAccountId: bobAcc, Amount: &typev1.Money{CurrencyCode: "GBP", MinorUnits: 1}, IdempotencyKey: "gbp"}, codes.PermissionDenied, 0},
		{"from another's account", bob, pay(aliceAcc, bobAcc, 1_00, "steal"), codes.PermissionDenied, paymentsv1.PaymentStatus_PAYMENT_STATUS_FAILED},
		{"currency of neither account", teller, pay(aliceUSD, bobAcc, 1_00, "usd"), codes.InvalidArgument, paymentsv1.PaymentStatus_PAYMENT_STATUS_FAILED},
		{"unknown account", teller, pay(aliceAcc, "acc_0000000000000000000000000z", 1_00, "ghost"), codes.NotFound, paymentsv1.PaymentStatus_PAYMENT_STATUS_FAILED},
		{"self-payment", alice, pay(aliceAcc, aliceAcc, 1_00, "self"), codes.InvalidArgument, 0},
		{"malformed account id", alice, pay("nope", bobAcc, 1_00, "malformed"), codes.InvalidArgument, 0},
		{"zero amount", alice, pay(aliceAcc, bobAcc, 0, "zero"), codes.InvalidArgument, 0},
		{"negative amount", alice, pay(aliceAcc, bobAcc, -1, "negative"), codes.InvalidArgument, 0},
		{"no amount", alice, &paymentsv1.CreatePaymentRequest{FromAccountId: aliceAcc, ToAccountId: bobAcc, IdempotencyKey: "noamount"}, codes.InvalidArgument, 0},
		{"unknown currency", alice, &paymentsv1.CreatePaymentRequest{FromAccountId: aliceAcc, ToAccountId: bobAcc, Amount: &typev1.Money{CurrencyCode: "XXX", MinorUnits: 1}, IdempotencyKey: "xxx"}, codes.InvalidArgument, 0},
		{"no key", alice, pay(aliceAcc, bobAcc, 1_00, ""), codes.InvalidArgument, 0},
		{"bad key", alice, pay(aliceAcc, bobAcc, 1_00, "a key"), codes.InvalidArgument, 0},
		{"memo with a control character", alice, &paymentsv1.CreatePaymentRequest{FromAccountId: aliceAcc, ToAccountId: bobAcc, Amount: eur(1), IdempotencyKey: "memo-ctl", Memo: "rent\x1b[2J"}, codes.InvalidArgument, 0},
		{"memo too long", alice, &paymentsv1.CreatePaymentRequest{FromAccountId: aliceAcc, ToAccountId: bobAcc, Amount: eur(1), IdempotencyKey: "memo", Memo: strings.Repeat("é", 201)}, codes.InvalidArgument, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := b.balances(t, ids...)
			_, err := tt.client.CreatePayment(ctx, tt.req)
			if got := status.Code(err); got != tt.want {
				t.Fatalf("code %s (%v), want %s", got, err, tt.want)
			}
			b.wantBalances(t, ids, before...)
			recorded := paymentWithKey(t, b, tt.req.GetIdempotencyKey(), tt.req.GetAmount().GetMinorUnits())
			if tt.wantStatus == 0 {
				if recorded != nil && recorded.GetAmount().GetMinorUnits() == tt.req.GetAmount().GetMinorUnits() {
					t.Fatalf("refused request recorded payment %v", recorded)
				}
				return
			}
			if recorded == nil || recorded.GetStatus() != tt.wantStatus || recorded.GetFailureReason() == "" {
				t.Fatalf("recorded %v, want a %s payment with a reason", recorded, tt.wantStatus)
			}
			// A failed payment stays failed under its key.
			if _, err := tt.client.CreatePayment(ctx, tt.req); status.Code(err) != tt.want {
				t.Fatalf("replay: %v, want %s again", err, tt.want)
			}
			b.wantBalances(t, ids, before...)
		})
	}
}

// paymentWithKey returns the payment recorded under key with that amount, as the teller
// sees it, or nil.
func paymentWithKey(tb testing.TB, b *bank, key string, minor int64) *paymentsv1.Payment {
	tb.Helper()
	all, err := allPayments(context.Background(), b.payments(tb, tellerID))
	if err != nil {
		tb.Fatal(err)
	}
	for _, p := range all {
		if p.GetIdempotencyKey() == key && p.GetAmount().GetMinorUnits() == minor {
			return p
		}
	}
	return nil
}

func TestListAndGetPayments(t *testing.T) {
	b := newBank(t)
	ctx := context.Background()
	aliceAcc := b.open(t, aliceID, 100_00)
	bobAcc := b.open(t, bobID, 100_00)
	alice, bob := b.payments(t, aliceID), b.payments(t, bobID)
	var aliceIDs, allIDs []string
	for i := range 3 {
		for _, c := range []struct {
			client   paymentsv1.PaymentsServiceClient
			from, to string
			mine     bool
		}{{alice, aliceAcc, bobAcc, true}, {bob, bobAcc, aliceAcc, false}} {
			resp, err := c.client.CreatePayment(ctx, &paymentsv1.CreatePaymentRequest{
				FromAccountId: c.from, ToAccountId: c.to, Amount: eur(1_00), IdempotencyKey: fmt.Sprintf("k%d", i),
			})
			if err != nil {
				t.Fatal(err)
			}
			allIDs = append(allIDs, resp.GetPayment().GetId())
			if c.mine {
				aliceIDs = append(aliceIDs, resp.GetPayment().GetId())
			}
		}
	}
	tests := []struct {
		name     string
		caller   string
		pageSize int32
		want     []string
	}{
		{"teller sees all in creation order", tellerID, 0, allIDs},
		{"auditor pages through all", auditorID, 1, allIDs},
		{"customer sees only its own", aliceID, 2, aliceIDs},
		{"page size above the maximum is capped", tellerID, 100000, allIDs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := b.payments(t, tt.caller)
			var got []string
			token := ""
			for pages := 0; ; pages++ {
				resp, err := c.ListPayments(ctx, &paymentsv1.ListPaymentsRequest{PageSize: tt.pageSize, PageToken: token})
				if err != nil {
					t.Fatal(err)
				}
				if tt.pageSize > 0 && int32(len(resp.GetPayments())) > tt.pageSize {
					t.Fatalf("page of %d, asked for %d", len(resp.GetPayments()), tt.pageSize)
				}
				for _, p := range resp.GetPayments() {
					got = append(got, p.GetId())
				}
				if token = resp.GetNextPageToken(); token == "" {
					break
				}
				if pages > len(allIDs) {
					t.Fatal("paging does not end")
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("listed %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("malformed page token", func(t *testing.T) {
		_, err := alice.ListPayments(ctx, &paymentsv1.ListPaymentsRequest{PageToken: "garbage"})
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("%v, want InvalidArgument", err)
		}
	})
	t.Run("negative page size", func(t *testing.T) {
		_, err := alice.ListPayments(ctx, &paymentsv1.ListPaymentsRequest{PageSize: -1})
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("%v, want InvalidArgument", err)
		}
	})
	t.Run("customer gets its own payment with every field", func(t *testing.T) {
		resp, err := alice.GetPayment(ctx, &paymentsv1.GetPaymentRequest{Id: aliceIDs[0]})
		if err != nil {
			t.Fatal(err)
		}
		p := resp.GetPayment()
		if p.GetFromAccountId() != aliceAcc || p.GetToAccountId() != bobAcc || p.GetAmount().GetMinorUnits() != 1_00 ||
			p.GetIdempotencyKey() != "k0" || p.GetCreateTime() == nil || p.GetUpdateTime() == nil {
			t.Fatalf("GetPayment = %v", p)
		}
	})
	t.Run("missing id", func(t *testing.T) {
		_, err := alice.GetPayment(ctx, &paymentsv1.GetPaymentRequest{})
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("%v, want InvalidArgument", err)
		}
	})
}

// TestAccountsUnreachable: with accounts down a payment stays PENDING and the caller is
// told Unavailable; once accounts is back, recovery completes it exactly once.
func TestAccountsUnreachable(t *testing.T) {
	b := newBank(t)
	ctx := context.Background()
	aliceAcc := b.open(t, aliceID, 100_00)
	bobAcc := b.open(t, bobID, 0)
	ids := []string{aliceAcc, bobAcc}
	alice := b.payments(t, aliceID)
	req := &paymentsv1.CreatePaymentRequest{FromAccountId: aliceAcc, ToAccountId: bobAcc, Amount: eur(25_00), IdempotencyKey: "while-down"}

	eventually(t, "payments ready while accounts is up", func() error {
		if code, body := b.readyz(t); code != http.StatusOK {
			return fmt.Errorf("/readyz = %d %q", code, body)
		}
		return nil
	})
	b.accounts.stop(t)
	if code, body := b.readyz(t); code != http.StatusServiceUnavailable || !strings.Contains(body, "accounts") {
		t.Errorf("/readyz with accounts down = %d %q, want 503 naming accounts", code, body)
	}
	_, err := alice.CreatePayment(ctx, req)
	st := status.Convert(err)
	if st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "accounts service unreachable") {
		t.Fatalf("CreatePayment with accounts down: %v, want Unavailable naming accounts", err)
	}
	var pending *paymentsv1.Payment
	for _, d := range st.Details() {
		if p, ok := d.(*paymentsv1.Payment); ok {
			pending = p
		}
	}
	if pending.GetStatus() != paymentsv1.PaymentStatus_PAYMENT_STATUS_PENDING || !strings.Contains(st.Message(), pending.GetId()) {
		t.Fatalf("error details %v, want the PENDING payment named in the message", pending)
	}
	// A retry while accounts is still down finds the same payment, still PENDING.
	_, err = alice.CreatePayment(ctx, req)
	if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), pending.GetId()) {
		t.Fatalf("retry with accounts down: %v", err)
	}
	got, err := alice.GetPayment(ctx, &paymentsv1.GetPaymentRequest{Id: pending.GetId()})
	if err != nil || got.GetPayment().GetStatus() != paymentsv1.PaymentStatus_PAYMENT_STATUS_PENDING {
		t.Fatalf("GetPayment while down: %v, %v; want PENDING", got, err)
	}
	b.wantBalances(t, ids, 100_00, 0)

	b.accounts.start(t)
	eventually(t, "recovery completes the payment", func() error {
		resp, err := alice.GetPayment(ctx, &paymentsv1.GetPaymentRequest{Id: pending.GetId()})
		if err != nil {
			return err
		}
		if s := resp.GetPayment().GetStatus(); s != paymentsv1.PaymentStatus_PAYMENT_STATUS_COMPLETED {
			return fmt.Errorf("payment is %s", s)
		}
		return nil
	})
	b.wantBalances(t, ids, 75_00, 25_00)
	eventually(t, "payments ready again once accounts is back", func() error {
		if code, body := b.readyz(t); code != http.StatusOK {
			return fmt.Errorf("/readyz = %d %q", code, body)
		}
		return nil
	})

	// Another pass and a retry by the payer change nothing.
	if n, err := b.app.payments.Recover(ctx); err != nil || n != 0 {
		t.Fatalf("Recover after completion finished %d, %v; want 0, nil", n, err)
	}
	resp, err := alice.CreatePayment(ctx, req)
	if err != nil || !resp.GetReplayed() || resp.GetPayment().GetId() != pending.GetId() {
		t.Fatalf("retry after recovery: %v, %v", resp, err)
	}
	b.wantBalances(t, ids, 75_00, 25_00)
}

// TestConcurrentDrivers: payer retries and recovery passes race to finish the same
// PENDING payments; each moves money exactly once.
func TestConcurrentDrivers(t *testing.T) {
	const pending = 5
	b := newBank(t)
	ctx := context.Background()
	aliceAcc := b.open(t, aliceID, 100_00)
	bobAcc := b.open(t, bobID, 0)
	alice := b.payments(t, aliceID)
	reqs := make([]*paymentsv1.CreatePaymentRequest, pending)
	b.accounts.stop(t)
	for i := range reqs {
		reqs[i] = &paymentsv1.CreatePaymentRequest{FromAccountId: aliceAcc, ToAccountId: bobAcc, Amount: eur(int64(i+1) * 1_00), IdempotencyKey: fmt.Sprintf("race-%d", i)}
		if _, err := alice.CreatePayment(ctx, reqs[i]); status.Code(err) != codes.Unavailable {
			t.Fatalf("payment %d with accounts down: %v, want Unavailable", i, err)
		}
	}
	b.wantBalances(t, []string{aliceAcc, bobAcc}, 100_00, 0)
	b.accounts.start(t)

	var wg sync.WaitGroup
	errs := make(chan error, 4*pending+2)
	for range 4 {
		for _, req := range reqs {
			wg.Go(func() {
				// Unavailable is fine here (accounts may not be reconnected yet); any
				// other failure is not.
				if _, err := alice.CreatePayment(ctx, req); err != nil && status.Code(err) != codes.Unavailable {
					errs <- err
				}
			})
		}
	}
	for range 2 {
		wg.Go(func() {
			// A pass stops at the first transfer whose outcome stays unknown (accounts
			// may not be reconnected yet); any other failure is a bug.
			if _, err := b.app.payments.Recover(ctx); err != nil && !errors.Is(err, payments.ErrOutcomeUnknown) {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var total int64
	for i, req := range reqs {
		eventually(t, fmt.Sprintf("payment %d completed", i), func() error {
			resp, err := alice.CreatePayment(ctx, req)
			if err != nil {
				return err
			}
			if !resp.GetReplayed() {
				return fmt.Errorf("payment %d was created again", i)
			}
			return nil
		})
		total += req.GetAmount().GetMinorUnits()
	}
	b.wantBalances(t, []string{aliceAcc, bobAcc}, 100_00-total, total)
}

// TestAccountsIdentityIsChecked: payments talks only to a server presenting the
// accounts SPIFFE ID, not to any holder of a bank certificate.
func TestAccountsIdentityIsChecked(t *testing.T) {
	// The real accounts server presents spiffe://bank.local/service/accounts; this
	// payments service expects another identity, as if an impostor answered.
	b := newBank(t, "--accounts-spiffe-id", "spiffe://bank.local/service/ledger")
	ctx := context.Background()
	aliceAcc := b.open(t, aliceID, 100_00)
	bobAcc := b.open(t, bobID, 0)
	_, err := b.payments(t, aliceID).CreatePayment(ctx, &paymentsv1.CreatePaymentRequest{
		FromAccountId: aliceAcc, ToAccountId: bobAcc, Amount: eur(1_00), IdempotencyKey: "impostor",
	})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("CreatePayment: %v, want Unavailable", err)
	}
	if !strings.Contains(b.logs.String(), "unexpected server SPIFFE ID") {
		t.Errorf("the log does not say why accounts was refused")
	}
	b.wantBalances(t, []string{aliceAcc, bobAcc}, 100_00, 0)
}
