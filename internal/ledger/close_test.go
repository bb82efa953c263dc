package ledger_test

import (
	"context"
	"testing"

	"mtlsbank/internal/ledger"
)

func TestClose(t *testing.T) {
	l, _ := newLedger(t)
	ctx := context.Background()
	a := mustOpen(t, l, alice, "EUR")
	mustDeposit(t, l, a, 100)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_, err := l.Deposit(ctx, ledger.DepositRequest{AccountID: string(a.ID), Amount: eur(1), IdempotencyKey: "late", Principal: teller})
	wantError(t, err, ledger.ErrClosed, "")
	_, err = l.OpenAccount(ctx, ledger.OpenAccountRequest{Owner: alice, Currency: "EUR"})
	wantError(t, err, ledger.ErrClosed, "")
	if bal := balanceOf(t, l, a.ID); bal != 100 {
		t.Errorf("balance after Close = %d, want 100", bal)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	s := openStore(t, t.TempDir()+"/ledger.db")
	tests := []struct {
		name string
		opt  ledger.Option
	}{
		{name: "zero batch", opt: ledger.WithMaxBatch(0)},
		{name: "negative queue", opt: ledger.WithQueueSize(-1)},
		{name: "zero watch page", opt: ledger.WithWatchPageSize(0)},
		{name: "nil clock", opt: ledger.WithClock(nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if l, err := ledger.New(s, tt.opt); err == nil {
				_ = l.Close()
				t.Error("New accepted the option")
			}
		})
	}
	if _, err := ledger.New(nil); err == nil {
		t.Error("New accepted a nil store")
	}
}
