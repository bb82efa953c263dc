package telemetry

import (
	"context"
	"testing"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// BenchmarkUnaryServerInterceptor measures what the RPC metrics cost a unary call that
// ends OK (grpc_server_started_total, grpc_server_handled_total,
// grpc_server_handling_seconds, messages received and sent, of a registered method):
// ours, and go-grpc-middleware's providers/prometheus that it replaced.
func BenchmarkUnaryServerInterceptor(b *testing.B) {
	lib := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
	lib.InitializeMetrics(testServices)
	ours := newRPCMetrics(prometheus.DefBuckets)
	ours.initialize(testServices)
	for _, c := range []struct {
		name string
		in   grpc.UnaryServerInterceptor
	}{
		{"ours", ours.unaryInterceptor()},
		{"go-grpc-middleware", lib.UnaryServerInterceptor()},
	} {
		b.Run(c.name, func(b *testing.B) {
			info := &grpc.UnaryServerInfo{FullMethod: unaryMethod}
			handler := func(context.Context, any) (any, error) { return nil, nil }
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.in(ctx, nil, info, handler); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkObserveAuthz measures counting one authorization decision, the call every
// RPC makes: a customer allowed, and a delegated call with two roles.
func BenchmarkObserveAuthz(b *testing.B) {
	m := NewMetrics()
	for _, c := range []struct {
		name  string
		roles []string
	}{
		{"one role", []string{"customer"}},
		{"two roles", []string{"teller", "auditor"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m.ObserveAuthz("/bank.accounts.v1.AccountsService/GetAccount", codes.OK, c.roles)
			}
		})
	}
}
