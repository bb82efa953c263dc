package tlsconfig_test

import (
	"context"
	"crypto/x509"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/tlsconfig"
)

// TestServerCheckPerCall: a client's per-call check of the server on an open connection.
// A reload of the client's trust (the server's root gone, the server's intermediate
// revoked) refuses the next call with Unauthenticated; before, calls go through.
func TestServerCheckPerCall(t *testing.T) {
	f := newTwoCAs(t)
	other := pkitest.New(t)
	later := time.Now().Add(time.Hour)
	crlA := crlOf(t, f.a, 1, later)
	serverSrc := newSource(t, f.p, leaf(t, f.a, "spiffe://bank.local/service/accounts"))
	srv := grpc.NewServer(grpc.Creds(tlsconfig.ServerCredentials(serverSrc)))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)

	tests := []struct {
		name   string
		reload func(t *testing.T, client *tlsconfig.Source)
	}{
		{name: "server's root removed", reload: func(t *testing.T, client *tlsconfig.Source) {
			if err := client.SetBundle(other.Bundle); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "server's intermediate revoked", reload: func(t *testing.T, client *tlsconfig.Source) {
			setCRL(t, client, join(crlOf(t, f.p.Root, 2, later, f.a.Cert), crlA))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := newSource(t, f.p, leaf(t, f.b, "spiffe://bank.local/customer/bob"))
			if err := client.SetIntermediates([]*x509.Certificate{f.a.Cert}); err != nil {
				t.Fatal(err)
			}
			setCRL(t, client, join(crlOf(t, f.p.Root, 1, later), crlA))
			cc, err := grpc.NewClient(lis.Addr().String(),
				grpc.WithTransportCredentials(tlsconfig.ClientCredentials(client, "localhost")),
				grpc.WithPerRPCCredentials(tlsconfig.ServerCheck(client)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cc.Close() })
			check := func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
				return err
			}
			if err := check(); err != nil {
				t.Fatalf("before the reload: %v", err)
			}
			tt.reload(t, client)
			if err := check(); status.Code(err) != codes.Unauthenticated {
				t.Fatalf("after the reload, same connection: %v, want Unauthenticated", err)
			}
		})
	}
}
