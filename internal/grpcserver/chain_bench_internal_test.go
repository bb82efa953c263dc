package grpcserver

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	identityv1 "mtlsbank/gen/bank/identity/v1"
	"mtlsbank/internal/auditlog"
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
// grpc-go handing it over and the handler, the handler itself (WhoAmI, about 0.5 µs)
// included. It runs on the benchmark's goroutine, whose stack has grown already: the
// stack growth of a goroutine per call is measured by BenchmarkCall and the harness.
func BenchmarkUnaryChain(b *testing.B) {
	_, p, src, policy := benchSetup(b)
	text := slog.New(tracing.NewLogHandler(slog.NewTextHandler(io.Discard, nil)))
	for _, c := range []struct {
		name   string
		logger *slog.Logger
		opts   []Option
	}{
		// As the services run: the audit records to an audit sink (its writer goroutine
		// formats, chains and syncs them beside the calls), logs as text with trace ids.
		{"audit sink", text, []Option{WithAuditSink(benchAuditSink(b))}},
		// The audit record as a text log record on the calling goroutine (into io.Discard).
		{"text logs", text, nil},
		// Records not formatted: what the chain costs besides its records.
		{"logs disabled", slog.New(slog.DiscardHandler), nil},
	} {
		b.Run(c.name, func(b *testing.B) { benchmarkUnaryChain(b, src, policy, c.logger, p, c.opts...) })
	}
}

// benchAuditSink opens an audit sink in a temporary directory with a fresh key.
func benchAuditSink(b *testing.B) *auditlog.Sink {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	sink, err := auditlog.Open(filepath.Join(b.TempDir(), "audit.jsonl"), "bench", key)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sink.Close() })
	return sink
}

func benchmarkUnaryChain(b *testing.B, src *tlsconfig.Source, policy *authz.Policy, logger *slog.Logger, p *pkitest.PKI, opts ...Option) {
	td := src.TrustDomain()
	srv, err := New(src, policy, logger, append([]Option{WithMetrics(telemetry.NewMetrics())}, opts...)...)
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
	call := func(ctx context.Context, req any) (any, error) { return srv.unary.intercept(ctx, req, info, handler) }
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

// benchSetup returns the benchmarks' PKI, the server's source and a policy granting
// customers WhoAmI (health and reflection to anyone authenticated, as Serve requires).
func benchSetup(b *testing.B) (spiffeid.TrustDomain, *pkitest.PKI, *tlsconfig.Source, *authz.Policy) {
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
  authenticated:
    methods: [/grpc.health.v1.Health/*, /grpc.reflection.v1.ServerReflection/*, /grpc.reflection.v1alpha.ServerReflection/*]
`))
	if err != nil {
		b.Fatal(err)
	}
	return td, p, src, policy
}

// benchStream is the smallest grpc.ServerTransportStream: it names the method.
type benchStream string

func (s benchStream) Method() string             { return string(s) }
func (benchStream) SetHeader(metadata.MD) error  { return nil }
func (benchStream) SendHeader(metadata.MD) error { return nil }
func (benchStream) SetTrailer(metadata.MD) error { return nil }

// BenchmarkCall measures whole WhoAmI calls (mutual TLS over loopback, 50 concurrent
// callers on 4 connections, both ends in this process) on the same credentials and
// handler: without the chain (one interceptor puts the decision the handler needs in the
// context), through the chain without stream workers, through the chain, and through the
// chain with tracing as deployed by default (no exporter: the trace context carried by the
// first interceptor, or by a stats handler). cpu-µs/op is the process's CPU time per
// call; run the variants alternately (-bench 'Call/chain$', 'Call/no-chain$', ...) on a busy machine.
func BenchmarkCall(b *testing.B) {
	td, p, src, policy := benchSetup(b)
	alice := p.Client(b, "spiffe://bank.local/customer/alice")
	client, err := tlsconfig.NewSource(td, alice.TLSCertificate(), p.Bundle)
	if err != nil {
		b.Fatal(err)
	}
	aliceID, err := identity.FromCertificate(alice.Cert, td)
	if err != nil {
		b.Fatal(err)
	}
	decision := policy.Decide(aliceID, identityv1.IdentityService_WhoAmI_FullMethodName)
	tracingOff, err := tracing.New(context.Background(), "bench", tracing.Config{})
	if err != nil {
		b.Fatal(err)
	}
	logger := slog.New(tracing.NewLogHandler(slog.NewTextHandler(io.Discard, nil)))
	chain := func(opts ...Option) func() (*grpc.Server, func(net.Listener) error) {
		return func() (*grpc.Server, func(net.Listener) error) {
			// As the services run: metrics, and the audit records to an audit sink.
			srv, err := New(src, policy, logger, append([]Option{WithMetrics(telemetry.NewMetrics()), WithAuditSink(benchAuditSink(b))}, opts...)...)
			if err != nil {
				b.Fatal(err)
			}
			identityv1.RegisterIdentityServiceServer(srv, whoami.New())
			return srv.GRPC(), srv.Serve
		}
	}
	variants := []struct {
		name  string
		start func() (*grpc.Server, func(net.Listener) error)
	}{
		{"no-chain", func() (*grpc.Server, func(net.Listener) error) {
			srv := grpc.NewServer(grpc.Creds(tlsconfig.ServerCredentials(src)),
				grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
					return handler(authz.NewContext(ctx, decision), req)
				}))
			identityv1.RegisterIdentityServiceServer(srv, whoami.New())
			return srv, srv.Serve
		}},
		{"chain-no-workers", chain(WithStreamWorkers(0))},
		{"chain", chain()},
		// As the services run without an exporter endpoint: the trace context carried by
		// the first interceptor.
		{"chain-tracing-off", chain(WithCallContext(tracingOff.CallContext()))},
		// The same with the propagating stats handler instead (grpc-go builds its stats
		// events for every call once a handler is installed).
		{"chain-tracing-off-stats-handler", chain(WithServerOptions(tracingOff.ServerOption()))},
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			gs, serve := v.start()
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			served := make(chan error, 1)
			go func() { served <- serve(lis) }()
			defer func() {
				gs.Stop()
				if err := <-served; err != nil && err != grpc.ErrServerStopped {
					b.Error(err)
				}
			}()
			conns := make([]identityv1.IdentityServiceClient, 4)
			for i := range conns {
				cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(tlsconfig.ClientCredentials(client, "localhost")))
				if err != nil {
					b.Fatal(err)
				}
				defer cc.Close()
				conns[i] = identityv1.NewIdentityServiceClient(cc)
				if _, err := conns[i].WhoAmI(context.Background(), &identityv1.WhoAmIRequest{}); err != nil {
					b.Fatal(err)
				}
			}
			var next atomic.Int64
			cpu0 := processCPU()
			b.ResetTimer()
			b.SetParallelism(25)
			b.RunParallel(func(pb *testing.PB) {
				c := conns[next.Add(1)%int64(len(conns))]
				for pb.Next() {
					if _, err := c.WhoAmI(context.Background(), &identityv1.WhoAmIRequest{}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(processCPU()-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
		})
	}
}

// processCPU returns the user+system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
