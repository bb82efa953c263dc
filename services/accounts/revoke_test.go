package main

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	identityv1 "mtlsbank/gen/bank/identity/v1"
)

// TestRevokedAuditorLosesStreamAndConnections runs the accounts service as bin/accounts
// assembles it, over loopback TCP, with its CRL file polled every 20ms. An auditor has a
// WatchLedger stream open on one connection and an idle second connection; a teller has
// its own. The CRL file is rewritten to revoke the auditor: the stream ends, the idle
// connection is closed (it leaves READY with no call made on it), and the teller's
// connection never leaves READY.
func TestRevokedAuditorLosesStreamAndConnections(t *testing.T) {
	f := newFixture(t)
	f.cfg.ReloadInterval = 20 * time.Millisecond
	dial, logs := f.serve(t, "tcp")
	auditor := f.pki.Client(t, "spiffe://bank.local/auditor/audrey")
	streamCC, idleCC := dial(t, auditor), dial(t, auditor)
	tellerCC := dial(t, f.pki.Client(t, "spiffe://bank.local/teller/tina"))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	stream, err := accountsv1.NewAccountsServiceClient(streamCC).WatchLedger(ctx, &accountsv1.WatchLedgerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Header(); err != nil {
		t.Fatalf("WatchLedger not accepted: %v", err)
	}
	if _, err := identityv1.NewIdentityServiceClient(idleCC).WhoAmI(ctx, &identityv1.WhoAmIRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := identityv1.NewIdentityServiceClient(tellerCC).WhoAmI(ctx, &identityv1.WhoAmIRequest{}); err != nil {
		t.Fatal(err)
	}
	tellerMoved := make(chan bool, 1)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go func() { tellerMoved <- tellerCC.WaitForStateChange(watchCtx, connectivity.Ready) }()

	f.pki.WriteCRL(t, f.pki.CRL(t, auditor.Cert))

	resp, err := stream.Recv()
	if err == nil {
		t.Fatalf("the revoked auditor received entry %d", resp.GetEntry().GetSequence())
	}
	if c := status.Code(err); c != codes.Unavailable && c != codes.Unauthenticated {
		t.Fatalf("the auditor's stream ended with %v, want Unavailable (connection closed) or Unauthenticated", err)
	}
	for idleCC.GetState() == connectivity.Ready {
		if !idleCC.WaitForStateChange(ctx, connectivity.Ready) {
			t.Fatal("the auditor's idle connection stayed READY")
		}
	}
	// The client may see its connection close before the server has written the record
	// of closing it: wait for the record, with a deadline.
	for deadline := time.Now().Add(10 * time.Second); logs.count("connection closed: peer credentials no longer valid") < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("want 2 records of the auditor's connections closed, have %d", logs.count("connection closed: peer credentials no longer valid"))
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, not synchronising on time
	}
	if n := logs.count("connection closed: peer credentials no longer valid"); n != 2 {
		t.Errorf("%d records of the auditor's connections closed, want 2", n)
	}
	if _, err := identityv1.NewIdentityServiceClient(tellerCC).WhoAmI(ctx, &identityv1.WhoAmIRequest{}); err != nil {
		t.Fatalf("the teller after the auditor's revocation: %v", err)
	}
	stopWatch()
	if <-tellerMoved {
		t.Error("the teller's connection left READY")
	}
}
