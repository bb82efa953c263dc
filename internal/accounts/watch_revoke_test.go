package accounts_test

import (
	"context"
	"net"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/tlsconfig"
)

// clientWithLeaf is env.client presenting a given certificate.
func (e *env) clientWithLeaf(tb testing.TB, leaf *pki.Leaf) accountsv1.AccountsServiceClient {
	tb.Helper()
	src, err := tlsconfig.NewSource(td, leaf.TLSCertificate(), e.pki.Bundle)
	if err != nil {
		tb.Fatal(err)
	}
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return e.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(tlsconfig.ClientCredentials(src, "bufnet",
			tlsconfig.WithServerID(spiffeid.RequireFromString(accountsID)))),
	)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return accountsv1.NewAccountsServiceClient(conn)
}

// TestWatchLedgerStopsAtRevocation: an auditor watching the ledger is revoked (the CRL
// swapped in, nothing else: no connection recheck runs), then an entry is written. The
// stream ends with Unauthenticated and never delivers that entry.
func TestWatchLedgerStopsAtRevocation(t *testing.T) {
	b := newBank(t)
	leaf := b.env.pki.Client(t, auditorID)
	auditor := b.env.clientWithLeaf(t, leaf)
	stream, err := auditor.WatchLedger(callCtx(t), &accountsv1.WatchLedgerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	next := int64(1)
	recvUpTo(t, "before revocation", stream, &next, int64(len(b.entries)), b.entries)

	crl, err := tlsconfig.ParseCRL(b.env.pki.CRL(t, leaf.Cert), b.env.src.CRLIssuers())
	if err != nil {
		t.Fatal(err)
	}
	b.env.src.SetCRL(crl)
	deposit(t, b.teller, b.aliceEUR, 100, "after-revocation")

	resp, err := stream.Recv()
	if err == nil {
		t.Fatalf("the revoked auditor received entry %d, written after the revocation", resp.GetEntry().GetSequence())
	}
	wantStatus(t, err, codes.Unauthenticated, "")
}
