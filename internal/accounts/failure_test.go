package accounts_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
)

// TestClosedLedgerIsUnavailable: once the ledger shuts down, writes and the ledger
// stream say Unavailable, which tells a client to retry with the same key.
func TestClosedLedgerIsUnavailable(t *testing.T) {
	b := newBank(t)
	ctx := callCtx(t)
	stream, err := b.auditor.WatchLedger(ctx, &accountsv1.WatchLedgerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for range b.entries { // the stream is live once it has caught up
		if _, err := stream.Recv(); err != nil {
			t.Fatalf("recv: %v", err)
		}
	}
	before := balances(t, b.teller)

	if err := b.ledger.Close(); err != nil {
		t.Fatalf("close ledger: %v", err)
	}
	_, err = b.teller.Deposit(ctx, &accountsv1.DepositRequest{AccountId: b.aliceEUR.GetId(), Amount: amountOf("EUR", 1), IdempotencyKey: "after-close"})
	wantStatus(t, err, codes.Unavailable, "")
	_, err = b.teller.OpenAccount(ctx, &accountsv1.OpenAccountRequest{Owner: aliceID, Currency: "EUR"})
	wantStatus(t, err, codes.Unavailable, "")
	_, err = stream.Recv()
	wantStatus(t, err, codes.Unavailable, "")
	if after := balances(t, b.teller); len(after) != len(before) {
		t.Errorf("accounts %v after close, want %v", after, before)
	}
}

// TestInternalErrorIsGeneric: a failure the ledger does not document reaches the client
// as a bare Internal, and its detail reaches the server log.
func TestInternalErrorIsGeneric(t *testing.T) {
	b := newBank(t)
	if err := b.store.Close(); err != nil { // the ledger now fails to read
		t.Fatalf("close store: %v", err)
	}
	_, err := b.teller.GetAccount(callCtx(t), &accountsv1.GetAccountRequest{Id: b.aliceEUR.GetId()})
	wantStatus(t, err, codes.Internal, "")
	if msg := status.Convert(err).Message(); msg != "internal error" {
		t.Errorf("client message %q, want %q", msg, "internal error")
	}
	var line string
	for l := range strings.Lines(b.logs.String()) {
		if strings.Contains(l, `msg="accounts: unexpected error"`) {
			line = l
		}
	}
	if !strings.Contains(line, "database is closed") || !strings.Contains(line, "spiffe_id="+tellerID) {
		t.Errorf("server log lacks the detail of the internal error: %q", line)
	}
}
