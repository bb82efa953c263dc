package grpcserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	identityv1 "mtlsbank/gen/bank/identity/v1"
	"mtlsbank/internal/authz"
	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/telemetry"
	"mtlsbank/internal/tlsconfig"
	"mtlsbank/internal/tracing"
	"mtlsbank/internal/whoami"
)

// BenchmarkUnaryChain measures the interceptor chain New installs around a unary call,
// as the services run it (metrics, text logs with trace ids into io.Discard, the
// default deadline), calling WhoAmI as a customer: everything a call pays between
// grpc-go handing it over and the handler, the handler itself (WhoAmI, about 1 µs)
// included. It runs on the benchmark's goroutine, whose stack has grown already: the
// stack growth of grpc-go's fresh goroutine per call is measured by the harness, not here.
func BenchmarkUnaryChain(b *testing.B) {
	td := spiffeid.RequireTrustDomainFromString(identity.DefaultTrustDomain)
	p := pkitest.New(b)
	src, err := tlsconfig.NewSource(td, p.Server(b, "spiffe://bank.local/service/accounts").TLSCertificate(), p.Bundle)
	if err != nil {
		b.Fatal(err)
	}
	policy, err := authz.ParsePolicy("bench.yaml", []byte(`trust_domain: bank.local
identities:
  - name: customers
    match: { spiffe_id_prefix: "spiffe://bank.local/customer/" }
    roles: [customer]
roles:
  customer: { methods: [/bank.identity.v1.IdentityService/WhoAmI] }
`))
	if err != nil {
		b.Fatal(err)
	}
	logger := slog.New(tracing.NewLogHandler(slog.NewTextHandler(io.Discard, nil)))
	srv, err := New(src, policy, logger, WithMetrics(telemetry.NewMetrics()))
	if err != nil {
		b.Fatal(err)
	}
	alice := p.Client(b, "spiffe://bank.local/customer/alice")
	id, err := identity.FromCertificate(alice.Cert, td)
	if err != nil {
		b.Fatal(err)
	}
	id.Chain = alice.Chain
	ctx := peer.NewContext(context.Background(), &peer.Peer{
		Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000},
		AuthInfo: identity.AuthInfo{
			TLSInfo:  credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{alice.Chain}}},
			Identity: id,
		},
	})
	ctx = grpc.NewContextWithServerTransportStream(ctx, benchStream(identityv1.IdentityService_WhoAmI_FullMethodName))
	ctx = metadata.NewIncomingContext(ctx, metadata.MD{"user-agent": []string{"grpc-go/1.85.0"}})
	info := &grpc.UnaryServerInfo{Server: whoami.New(), FullMethod: identityv1.IdentityService_WhoAmI_FullMethodName}
	handler := func(ctx context.Context, req any) (any, error) {
		return whoami.New().WhoAmI(ctx, req.(*identityv1.WhoAmIRequest))
	}
	call := chainUnary(srv.unary, info, handler)
	req := &identityv1.WhoAmIRequest{}
	if _, err := call(ctx, req); err != nil {
		b.Fatalf("WhoAmI through the chain: %v", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := call(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// chainUnary composes interceptors around handler as grpc.ChainUnaryInterceptor does.
func chainUnary(ints []grpc.UnaryServerInterceptor, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) grpc.UnaryHandler {
	for i := len(ints) - 1; i >= 0; i-- {
		next, in := handler, ints[i]
		handler = func(ctx context.Context, req any) (any, error) { return in(ctx, req, info, next) }
	}
	return handler
}

// benchStream is the smallest grpc.ServerTransportStream: it names the method.
type benchStream string

func (s benchStream) Method() string             { return string(s) }
func (benchStream) SetHeader(metadata.MD) error  { return nil }
func (benchStream) SendHeader(metadata.MD) error { return nil }
func (benchStream) SetTrailer(metadata.MD) error { return nil }
