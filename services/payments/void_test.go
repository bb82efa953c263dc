package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	"mtlsbank/internal/payments"
	"mtlsbank/internal/pki/pkitest"
)

// The hole these tests close: an order left PENDING may already have reached
// accounts (payments crashed or timed out after sending its Transfer), or its
// Transfer may still be on its way. When its creator's certificate is revoked,
// payments must not mark it FAILED on its own say-so: it voids the transfer's key
// at accounts and records what the ledger answers.

// TestRevokedCreatorTransferAlreadyMoved: alice's transfer reaches accounts and
// moves the money, but its answer never reaches payments, so the order stays
// PENDING through every recovery pass. Then her certificate is revoked. Recovery
// voids the key; the ledger answers with the transfer it already made, and the
// order is COMPLETED with that transaction: payment and ledger agree.
func TestRevokedCreatorTransferAlreadyMoved(t *testing.T) {
	gate := &transferGate{mode: gateLoseAnswer}
	b := newBankWith(t, bankSetup{
		accountsDial: []grpc.DialOption{grpc.WithChainUnaryInterceptor(gate.intercept)},
		revocation:   crlFileRevocation,
	})
	ctx := context.Background()
	aliceAcc := b.open(t, aliceID, 100_00)
	bobAcc := b.open(t, bobID, 0)
	ids := []string{aliceAcc, bobAcc}
	aliceLeaf := b.pki.Client(t, aliceID)
	alice := paymentsv1.NewPaymentsServiceClient(b.clientWith(t, aliceLeaf))
	teller := b.payments(t, tellerID)

	_, err := alice.CreatePayment(ctx, &paymentsv1.CreatePaymentRequest{
		FromAccountId: aliceAcc, ToAccountId: bobAcc, Amount: eur(25_00), IdempotencyKey: "answer-lost",
	})
	pending := pendingPayment(t, err)
	b.wantBalances(t, ids, 75_00, 25_00) // the money moved; payments does not know it

	// Recovery retries the transfer (a replay at accounts) and loses the answer again.
	eventually(t, "recovery retries the transfer", func() error {
		if n := gate.count(&gate.lost); n < 2 {
			return fmt.Errorf("%d answers lost", n)
		}
		return nil
	})
	if s := paymentOf(t, teller, pending.GetId()).GetStatus(); s != paymentsv1.PaymentStatus_PAYMENT_STATUS_PENDING {
		t.Fatalf("payment is %s while every answer is lost, want PENDING", s)
	}

	b.pki.WriteCRL(t, b.pki.CRL(t, aliceLeaf.Cert))
	eventually(t, "recovery settles the order of the revoked creator", func() error {
		if s := paymentOf(t, teller, pending.GetId()).GetStatus(); s == paymentsv1.PaymentStatus_PAYMENT_STATUS_PENDING {
			return errors.New("still PENDING")
		}
		return nil
	})
	got := paymentOf(t, teller, pending.GetId())
	if got.GetStatus() != paymentsv1.PaymentStatus_PAYMENT_STATUS_COMPLETED || got.GetTransactionId() == "" {
		t.Fatalf("payment %s (%q), transaction %q; want COMPLETED with the ledger's transaction: the money moved",
			got.GetStatus(), got.GetFailureReason(), got.GetTransactionId())
	}
	txn, err := b.ledger.GetTransaction(ctx, got.GetTransactionId())
	if err != nil {
		t.Fatalf("the payment's transaction is not in the ledger: %v", err)
	}
	if txn.Amount != 25_00 || txn.Principal != paymentsID || txn.OnBehalfOf != aliceID ||
		len(txn.Entries) != 2 || txn.Entries[0].AccountID.String() != aliceAcc || txn.Entries[1].AccountID.String() != bobAcc {
		t.Fatalf("ledger transaction %+v is not the payment's transfer", txn)
	}
	b.wantBalances(t, ids, 75_00, 25_00)
	if gate.count(&gate.voids) == 0 {
		t.Fatal("the order was settled without voiding its key at accounts")
	}
	if logs := b.logs.String(); !strings.Contains(logs, "money had moved before its creator's certificate was revoked") ||
		!strings.Contains(logs, pending.GetId()) {
		t.Errorf("no log of the completion despite the revocation:\n%s", logs)
	}
}

// TestRevokedCreatorDelayedOriginal: alice's transfer is stuck on its way to
// accounts, so her order stays PENDING. Her certificate is revoked while accounts is
// down: the order stays PENDING (no answer about the key, no verdict). Accounts
// comes back; recovery voids the key and fails the order. Then the original
// Transfer arrives: accounts refuses it as voided, and no money moves.
func TestRevokedCreatorDelayedOriginal(t *testing.T) {
	gate := &transferGate{mode: gateHold}
	b := newBankWith(t, bankSetup{
		accountsDial: []grpc.DialOption{grpc.WithChainUnaryInterceptor(gate.intercept)},
		revocation:   crlFileRevocation,
	})
	ctx := context.Background()
	aliceAcc := b.open(t, aliceID, 100_00)
	bobAcc := b.open(t, bobID, 0)
	ids := []string{aliceAcc, bobAcc}
	aliceLeaf := b.pki.Client(t, aliceID)
	alice := paymentsv1.NewPaymentsServiceClient(b.clientWith(t, aliceLeaf))
	teller := b.payments(t, tellerID)

	_, err := alice.CreatePayment(ctx, &paymentsv1.CreatePaymentRequest{
		FromAccountId: aliceAcc, ToAccountId: bobAcc, Amount: eur(25_00), IdempotencyKey: "stuck-on-the-way",
	})
	pending := pendingPayment(t, err)
	b.wantBalances(t, ids, 100_00, 0)

	b.accounts.stop(t)
	b.pki.WriteCRL(t, b.pki.CRL(t, aliceLeaf.Cert))
	eventually(t, "recovery tries to void the key", func() error {
		if p := paymentOf(t, teller, pending.GetId()); p.GetStatus() != paymentsv1.PaymentStatus_PAYMENT_STATUS_PENDING {
			t.Fatalf("payment is %s (%q) while accounts cannot answer: want PENDING", p.GetStatus(), p.GetFailureReason())
		}
		if n := gate.count(&gate.voidAttempts); n < 2 {
			return fmt.Errorf("%d void attempts", n)
		}
		return nil
	})
	if s := paymentOf(t, teller, pending.GetId()).GetStatus(); s != paymentsv1.PaymentStatus_PAYMENT_STATUS_PENDING {
		t.Fatalf("payment is %s while accounts cannot answer the void, want PENDING", s)
	}

	b.accounts.start(t)
	eventually(t, "recovery fails the order", func() error {
		if s := paymentOf(t, teller, pending.GetId()).GetStatus(); s != paymentsv1.PaymentStatus_PAYMENT_STATUS_FAILED {
			return fmt.Errorf("payment is %s", s)
		}
		return nil
	})
	if got := paymentOf(t, teller, pending.GetId()); got.GetFailureReason() != payments.ReasonCreatorRevoked {
		t.Fatalf("failure reason %q, want %q", got.GetFailureReason(), payments.ReasonCreatorRevoked)
	}
	if gate.count(&gate.voids) == 0 {
		t.Fatal("the order was failed without an answer to the void")
	}

	// The original, sent before the revocation with payments' certificate and on
	// alice's behalf, reaches accounts only now.
	for attempt := range 2 {
		_, err = gate.release(t)
		if !isVoided(err) {
			t.Fatalf("delayed original, attempt %d: %v; want FAILED_PRECONDITION with reason TRANSFER_VOIDED", attempt, err)
		}
	}
	b.wantBalances(t, ids, 100_00, 0)
	if s := paymentOf(t, teller, pending.GetId()).GetStatus(); s != paymentsv1.PaymentStatus_PAYMENT_STATUS_FAILED {
		t.Fatalf("payment is %s after the delayed original, want FAILED", s)
	}
}

// isVoided reports whether err is accounts' refusal of a voided key.
func isVoided(err error) bool {
	st := status.Convert(err)
	if st.Code() != codes.FailedPrecondition {
		return false
	}
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetReason() == "TRANSFER_VOIDED" && ei.GetDomain() == "bank.local" {
			return true
		}
	}
	return false
}

// pendingPayment returns the PENDING payment an Unavailable CreatePayment names.
func pendingPayment(tb testing.TB, err error) *paymentsv1.Payment {
	tb.Helper()
	st := status.Convert(err)
	for _, d := range st.Details() {
		if p, ok := d.(*paymentsv1.Payment); ok && st.Code() == codes.Unavailable &&
			p.GetStatus() == paymentsv1.PaymentStatus_PAYMENT_STATUS_PENDING {
			return p
		}
	}
	tb.Fatalf("CreatePayment: %v, want Unavailable with a PENDING payment", err)
	return nil
}

func paymentOf(tb testing.TB, c paymentsv1.PaymentsServiceClient, id string) *paymentsv1.Payment {
	tb.Helper()
	resp, err := c.GetPayment(context.Background(), &paymentsv1.GetPaymentRequest{Id: id})
	if err != nil {
		tb.Fatalf("GetPayment %s: %v", id, err)
	}
	return resp.GetPayment()
}

// gateMode says what transferGate does with a Transfer that is not a void.
type gateMode int

const (
	// gateLoseAnswer lets the transfer reach accounts and loses its answer, as when
	// payments times out or crashes after sending it.
	gateLoseAnswer gateMode = iota + 1
	// gateHold keeps the first transfer on its way, to reach accounts when the test
	// releases it; later ones are lost before they reach accounts.
	gateHold
)

// transferGate is a unary client interceptor on payments' connection to accounts,
// the network between them as the test wants it. Voids always go through.
type transferGate struct {
	mode gateMode

	mu           sync.Mutex
	held         *heldCall
	lost         int // answers lost (gateLoseAnswer)
	voidAttempts int // voids sent
	voids        int // voids accounts answered other than Unavailable
}

// heldCall is a Transfer on its way: payments' call, its metadata (the end user it
// names) included, on payments' own connection.
type heldCall struct {
	ctx     context.Context
	method  string
	req     *accountsv1.TransferRequest
	cc      *grpc.ClientConn
	invoker grpc.UnaryInvoker
	opts    []grpc.CallOption
}

func (g *transferGate) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	tr, ok := req.(*accountsv1.TransferRequest)
	if !ok {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	if tr.GetVoid() {
		g.add(&g.voidAttempts)
		err := invoker(ctx, method, req, reply, cc, opts...)
		if status.Code(err) != codes.Unavailable {
			g.add(&g.voids)
		}
		return err
	}
	switch g.mode {
	case gateLoseAnswer:
		if err := invoker(ctx, method, req, reply, cc, opts...); err != nil {
			return err
		}
		g.add(&g.lost)
		return status.Error(codes.Unavailable, "test: the answer was lost on its way back")
	case gateHold:
		g.mu.Lock()
		if g.held == nil {
			g.held = &heldCall{ctx: context.WithoutCancel(ctx), method: method,
				req: proto.Clone(tr).(*accountsv1.TransferRequest), cc: cc, invoker: invoker, opts: opts}
		}
		g.mu.Unlock()
		return status.Error(codes.Unavailable, "test: the request is still on its way")
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (g *transferGate) add(n *int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	*n++
}

func (g *transferGate) count(n *int) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return *n
}

// release delivers the held Transfer to accounts now.
func (g *transferGate) release(tb testing.TB) (*accountsv1.TransferResponse, error) {
	tb.Helper()
	g.mu.Lock()
	h := g.held
	g.mu.Unlock()
	if h == nil {
		tb.Fatal("no Transfer was held")
	}
	if h.req.GetVoid() {
		tb.Fatal("the held Transfer is a void")
	}
	resp := new(accountsv1.TransferResponse)
	err := h.invoker(h.ctx, h.method, h.req, resp, h.cc, h.opts...)
	return resp, err
}

// crlFileRevocation is payments' RevocationChecker over the CRL file the services
// reload (p.Dir/crl.pem), read at each question: a CRL counts only if a CA of p
// signed it.
func crlFileRevocation(p *pkitest.PKI) payments.RevocationChecker {
	return crlFile{p: p, path: filepath.Join(p.Dir, "crl.pem")}
}

type crlFile struct {
	p    *pkitest.PKI
	path string
}

func (c crlFile) RevokedSerial(rawIssuer []byte, serial *big.Int) bool {
	data, err := os.ReadFile(c.path)
	if err != nil {
		return false
	}
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return false
		}
		rl, err := x509.ParseRevocationList(block.Bytes)
		if err != nil || !bytes.Equal(rl.RawIssuer, rawIssuer) {
			continue
		}
		signed := false
		for _, ca := range c.p.CAs() {
			if bytes.Equal(ca.Cert.RawSubject, rl.RawIssuer) && rl.CheckSignatureFrom(ca.Cert) == nil {
				signed = true
			}
		}
		if !signed {
			continue
		}
		for _, e := range rl.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(serial) == 0 {
				return true
			}
		}
	}
}
