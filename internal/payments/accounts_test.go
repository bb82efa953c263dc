package payments_test

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"mtlsbank/internal/payments"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/tlsconfig"
)

// replica is a gRPC server over loopback TCP with real mutual TLS that presents
// spiffeID and counts the calls that reach it.
type replica struct {
	addr  string
	calls atomic.Int64
	srv   *grpc.Server
}

func startReplica(tb testing.TB, p *pkitest.PKI, spiffeID string) *replica {
	tb.Helper()
	src, err := tlsconfig.NewSource(spiffeid.RequireTrustDomainFromString("bank.local"), p.Server(tb, spiffeID).TLSCertificate(), p.Bundle)
	if err != nil {
		tb.Fatal(err)
	}
	r := &replica{}
	r.srv = grpc.NewServer(grpc.Creds(tlsconfig.ServerCredentials(src)),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			r.calls.Add(1)
			return h(ctx, req)
		}))
	healthpb.RegisterHealthServer(r.srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	r.addr = lis.Addr().String()
	go func() { _ = r.srv.Serve(lis) }()
	tb.Cleanup(r.srv.Stop)
	return r
}

// TestDialAccountsReplicas: with --accounts-addr a list, calls go round robin to
// every replica; a replica that stops is routed around without a failed call; and
// the server identity is checked on every address: a replica presenting another
// bank identity (a valid certificate of the same CA) never receives a call.
func TestDialAccountsReplicas(t *testing.T) {
	p := pkitest.New(t)
	const accountsID = "spiffe://bank.local/service/accounts"
	a, b := startReplica(t, p, accountsID), startReplica(t, p, accountsID)
	impostor := startReplica(t, p, "spiffe://bank.local/service/payments")

	src, err := tlsconfig.NewSource(spiffeid.RequireTrustDomainFromString("bank.local"),
		p.Client(t, "spiffe://bank.local/service/payments").TLSCertificate(), p.Bundle)
	if err != nil {
		t.Fatal(err)
	}
	creds := tlsconfig.ClientCredentials(src, "localhost", tlsconfig.WithServerID(spiffeid.RequireFromString(accountsID)))
	cc, err := payments.DialAccounts(a.addr+","+impostor.addr+","+b.addr, creds)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	client := healthpb.NewHealthClient(cc)
	check := func(n int) error {
		for i := range n {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
			cancel()
			if err != nil {
				return fmt.Errorf("call %d: %w", i, err)
			}
		}
		return nil
	}

	// Both good replicas serve: wait until each has answered (the subchannels
	// connect independently), then every call goes to one of them.
	deadline := time.Now().Add(30 * time.Second)
	for a.calls.Load() == 0 || b.calls.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("calls reached a %d times and b %d times, want both", a.calls.Load(), b.calls.Load())
		}
		if err := check(1); err != nil {
			t.Fatal(err)
		}
	}
	beforeA, beforeB := a.calls.Load(), b.calls.Load()
	if err := check(20); err != nil {
		t.Fatal(err)
	}
	if da, db := a.calls.Load()-beforeA, b.calls.Load()-beforeB; da+db != 20 || da < 5 || db < 5 {
		t.Errorf("20 calls went %d to a and %d to b, want both in turn", da, db)
	}

	// a stops: every call still succeeds, on b.
	a.srv.Stop()
	beforeB = b.calls.Load()
	if err := check(20); err != nil {
		t.Fatalf("with one replica stopped: %v", err)
	}
	if got := b.calls.Load() - beforeB; got != 20 {
		t.Errorf("b answered %d of 20 calls after a stopped", got)
	}
	if n := impostor.calls.Load(); n != 0 {
		t.Errorf("the replica presenting another SPIFFE ID received %d calls, want 0", n)
	}
}
