package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	"mtlsbank/internal/payments"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/tlsconfig"
)

// TestCustomerDailyLimit: through the real services (mutual TLS, authorization, the
// accounts service and its ledger on SQLite), alice sends 20 payments of 100.00 EUR
// at once against --customer-daily-limit EUR:500.00. Exactly 500.00 EUR leaves her
// account; every other payment is refused with RESOURCE_EXHAUSTED, the limit and
// what remains, as message and ErrorInfo; the teller is not bound by it.
func TestCustomerDailyLimit(t *testing.T) {
	b := newBank(t, "--customer-daily-limit", "EUR:500.00,USD:500.00")
	ctx := context.Background()
	aliceAcc := b.open(t, aliceID, 10_000_00)
	bobAcc := b.open(t, bobID, 0)
	ids := []string{aliceAcc, bobAcc}
	alice := b.payments(t, aliceID)

	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = alice.CreatePayment(ctx, &paymentsv1.CreatePaymentRequest{
				FromAccountId: aliceAcc, ToAccountId: bobAcc, Amount: eur(100_00), IdempotencyKey: fmt.Sprintf("burst-%d", i),
			})
		})
	}
	close(start)
	wg.Wait()
	var ok, refused int
	for i, err := range errs {
		switch status.Code(err) {
		case codes.OK:
			ok++
		case codes.ResourceExhausted:
			refused++
			st := status.Convert(err)
			if !strings.Contains(st.Message(), "customer limit of 500.00 EUR per 24h exceeded: 0.00 EUR of it remains") {
				t.Errorf("payment %d: message %q does not say which limit and what remains", i, st.Message())
			}
			var info *errdetails.ErrorInfo
			for _, d := range st.Details() {
				if ei, ok := d.(*errdetails.ErrorInfo); ok {
					info = ei
				}
			}
			if info.GetReason() != payments.ReasonDailyLimit || info.GetMetadata()["remaining"] != "0.00" || info.GetMetadata()["max"] != "500.00" {
				t.Errorf("payment %d: ErrorInfo %v", i, info)
			}
		default:
			t.Errorf("payment %d: %v", i, err)
		}
	}
	if ok != 5 || refused != n-5 {
		t.Fatalf("%d completed, %d refused; want 5 and %d", ok, refused, n-5)
	}
	b.wantBalances(t, ids, 10_000_00-500_00, 500_00)

	// The teller pays from alice's account past her limit: the limit is the customer's.
	if _, err := b.payments(t, tellerID).CreatePayment(ctx, &paymentsv1.CreatePaymentRequest{
		FromAccountId: aliceAcc, ToAccountId: bobAcc, Amount: eur(600_00), IdempotencyKey: "teller-1",
	}); err != nil {
		t.Fatalf("teller: %v", err)
	}
	b.wantBalances(t, ids, 10_000_00-1100_00, 1100_00)
}

// TestRevokedCreatorPendingOrder: alice's order waits PENDING while accounts is
// down; her certificate is revoked in the CRL file the service reloads; once a
// recovery pass that began after the revocation has run (so no attempt made before
// it is still waiting for accounts), accounts comes back, the order's transfer key is
// voided and the order FAILED instead of carried out, and nothing has moved.
func TestRevokedCreatorPendingOrder(t *testing.T) {
	b := newBank(t, "--reload-interval", "50ms")
	ctx := context.Background()
	aliceAcc := b.open(t, aliceID, 100_00)
	bobAcc := b.open(t, bobID, 0)
	ids := []string{aliceAcc, bobAcc}
	aliceLeaf := b.pki.Client(t, aliceID)
	alice := paymentsv1.NewPaymentsServiceClient(b.clientWith(t, aliceLeaf))
	teller := b.payments(t, tellerID)

	b.accounts.stop(t)
	_, err := alice.CreatePayment(ctx, &paymentsv1.CreatePaymentRequest{
		FromAccountId: aliceAcc, ToAccountId: bobAcc, Amount: eur(25_00), IdempotencyKey: "before-revocation",
	})
	var pending *paymentsv1.Payment
	for _, d := range status.Convert(err).Details() {
		if p, ok := d.(*paymentsv1.Payment); ok {
			pending = p
		}
	}
	if status.Code(err) != codes.Unavailable || pending.GetStatus() != paymentsv1.PaymentStatus_PAYMENT_STATUS_PENDING {
		t.Fatalf("CreatePayment with accounts down: %v, want Unavailable with a PENDING payment", err)
	}

	b.pki.WriteCRL(t, b.pki.CRL(t, aliceLeaf.Cert))
	eventually(t, "the revocation reaches the service", func() error {
		_, err := alice.GetPayment(ctx, &paymentsv1.GetPaymentRequest{Id: pending.GetId()})
		if status.Code(err) == codes.OK {
			return errors.New("alice's revoked certificate still accepted")
		}
		return nil
	})
	// Recovery passes run one after the other: the second pass to stop after this
	// point began after the revocation took effect, so every attempt still in flight
	// is a void.
	const stopped = "payment recovery pass stopped"
	before := strings.Count(b.logs.String(), stopped)
	eventually(t, "two recovery passes after the revocation", func() error {
		if n := strings.Count(b.logs.String(), stopped); n < before+2 {
			return fmt.Errorf("%d passes stopped since the revocation", n-before)
		}
		return nil
	})
	b.accounts.start(t)
	eventually(t, "recovery fails the order", func() error {
		resp, err := teller.GetPayment(ctx, &paymentsv1.GetPaymentRequest{Id: pending.GetId()})
		if err != nil {
			return err
		}
		if p := resp.GetPayment(); p.GetStatus() != paymentsv1.PaymentStatus_PAYMENT_STATUS_FAILED {
			return fmt.Errorf("payment is %s", p.GetStatus())
		}
		return nil
	})
	resp, err := teller.GetPayment(ctx, &paymentsv1.GetPaymentRequest{Id: pending.GetId()})
	if err != nil || resp.GetPayment().GetFailureReason() != payments.ReasonCreatorRevoked {
		t.Fatalf("failed payment %v, %v; want reason %q", resp.GetPayment(), err, payments.ReasonCreatorRevoked)
	}
	b.wantBalances(t, ids, 100_00, 0)
}

// clientWith connects to payments with the given certificate.
func (b *bank) clientWith(tb testing.TB, leaf *pki.Leaf) *grpc.ClientConn {
	tb.Helper()
	src, err := tlsconfig.NewSource(bankTD(), leaf.TLSCertificate(), b.pki.Bundle)
	if err != nil {
		tb.Fatal(err)
	}
	creds := tlsconfig.ClientCredentials(src, "bufnet", tlsconfig.WithServerID(spiffeid.RequireFromString(paymentsID)))
	dial := func(ctx context.Context, _ string) (net.Conn, error) { return b.payLis.DialContext(ctx) }
	cc, err := grpc.NewClient("passthrough:///bufnet", grpc.WithTransportCredentials(creds), grpc.WithContextDialer(dial))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cc.Close() })
	return cc
}
