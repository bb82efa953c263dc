package paymentstest

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	typev1 "mtlsbank/gen/bank/type/v1"
	"mtlsbank/internal/payments"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
)

// testRevokedCreatorVoidsTransferKey: a PENDING order whose creator's certificate
// is revoked is settled by voiding its transfer key at accounts, and recorded as the
// ledger answers: never FAILED while money moved under its key, never FAILED without
// an answer about the key, and never left to move money afterwards.
func (su suite) testRevokedCreatorVoidsTransferKey(t *testing.T) {
	p := pkitest.New(t)
	bundle := []*x509.Certificate{p.Root.Cert, p.Intermediate.Cert}
	const amount = 10_00

	tests := []struct {
		name string
		// before runs after the order is recorded PENDING and before the revocation:
		// an earlier attempt of the order (original) reaching accounts, or not.
		before func(t *testing.T, acc *fakeAccounts, original *accountsv1.TransferRequest)
		// setup changes accounts once the revocation is known, holding acc.mu.
		setup        func(acc *fakeAccounts)
		wantStatus   payments.Status
		wantCode     string
		wantReason   string
		wantMoved    bool
		wantRecovErr error  // what the first Recover after the revocation returns
		wantLog      string // a line the service must log
	}{
		{
			name:       "no attempt reached accounts",
			before:     func(*testing.T, *fakeAccounts, *accountsv1.TransferRequest) {},
			wantStatus: payments.StatusFailed, wantCode: "PERMISSION_DENIED", wantReason: payments.ReasonCreatorRevoked,
			wantLog: "its transfer key is voided",
		},
		{
			name: "an attempt moved the money and its answer was lost",
			before: func(t *testing.T, acc *fakeAccounts, original *accountsv1.TransferRequest) {
				if _, err := acc.Transfer(context.Background(), original); err != nil {
					t.Fatal(err)
				}
			},
			wantStatus: payments.StatusCompleted, wantMoved: true,
			wantLog: "money had moved before its creator's certificate was revoked",
		},
		{
			name: "an attempt was refused and its answer was lost",
			before: func(t *testing.T, acc *fakeAccounts, original *accountsv1.TransferRequest) {
				acc.balances[accAlice] = amount - 1
				if _, err := acc.Transfer(context.Background(), original); status.Code(err) != codes.FailedPrecondition {
					t.Fatalf("attempt: %v, want insufficient funds", err)
				}
				acc.balances[accAlice] = 100_00 // the refusal stays: the key is settled
			},
			wantStatus: payments.StatusFailed, wantCode: "FAILED_PRECONDITION", wantReason: "insufficient funds",
		},
		{
			name:   "accounts is unreachable",
			before: func(*testing.T, *fakeAccounts, *accountsv1.TransferRequest) {},
			setup:  func(acc *fakeAccounts) { acc.down = true },
			// Still PENDING: the next pass, with accounts back, fails it.
			wantStatus: payments.StatusPending, wantRecovErr: payments.ErrOutcomeUnknown,
		},
		{
			name:   "accounts refuses the void without answering about the key",
			before: func(*testing.T, *fakeAccounts, *accountsv1.TransferRequest) {},
			setup: func(acc *fakeAccounts) {
				acc.voidErr = status.Error(codes.PermissionDenied, "permission denied")
			},
			wantStatus: payments.StatusPending,
			wantLog:    "accounts refused to void its transfer key",
		},
		{
			name:   "accounts predates the void field",
			before: func(*testing.T, *fakeAccounts, *accountsv1.TransferRequest) {},
			setup:  func(acc *fakeAccounts) { acc.ignoreVoid = true },
			// The old server moved the money: the payment says so, and the log says why.
			wantStatus: payments.StatusCompleted, wantMoved: true,
			wantLog: "upgrade accounts before payments",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			aliceLeaf := p.Client(t, alice)
			bobLeaf := p.Client(t, bob)
			acc := newFakeAccounts(map[string]int64{accAlice: 100_00, accBob: 100_00})
			checker := &crlChecker{}
			checker.set(t, bundle, crlOf(t, p.Intermediate, 1))
			logs := &syncBuffer{}
			svc, store := su.newService(t, acc, payments.WithRevocationChecker(checker),
				payments.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))

			// alice's order and bob's, both PENDING while accounts is down.
			acc.setDown(true)
			ids := make(map[string]string)
			// alice's first, so that a recovery pass meets hers before bob's.
			for _, o := range []struct {
				ctx      context.Context
				from, to string
			}{
				{caller(t, aliceLeaf, true), accAlice, accBob},
				{caller(t, bobLeaf, true), accBob, accAlice},
			} {
				_, err := svc.CreatePayment(o.ctx, &paymentsv1.CreatePaymentRequest{
					FromAccountId: o.from, ToAccountId: o.to, IdempotencyKey: "rent", Memo: "rent",
					Amount: &typev1.Money{CurrencyCode: "EUR", MinorUnits: amount},
				})
				if status.Code(err) != codes.Unavailable {
					t.Fatalf("CreatePayment from %s while accounts is down: %v", o.from, err)
				}
			}
			for _, id := range ListIDs(t, store, payments.Query{Status: payments.StatusPending, Limit: 10}) {
				pay, err := store.Get(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				ids[pay.CreatedBy] = id
			}
			pending, err := store.Get(ctx, ids[alice])
			if err != nil {
				t.Fatal(err)
			}
			original := &accountsv1.TransferRequest{
				FromAccountId: pending.FromAccountID, ToAccountId: pending.ToAccountID,
				Amount:         &typev1.Money{CurrencyCode: pending.Currency, MinorUnits: pending.MinorUnits},
				IdempotencyKey: pending.TransferKey, Reference: pending.Memo,
			}
			acc.setDown(false)
			tt.before(t, acc, original)

			checker.set(t, bundle, crlOf(t, p.Intermediate, 2, aliceLeaf.Cert))
			if tt.setup != nil {
				acc.mu.Lock()
				tt.setup(acc)
				acc.mu.Unlock()
			}
			_, err = svc.Recover(ctx)
			if !errors.Is(err, tt.wantRecovErr) {
				t.Fatalf("Recover: %v, want %v", err, tt.wantRecovErr)
			}
			got, err := store.Get(ctx, ids[alice])
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tt.wantStatus || got.FailureCode != tt.wantCode || got.FailureReason != tt.wantReason {
				t.Fatalf("alice's order: %s %q %q, want %s %q %q", got.Status, got.FailureCode, got.FailureReason,
					tt.wantStatus, tt.wantCode, tt.wantReason)
			}
			if moved := acc.movedFor(got.ID); moved != tt.wantMoved {
				t.Fatalf("money moved for alice's order: %v, want %v", moved, tt.wantMoved)
			}
			if tt.wantMoved && got.TransactionID != acc.done[got.TransferKey].GetId() {
				t.Fatalf("order's transaction %q, ledger's %q", got.TransactionID, acc.done[got.TransferKey].GetId())
			}
			if tt.wantRecovErr == nil {
				// bob's order is not held up by alice's, whatever became of hers.
				if b, err := store.Get(ctx, ids[bob]); err != nil || b.Status != payments.StatusCompleted {
					t.Fatalf("bob's order: %+v, %v; want COMPLETED", b, err)
				}
			}
			if !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, logs.String())
			}
			// The log names alice's certificate by its serial as openssl prints it, although
			// the order stores it in lower case.
			if serial := "serial=" + pki.SerialHex(aliceLeaf.Cert.SerialNumber); tt.wantLog != "" && !strings.Contains(logs.String(), serial) {
				t.Errorf("log lacks %q:\n%s", serial, logs.String())
			}

			switch tt.wantStatus {
			case payments.StatusPending:
				// No verdict without the ledger's answer; once accounts answers, the
				// key is voided and the order FAILED.
				acc.mu.Lock()
				acc.down, acc.voidErr = false, nil
				acc.mu.Unlock()
				if _, err := svc.Recover(ctx); err != nil {
					t.Fatalf("Recover once accounts answers: %v", err)
				}
				if got, err = store.Get(ctx, ids[alice]); err != nil || got.Status != payments.StatusFailed ||
					got.FailureReason != payments.ReasonCreatorRevoked {
					t.Fatalf("alice's order once accounts answers: %+v, %v; want FAILED %q", got, err, payments.ReasonCreatorRevoked)
				}
				fallthrough
			case payments.StatusFailed:
				// The original, delayed on its way, arrives now: it moves nothing.
				_, err := acc.Transfer(ctx, original)
				if status.Code(err) != codes.FailedPrecondition || acc.movedFor(got.ID) {
					t.Fatalf("delayed original after the order FAILED: %v, moved %v; want refused, nothing moved", err, acc.movedFor(got.ID))
				}
			}
		})
	}
}

// testVoidedKeyFailsAsRevoked: a driver that does not (yet) see the revocation
// retries an order whose key another driver voided (a second payments process with
// a fresher CRL): it records the order as that driver would, FAILED for the
// revocation, and nothing moves.
func (su suite) testVoidedKeyFailsAsRevoked(t *testing.T) {
	ctx := context.Background()
	p := pkitest.New(t)
	acc := newFakeAccounts(map[string]int64{accAlice: 100_00})
	svc, store := su.newService(t, acc) // no revocation checker
	acc.setDown(true)
	_, err := svc.CreatePayment(caller(t, p.Client(t, alice), true), &paymentsv1.CreatePaymentRequest{
		FromAccountId: accAlice, ToAccountId: accBob, IdempotencyKey: "rent",
		Amount: &typev1.Money{CurrencyCode: "EUR", MinorUnits: 10_00},
	})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("CreatePayment while accounts is down: %v", err)
	}
	ids := ListIDs(t, store, payments.Query{Status: payments.StatusPending, Limit: 10})
	if len(ids) != 1 {
		t.Fatalf("pending = %v", ids)
	}
	pending, err := store.Get(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	acc.setDown(false)
	_, err = acc.Transfer(ctx, &accountsv1.TransferRequest{
		FromAccountId: pending.FromAccountID, ToAccountId: pending.ToAccountID,
		Amount:         &typev1.Money{CurrencyCode: pending.Currency, MinorUnits: pending.MinorUnits},
		IdempotencyKey: pending.TransferKey, Void: true,
	})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("void by the other driver: %v", err)
	}
	if _, err := svc.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := store.Get(ctx, pending.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != payments.StatusFailed || got.FailureCode != "PERMISSION_DENIED" || got.FailureReason != payments.ReasonCreatorRevoked {
		t.Fatalf("order: %s %q %q, want FAILED PERMISSION_DENIED %q", got.Status, got.FailureCode, got.FailureReason, payments.ReasonCreatorRevoked)
	}
	if acc.movedFor(got.ID) {
		t.Fatal("money moved under a voided key")
	}
}

// syncBuffer is a bytes.Buffer safe for the service's goroutines and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
