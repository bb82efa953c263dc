package grpcserver_test

import (
	"context"
	"math/big"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"mtlsbank/internal/grpcserver"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/ratelimit"
	"mtlsbank/internal/telemetry"
	"mtlsbank/internal/tlsconfig"
)

// fakeClock is a settable clock for certificate checks and rate limits.
type fakeClock struct{ nanos atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.nanos.Store(time.Now().UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.nanos.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.nanos.Add(int64(d)) }

// TestOpenConnectionRecheckedPerCall: what the handshake verified is checked again on
// every call, so a connection accepted earlier loses its calls (Unauthenticated, no
// handler) once its leaf expires or its intermediate CA is revoked.
func TestOpenConnectionRecheckedPerCall(t *testing.T) {
	tests := []struct {
		name     string
		change   func(tb testing.TB, h *harness, clock *fakeClock)
		wantRule string
	}{
		{name: "leaf expired since the handshake", wantRule: "certificate expired", change: func(_ testing.TB, _ *harness, clock *fakeClock) {
			clock.Advance(pkitest.LeafTTL + time.Minute)
		}},
		{name: "intermediate CA revoked", wantRule: "certificate revoked", change: func(tb testing.TB, h *harness, _ *fakeClock) {
			now := time.Now()
			der, err := h.pki.Root.CreateCRL([]*big.Int{h.pki.Intermediate.Cert.SerialNumber}, big.NewInt(1), now.Add(-time.Minute), now.Add(time.Hour))
			if err != nil {
				tb.Fatal(err)
			}
			crl, err := tlsconfig.ParseCRL(pki.EncodeCRLPEM(der), h.src.CRLIssuers())
			if err != nil {
				tb.Fatal(err)
			}
			h.src.SetCRL(crl)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			h := startWithSource(t, "bufconn", []tlsconfig.SourceOption{tlsconfig.WithClock(clock.Now)})
			cc := h.connect(t, h.pki.Client(t, "spiffe://bank.local/customer/alice"))
			if _, err := echo(context.Background(), cc, "before"); err != nil {
				t.Fatal(err)
			}
			tt.change(t, h, clock)
			before := h.svc.calls.Load()
			if _, err := echo(context.Background(), cc, "after"); status.Code(err) != codes.Unauthenticated {
				t.Fatalf("after the change: %v, want Unauthenticated", err)
			}
			if h.svc.calls.Load() != before {
				t.Error("the handler ran")
			}
			recs := h.logs.find(map[string]any{"msg": "authz decision", "code": "Unauthenticated"})
			if len(recs) != 1 || !strings.Contains(recs[0]["rule"].(string), tt.wantRule) {
				t.Errorf("audit records = %v, want one with %q", recs, tt.wantRule)
			}
		})
	}
}

// TestRateLimiter: with a clock the limiter's refill is exact. It runs before
// authorization: a limited call leaves no audit record and reaches no handler.
func TestRateLimiter(t *testing.T) {
	clock := newFakeClock()
	l, err := ratelimit.New(1, 2, ratelimit.WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	h := start(t, "bufconn", grpcserver.WithRateLimiter(l))
	alice := h.connect(t, h.pki.Client(t, "spiffe://bank.local/customer/alice"))
	ctx := context.Background()
	for i := range 2 {
		if _, err := echo(ctx, alice, "burst"); err != nil {
			t.Fatalf("call %d of the burst: %v", i+1, err)
		}
	}
	calls, audits := h.svc.calls.Load(), len(h.logs.find(map[string]any{"msg": "authz decision"}))
	if _, err := echo(ctx, alice, "over"); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("third call: %v, want ResourceExhausted", err)
	}
	if h.svc.calls.Load() != calls || len(h.logs.find(map[string]any{"msg": "authz decision"})) != audits {
		t.Error("a limited call reached authorization or the handler")
	}
	if _, err := echo(ctx, h.connect(t, h.pki.Client(t, "spiffe://bank.local/customer/bob")), "bob"); err != nil {
		t.Errorf("bob, another identity: %v", err)
	}
	clock.Advance(time.Second)
	if _, err := echo(ctx, alice, "refilled"); err != nil {
		t.Fatalf("after a second: %v", err)
	}
	if _, err := echo(ctx, alice, "again"); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("after one token: %v, want ResourceExhausted", err)
	}
}

// TestDefaultDeadline: a unary call without a deadline gets the server's, and a handler
// giving up on it answers DeadlineExceeded.
func TestDefaultDeadline(t *testing.T) {
	h := start(t, "bufconn", grpcserver.WithDefaultDeadline(50*time.Millisecond))
	cc := h.connect(t, h.pki.Client(t, "spiffe://bank.local/customer/alice"))
	err := cc.Invoke(context.Background(), "/test.v1.TestService/Block", wrapperspb.String("x"), new(wrapperspb.StringValue))
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Block without a deadline: %v, want DeadlineExceeded", err)
	}
}

// TestMetricsSeeHandlerPanics: the inner recovery turns a handler's panic into an
// Internal that the RPC metrics count; authorization decisions are counted by role.
func TestMetricsSeeHandlerPanics(t *testing.T) {
	m := telemetry.NewMetrics()
	h := start(t, "bufconn", grpcserver.WithMetrics(m))
	cc := h.connect(t, h.pki.Client(t, "spiffe://bank.local/customer/alice"))
	if _, err := echo(context.Background(), cc, "panic"); status.Code(err) != codes.Internal {
		t.Fatalf("panicking handler: %v, want Internal", err)
	}
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	find := func(name string, labels map[string]string) float64 {
		for _, fam := range fams {
			if fam.GetName() != name {
				continue
			}
			for _, s := range fam.GetMetric() {
				if hasLabels(s, labels) && s.GetCounter() != nil {
					return s.GetCounter().GetValue()
				}
			}
		}
		return -1
	}
	if v := find("grpc_server_handled_total", map[string]string{"grpc_method": "Echo", "grpc_code": "Internal"}); v != 1 {
		t.Errorf("grpc_server_handled_total{Echo,Internal} = %v, want 1", v)
	}
	if v := find("bank_authz_decisions_total", map[string]string{"method": "/test.v1.TestService/Echo", "decision": "allow", "role": "customer"}); v != 1 {
		t.Errorf("bank_authz_decisions_total{allow,customer} = %v, want 1", v)
	}
}

// panickingLimiter panics on the calls after its first n.
type panickingLimiter struct{ n atomic.Int64 }

func (l *panickingLimiter) Limit(context.Context) error {
	if l.n.Add(-1) < 0 {
		panic("limiter broke")
	}
	return nil
}

// TestChainStagePanics: a panic in a stage of the chain before the handler (here the rate
// limiter) is an Internal answer like a handler's: the RPC metrics count it, the call log
// writes it, the panic is logged with its stack, the handler does not run, and the server
// goes on serving.
func TestChainStagePanics(t *testing.T) {
	m := telemetry.NewMetrics()
	limiter := &panickingLimiter{}
	limiter.n.Store(1)
	h := start(t, "bufconn", grpcserver.WithMetrics(m), grpcserver.WithRateLimiter(limiter))
	cc := h.connect(t, h.pki.Client(t, "spiffe://bank.local/customer/alice"))
	ctx := context.Background()
	if _, err := echo(ctx, cc, "first"); err != nil {
		t.Fatalf("first call: %v", err)
	}
	calls := h.svc.calls.Load()
	if _, err := echo(ctx, cc, "second"); status.Code(err) != codes.Internal || status.Convert(err).Message() != "internal error" {
		t.Fatalf("call whose limiter panics: %v, want Internal \"internal error\"", err)
	}
	if h.svc.calls.Load() != calls {
		t.Error("the handler ran after a stage before it panicked")
	}
	if recs := h.logs.find(map[string]any{"msg": "panic in gRPC call", "panic": "limiter broke"}); len(recs) != 1 || !strings.Contains(recs[0]["stack"].(string), "Limit") {
		t.Errorf("panic records = %v, want one with the limiter's stack", recs)
	}
	if recs := h.logs.find(map[string]any{"msg": "finished call", "grpc.code": "Internal", "grpc.method": "Echo"}); len(recs) != 1 {
		t.Errorf("call log records of the Internal call = %v, want one", recs)
	}
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	counted := map[string]float64{}
	for _, fam := range fams {
		if fam.GetName() != "grpc_server_handled_total" {
			continue
		}
		for _, s := range fam.GetMetric() {
			if hasLabels(s, map[string]string{"grpc_method": "Echo"}) {
				for _, lp := range s.GetLabel() {
					if lp.GetName() == "grpc_code" {
						counted[lp.GetValue()] = s.GetCounter().GetValue()
					}
				}
			}
		}
	}
	if counted["OK"] != 1 || counted["Internal"] != 1 {
		t.Errorf("grpc_server_handled_total of Echo by code = %v, want OK 1 and Internal 1", counted)
	}
	// The health service runs the same chain (and the same broken limiter): the server
	// itself still answers, on the same connection.
	if err := cc.Invoke(ctx, "/grpc.health.v1.Health/Check", &healthpb.HealthCheckRequest{}, new(healthpb.HealthCheckResponse)); status.Code(err) != codes.Internal {
		t.Errorf("health check through the broken limiter: %v, want Internal", err)
	}
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; ok && v == lp.GetValue() {
			n++
		}
	}
	return n == len(want)
}

// TestMaxConnectionAge: an old connection is made to reconnect, so it handshakes again
// and sees a certificate rotated after it was opened.
func TestMaxConnectionAge(t *testing.T) {
	h := start(t, "tcp", grpcserver.WithMaxConnectionAge(200*time.Millisecond, 200*time.Millisecond))
	cc := h.connect(t, h.pki.Client(t, "spiffe://bank.local/customer/alice"))
	serverSerial := func() *big.Int {
		var p peer.Peer
		if _, err := echo(context.Background(), cc, "x", grpc.Peer(&p)); err != nil {
			return nil
		}
		ti, ok := p.AuthInfo.(credentials.TLSInfo)
		if !ok || len(ti.State.PeerCertificates) == 0 {
			return nil
		}
		return ti.State.PeerCertificates[0].SerialNumber
	}
	if serverSerial() == nil {
		t.Fatal("first call failed")
	}
	rotated := h.pki.Server(t, serverID)
	if err := h.src.SetCertificate(rotated.TLSCertificate()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		s := serverSerial()
		return s != nil && s.Cmp(rotated.Cert.SerialNumber) == 0
	})
}
