package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	"mtlsbank/internal/authz"
	"mtlsbank/internal/identity"
	"mtlsbank/internal/tracing"
)

// AuditCost is audit_record_ns: the CPU a call spends on its audit record on its own
// goroutine (issue 14: <= 1000 ns).
type AuditCost struct {
	NsPerOp     float64
	AllocsPerOp int64
	BytesPerOp  int64
	// Method says how it was measured.
	Method string
}

// auditRecordCost measures audit_record_ns.
//
// This is the hook of the audit sink (internal/auditlog): once it exists, measure here
// what its benchmark measures (handing one record to the sink, on the caller's
// goroutine) and say so in Method. Until then the record is the authorizer's slog record,
// formatted as the services do (text, trace ids, into io.Discard), and its cost is the
// difference between Authorizer.Authorize auditing to that logger and to a disabled one:
// the same decision, identity and context work on both sides.
func auditRecordCost(policy *authz.Policy, caller identity.Identity) (*AuditCost, error) {
	ctx := peer.NewContext(context.Background(), &peer.Peer{
		Addr:     &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000},
		AuthInfo: identity.AuthInfo{Identity: caller},
	})
	ctx = grpc.NewContextWithServerTransportStream(ctx, methodStream(accountsv1.AccountsService_GetAccount_FullMethodName))
	ctx = metadata.NewIncomingContext(ctx, metadata.MD{})
	run := func(logger *slog.Logger) (testing.BenchmarkResult, error) {
		az := authz.NewAuthorizer(policy, logger)
		if _, err := az.Authorize(ctx); err != nil {
			return testing.BenchmarkResult{}, fmt.Errorf("audit benchmark: %w", err)
		}
		return testing.Benchmark(func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = az.Authorize(ctx)
			}
		}), nil
	}
	with, err := run(slog.New(tracing.NewLogHandler(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		return nil, err
	}
	without, err := run(slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	if with.N == 0 || without.N == 0 {
		return nil, fmt.Errorf("audit benchmark did not run")
	}
	perOp := func(r testing.BenchmarkResult) float64 { return float64(r.T.Nanoseconds()) / float64(r.N) }
	return &AuditCost{
		NsPerOp:     max(0, perOp(with)-perOp(without)),
		AllocsPerOp: max(0, with.AllocsPerOp()-without.AllocsPerOp()),
		BytesPerOp:  max(0, with.AllocedBytesPerOp()-without.AllocedBytesPerOp()),
		Method: "authz.Authorizer.Authorize auditing to a text slog record (the services' format, into io.Discard) " +
			"minus the same to a disabled logger; no audit sink yet",
	}, nil
}

// methodStream is the smallest grpc.ServerTransportStream: it names the method.
type methodStream string

func (s methodStream) Method() string             { return string(s) }
func (methodStream) SetHeader(metadata.MD) error  { return nil }
func (methodStream) SendHeader(metadata.MD) error { return nil }
func (methodStream) SetTrailer(metadata.MD) error { return nil }
